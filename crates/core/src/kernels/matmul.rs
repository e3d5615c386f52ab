//! Matrix products through `matrixmultiply` (f32/f64): 2-D and batched with broadcast batch
//! dims. Transposed operands arrive as strided views and are never copied.
//!
//! # Strides
//! `matrixmultiply::{sgemm, dgemm}` take a row and a column stride per operand and document
//! that "strides for A and B may be arbitrary" (its packing routines only ever compute
//! `ptr + i * stride` with signed offsets). So every operand view — transposed, sliced with a
//! step, reversed (negative strides) or broadcast inside the matrix (zero strides) — is
//! passed as it is, with no copy. Only `C` must not alias, and `out` is always contiguous.
//!
//! # Which GEMM
//! `f32` products run on this crate's own AVX-512 GEMM (module `avx512`, threaded on rayon's pool)
//! when [`crate::kernels::simd::level`] is AVX-512; everything else (f64, `f32` on other CPUs
//! or with `GORGON_SIMD=avx2|scalar`) goes through matrixmultiply, which dispatches at run
//! time to its own AVX-512 / AVX2 / SSE kernels (its default `avx512` feature is on).
//!
//! # Threading (matrixmultiply path)
//! The workspace builds matrixmultiply with its `threading` feature. Its pool is a global
//! `thread_tree` sized once from `MATMUL_NUM_THREADS` (default: physical cores, at most 4),
//! used whenever `(m*k + k*n) / 2^14 >= 2`; there is no per-call switch, and this crate may
//! not set the variable for the process. The pool has *one* channel per tree node: when two
//! rayon workers call `sgemm` at the same time, both hand their second halves to the same
//! helper thread, which runs them one after the other while the callers spin — so
//! "split rows across rayon and call matrixmultiply in each block" oversubscribes and
//! serializes unless the user sets `MATMUL_NUM_THREADS=1`. The private `Plan` enum below
//! says what we do instead (decided by measurement; the numbers are in its comment). Its
//! helper threads also spin and yield against rayon's workers between products, which is
//! why the `f32` path, the hot one in training, threads on rayon alone.
//!
//! # Speed
//! Per core, matrixmultiply's AVX-512 kernels, ours and OpenBLAS are within ~10% of each other
//! on the MLP's shapes (2-core AVX-512 dev VM, ~110–150 GFLOP/s per core of CPU time).
//! What differs is threading: see the `avx512` module.

use crate::error::{fmt_shape, CoreError, Result};
use crate::kernels::arith::Arith;
use crate::kernels::checks::{check_contiguous, not_contiguous};
use crate::kernels::threads::SendPtr;
use crate::shape::broadcast_shapes;
use crate::{DType, Element, Tensor, TensorView};
use ndarray::{ArrayViewD, IxDyn};
use rayon::prelude::*;

/// `out = a @ b` for `a: (..., m, k)`, `b: (..., k, n)` (both at least 2-D; the graph layer
/// handles 1-D operands by reshaping), batch dims broadcast NumPy-style; `out` is
/// `(batch..., m, n)` contiguous. Integer dtypes use a plain loop.
///
/// ```
/// use gorgon_core::{Tensor, DType, kernels::matmul::matmul};
/// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
/// let b = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 1.0], &[2, 2]).unwrap();
/// let mut out = Tensor::zeros(DType::F32, &[2, 2]);
/// matmul(&a.view(), &b.view(), &mut out).unwrap();
/// assert_eq!(out.to_vec_f64(), vec![1.0, 2.0, 3.0, 4.0]);
/// ```
pub fn matmul(a: &TensorView, b: &TensorView, out: &mut Tensor) -> Result<()> {
    let g = Geometry::new(a, b, out)?;
    match a.dtype() {
        DType::F32 => batched::<f32>(a, b, out, &g, float_matmul),
        DType::F64 => batched::<f64>(a, b, out, &g, float_matmul),
        DType::I32 => batched::<i32>(a, b, out, &g, int_matmul),
        DType::I64 => batched::<i64>(a, b, out, &g, int_matmul),
        DType::Bool => Err(CoreError::DType {
            op: "matmul",
            dtype: DType::Bool,
            detail: "matmul needs a numeric dtype".into(),
        }),
    }
}

/// Validated sizes of one `matmul` call.
struct Geometry {
    m: usize,
    k: usize,
    n: usize,
    /// The broadcast batch shape.
    batch: Vec<usize>,
}

impl Geometry {
    fn new(a: &TensorView, b: &TensorView, out: &Tensor) -> Result<Geometry> {
        if a.dtype() != b.dtype() {
            return Err(CoreError::DType {
                op: "matmul",
                dtype: b.dtype(),
                detail: format!(
                    "operands have different dtypes {} and {}",
                    a.dtype(),
                    b.dtype()
                ),
            });
        }
        if out.dtype() != a.dtype() {
            return Err(CoreError::DType {
                op: "matmul",
                dtype: out.dtype(),
                detail: format!("out must have the operands' dtype {}", a.dtype()),
            });
        }
        let (ash, bsh) = (a.shape(), b.shape());
        if ash.len() < 2 || bsh.len() < 2 {
            return Err(CoreError::Shape {
                op: "matmul",
                detail: format!(
                    "operands must be at least 2-D, got {} and {}",
                    fmt_shape(ash),
                    fmt_shape(bsh)
                ),
            });
        }
        let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
        let (k2, n) = (bsh[bsh.len() - 2], bsh[bsh.len() - 1]);
        if k != k2 {
            return Err(CoreError::Shape {
                op: "matmul",
                detail: format!(
                    "{} @ {}: contracted dimensions differ ({} != {})",
                    fmt_shape(ash),
                    fmt_shape(bsh),
                    k,
                    k2
                ),
            });
        }
        let batch =
            broadcast_shapes(&ash[..ash.len() - 2], &bsh[..bsh.len() - 2]).map_err(|_| {
                CoreError::Shape {
                    op: "matmul",
                    detail: format!(
                        "{} @ {}: batch dimensions are not broadcastable",
                        fmt_shape(ash),
                        fmt_shape(bsh)
                    ),
                }
            })?;
        let mut want = batch.clone();
        want.extend_from_slice(&[m, n]);
        if !crate::shape::same_shape(out.shape(), want.as_slice()) {
            return Err(CoreError::Shape {
                op: "matmul",
                detail: format!(
                    "{} @ {} gives {}, but out has shape {}",
                    fmt_shape(ash),
                    fmt_shape(bsh),
                    fmt_shape(&want),
                    fmt_shape(out.shape())
                ),
            });
        }
        check_contiguous("matmul", out)?;
        Ok(Geometry { m, k, n, batch })
    }
}

/// Element offsets of the `(a, b)` matrices of every batch entry, in row-major batch order,
/// for operands already broadcast to `batch + [m, k]` / `batch + [k, n]`.
fn batch_offsets(batch: &[usize], sa: &[isize], sb: &[isize]) -> Vec<(isize, isize)> {
    let nb: usize = batch.iter().product();
    let mut offs = Vec::with_capacity(nb);
    let mut idx = vec![0usize; batch.len()];
    let (mut oa, mut ob) = (0isize, 0isize);
    for _ in 0..nb {
        offs.push((oa, ob));
        // odometer step with running offsets
        for d in (0..batch.len()).rev() {
            idx[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if idx[d] < batch[d] {
                break;
            }
            oa -= sa[d] * batch[d] as isize;
            ob -= sb[d] * batch[d] as isize;
            idx[d] = 0;
        }
    }
    offs
}

/// The typed view inside `v`.
fn typed<'a, T: Element>(v: &TensorView<'a>) -> Result<ArrayViewD<'a, T>> {
    T::view_ref(v).ok_or_else(|| CoreError::DType {
        op: "matmul",
        dtype: v.dtype(),
        detail: "internal dtype mismatch".into(),
    })
}

/// Broadcasts a typed operand to `batch + [r, c]` (no copy: zero strides; any input strides,
/// negative ones included).
fn broadcast_operand<'b, T: Element>(
    v: &'b ArrayViewD<'_, T>,
    batch: &[usize],
    r: usize,
    c: usize,
) -> Result<ArrayViewD<'b, T>> {
    let mut sh = batch.to_vec();
    sh.extend_from_slice(&[r, c]);
    v.broadcast(IxDyn(&sh)).ok_or_else(|| CoreError::Shape {
        op: "matmul",
        detail: format!(
            "cannot broadcast {} to {}",
            fmt_shape(v.shape()),
            fmt_shape(&sh)
        ),
    })
}

/// `C ← α·A·B + β·C` through matrixmultiply, for f32 and f64 (also the convolution's GEMM).
pub(crate) trait Gemm: Element {
    /// # Safety
    /// The pointers and strides must describe valid `m×k`, `k×n`, `m×n` matrices, `C` must
    /// not alias `A` or `B`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize, k: usize, n: usize, alpha: Self,
        a: *const Self, rsa: isize, csa: isize,
        b: *const Self, rsb: isize, csb: isize,
        beta: Self, c: *mut Self, rsc: isize, csc: isize,
    );

    /// `C ← A·B` (`C` row-major, row stride `ldc`) through this crate's own SIMD GEMM, on up to
    /// `threads` rayon threads, when there is one for `Self` on this CPU (the `avx512` module);
    /// returns false, touching nothing, otherwise.
    ///
    /// # Safety
    /// As [`Gemm::gemm_raw`], with `k ≥ 1`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_own(
        _m: usize, _k: usize, _n: usize,
        _a: *const Self, _rsa: isize, _csa: isize,
        _b: *const Self, _rsb: isize, _csb: isize,
        _c: *mut Self, _ldc: usize, _threads: usize,
    ) -> bool {
        false
    }

    /// Whether [`Gemm::gemm_own`] handles `Self` on this CPU.
    fn has_own() -> bool {
        false
    }
}

macro_rules! impl_gemm {
    ($($t:ty => $f:path),*) => {$(
        impl Gemm for $t {
            unsafe fn gemm_raw(
                m: usize, k: usize, n: usize, alpha: $t,
                a: *const $t, rsa: isize, csa: isize,
                b: *const $t, rsb: isize, csb: isize,
                beta: $t, c: *mut $t, rsc: isize, csc: isize,
            ) {
                // SAFETY: forwarded caller contract.
                unsafe { $f(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
        }
    )*};
}
impl_gemm!(f64 => matrixmultiply::dgemm);

impl Gemm for f32 {
    unsafe fn gemm_raw(
        m: usize, k: usize, n: usize, alpha: f32,
        a: *const f32, rsa: isize, csa: isize,
        b: *const f32, rsb: isize, csb: isize,
        beta: f32, c: *mut f32, rsc: isize, csc: isize,
    ) {
        // SAFETY: forwarded caller contract.
        unsafe { matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }

    unsafe fn gemm_own(
        m: usize, k: usize, n: usize,
        a: *const f32, rsa: isize, csa: isize,
        b: *const f32, rsb: isize, csb: isize,
        c: *mut f32, ldc: usize, threads: usize,
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        if Self::has_own() {
            let (a, b) = (avx512::Mat { ptr: a, rs: rsa, cs: csa }, avx512::Mat { ptr: b, rs: rsb, cs: csb });
            // SAFETY: AVX-512F checked by `has_own`; the rest is the caller's contract.
            unsafe { avx512::sgemm(m, k, n, 1.0, a, b, 0.0, c, ldc, threads) };
            return true;
        }
        let _ = (m, k, n, a, rsa, csa, b, rsb, csb, c, ldc, threads);
        false
    }

    fn has_own() -> bool {
        crate::kernels::simd::level() == crate::kernels::simd::SimdLevel::Avx512
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512;

/// Threads the kernels may use (rayon's pool, capped by `GORGON_NUM_THREADS`).
fn max_threads() -> usize {
    crate::kernels::threads::num_threads().max(1)
}

/// How one (batched) product is spread over threads.
///
/// Measured on the 2-core dev VM (Xeon, AVX-512; matrixmultiply's run-time-selected kernels),
/// f32 / f64 GFLOP/s, single `N×N` product, N = 1024 and 2048:
///
/// | strategy                                              | f32 1024 | f32 2048 | f64 1024 |
/// |-------------------------------------------------------|---------:|---------:|---------:|
/// | one call, matrixmultiply's own threads (default env)  |  255–280 |  240–265 |  105–112 |
/// | rayon row blocks, one call each, default env          |  139–172 |  138–183 |   55–87  |
/// | rayon row blocks, `MATMUL_NUM_THREADS=1`              |  252–283 |  245–272 |  103–116 |
/// | one call, `MATMUL_NUM_THREADS=1` (one core)           |  142–144 |  133–137 |   57–60  |
///
/// Row blocks only pay when matrixmultiply is single-threaded; with its pool active the
/// concurrent calls serialize on the pool's helper thread (see the module docs). So: when the
/// user has set `MATMUL_NUM_THREADS=1` we split output rows (or the batch) across rayon — the
/// way to use more than matrixmultiply's 4-thread maximum on big machines, and the only
/// way `GORGON_NUM_THREADS` caps GEMM; otherwise a large product is one call and
/// matrixmultiply threads it. Batches of small matrices (≤ 256³ flops each, where its
/// threading has little to gain and per-call overhead dominates) run in parallel over the
/// batch either way. `GORGON_MM_PLAN=serial|batch|rows` forces a strategy (benchmarking only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// One matrixmultiply call per matrix, in sequence (it may thread internally).
    Serial,
    /// Matrices of the batch in parallel across rayon.
    OverBatch,
    /// Each matrix's output rows split in blocks across rayon.
    RowBlocks,
}

/// (matrixmultiply is single-threaded, forced plan) from the environment, read once.
fn env_config() -> (bool, Option<Plan>) {
    static CFG: std::sync::OnceLock<(bool, Option<Plan>)> = std::sync::OnceLock::new();
    *CFG.get_or_init(|| {
        let mm1 = std::env::var("MATMUL_NUM_THREADS")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .map(|n| n <= 1)
            .unwrap_or(false);
        let forced = match std::env::var("GORGON_MM_PLAN").as_deref() {
            Ok("serial") => Some(Plan::Serial),
            Ok("batch") => Some(Plan::OverBatch),
            Ok("rows") => Some(Plan::RowBlocks),
            _ => None,
        };
        (mm1, forced)
    })
}

fn choose_plan(nb: usize, m: usize, k: usize, n: usize, nt: usize) -> Plan {
    let flops = m.saturating_mul(n).saturating_mul(k);
    let total = flops.saturating_mul(nb);
    if nt <= 1 || total < (1 << 18) {
        return Plan::Serial;
    }
    let (mm_single, forced) = env_config();
    if let Some(p) = forced {
        return if p == Plan::OverBatch && nb < 2 {
            Plan::Serial
        } else {
            p
        };
    }
    if nb >= nt && (mm_single || flops <= (1 << 24)) {
        Plan::OverBatch
    } else if mm_single && flops >= (1 << 21) {
        Plan::RowBlocks
    } else {
        Plan::Serial
    }
}

/// The raw operands of one (batched) product, broadcast to `batch + [m, k]` /
/// `batch + [k, n]`: base pointers, the matrices' strides and the element offsets of every
/// batch entry's `(a, b)` matrices.
struct Batched<T> {
    pa: SendPtr<T>,
    pb: SendPtr<T>,
    rsa: isize,
    csa: isize,
    rsb: isize,
    csb: isize,
    offs: Vec<(isize, isize)>,
}

/// Broadcasts the operands and runs `kernel` on their raw description and `out`'s contiguous
/// elements (nothing when `out` is empty). The pointers address the operands' data, which
/// `a` and `b` borrow for the whole call.
fn batched<T: Element>(
    a: &TensorView,
    b: &TensorView,
    out: &mut Tensor,
    g: &Geometry,
    kernel: impl FnOnce(Batched<T>, &mut [T], &Geometry),
) -> Result<()> {
    let (m, k, n) = (g.m, g.k, g.n);
    let (a0, b0) = (typed::<T>(a)?, typed::<T>(b)?);
    let av = broadcast_operand(&a0, &g.batch, m, k)?;
    let bv = broadcast_operand(&b0, &g.batch, k, n)?;
    let o = T::tensor_mut(out).ok_or_else(|| CoreError::DType {
        op: "matmul",
        dtype: T::DTYPE,
        detail: "internal dtype mismatch".into(),
    })?;
    let c = o.as_slice_mut().ok_or_else(|| not_contiguous("matmul"))?;
    if c.is_empty() {
        return Ok(());
    }
    let nd = g.batch.len();
    let (sa, sb) = (av.strides(), bv.strides());
    let ops = Batched {
        pa: SendPtr(av.as_ptr()),
        pb: SendPtr(bv.as_ptr()),
        rsa: sa[nd],
        csa: sa[nd + 1],
        rsb: sb[nd],
        csb: sb[nd + 1],
        offs: batch_offsets(&g.batch, &sa[..nd], &sb[..nd]),
    };
    kernel(ops, c, g);
    Ok(())
}

/// Largest `(m + n)·k` (packed elements of one product) the own GEMM takes: what fits the
/// packing scratch it keeps between calls.
#[cfg(target_arch = "x86_64")]
const OWN_MAX_PACKED: usize = avx512::KEEP_SCRATCH;
/// No own GEMM off x86-64 (`has_own` is false there).
#[cfg(not(target_arch = "x86_64"))]
const OWN_MAX_PACKED: usize = 0;

fn float_matmul<T: Gemm>(ops: Batched<T>, c: &mut [T], g: &Geometry) {
    let (m, k, n) = (g.m, g.k, g.n);
    if k == 0 {
        c.fill(T::zero());
        return;
    }
    let Batched { pa, pb, rsa, csa, rsb, csb, offs } = ops;
    let nt = max_threads();
    let mn = m * n;
    let nb = offs.len();
    // The own GEMM packs both operands whole into a scratch it keeps between calls (see
    // OWN_MAX_PACKED); larger products go to
    // matrixmultiply, whose blocked packing needs little memory (N = 2048 on the 2-core dev
    // VM: own 296, matrixmultiply 269, NumPy/OpenBLAS 321 GFLOP/s).
    if T::has_own() && (m + n).saturating_mul(k) <= OWN_MAX_PACKED {
        own_matmul(Batched { pa, pb, rsa, csa, rsb, csb, offs }, c, g, nt);
        return;
    }

    // One product C_i = A_i B_i over rows [r0, r0 + rows) of C_i.
    let run = move |i: usize, r0: usize, rows: usize, cblk: &mut [T]| {
        let (oa, ob) = offs[i];
        // SAFETY: `av`/`bv` are valid broadcast views of shape batch+[m,k] / batch+[k,n];
        // offsets and strides come from them, so every address matrixmultiply forms lies in
        // their data. `cblk` is exactly `rows x n` contiguous and exclusively borrowed.
        unsafe {
            let ap = pa.get().offset(oa + r0 as isize * rsa);
            let bp = pb.get().offset(ob);
            T::gemm_raw(rows, k, n, T::one(), ap, rsa, csa, bp, rsb, csb, T::zero(), cblk.as_mut_ptr(), n as isize, 1);
        }
    };

    match choose_plan(nb, m, k, n, nt) {
        Plan::Serial => {
            for (i, cm) in c.chunks_mut(mn).enumerate() {
                run(i, 0, m, cm);
            }
        }
        Plan::OverBatch => {
            c.par_chunks_mut(mn)
                .enumerate()
                .for_each(|(i, cm)| run(i, 0, m, cm));
        }
        Plan::RowBlocks => {
            // Blocks of rows, a multiple of the micro-kernel height, about one per thread.
            let mut rows = m.div_ceil(nt);
            rows = rows.div_ceil(16) * 16;
            let rows = rows.max(16).min(m);
            for (i, cm) in c.chunks_mut(mn).enumerate() {
                cm.par_chunks_mut(rows * n)
                    .enumerate()
                    .for_each(|(j, blk)| {
                        let r0 = j * rows;
                        run(i, r0, blk.len() / n, blk);
                    });
            }
        }
    }
}

/// [`float_matmul`] through [`Gemm::gemm_own`]: batches of small matrices in parallel over
/// the batch (one thread each), otherwise one matrix at a time on up to `nt` threads.
fn own_matmul<T: Gemm>(ops: Batched<T>, c: &mut [T], g: &Geometry, nt: usize) {
    let (m, k, n) = (g.m, g.k, g.n);
    let Batched { pa, pb, rsa, csa, rsb, csb, offs } = ops;
    let run = |i: usize, cm: &mut [T], threads: usize| {
        let (oa, ob) = offs[i];
        // SAFETY: as in `float_matmul`: the operands' views cover every address formed, `cm`
        // is one exclusive contiguous `m x n` matrix, `k >= 1`.
        let done = unsafe {
            T::gemm_own(m, k, n, pa.get().offset(oa), rsa, csa, pb.get().offset(ob), rsb, csb, cm.as_mut_ptr(), n, threads)
        };
        debug_assert!(done, "gemm_own is only called when has_own()");
    };
    let flops = m.saturating_mul(n).saturating_mul(k);
    let nb = offs.len();
    if nb >= 2 && nt > 1 && flops <= (1 << 24) && flops.saturating_mul(nb) >= (1 << 18) {
        c.par_chunks_mut(m * n).enumerate().for_each(|(i, cm)| run(i, cm, 1));
    } else {
        for (i, cm) in c.chunks_mut(m * n).enumerate() {
            run(i, cm, nt);
        }
    }
}

fn int_matmul<T: Arith>(ops: Batched<T>, c: &mut [T], g: &Geometry) {
    let (m, k, n) = (g.m, g.k, g.n);
    let Batched { pa, pb, rsa, csa, rsb, csb, offs } = ops;
    let body = |i: usize, cm: &mut [T]| {
        let (oa, ob) = offs[i];
        cm.fill(T::zero());
        for r in 0..m {
            let crow = &mut cm[r * n..(r + 1) * n];
            for p in 0..k {
                // SAFETY: indices within the broadcast views' shapes (see float_matmul).
                unsafe {
                    let x = *pa.get().offset(oa + r as isize * rsa + p as isize * csa);
                    let brow = pb.get().offset(ob + p as isize * rsb);
                    for (j, cv) in crow.iter_mut().enumerate() {
                        *cv = cv.add(x.mul(*brow.offset(j as isize * csb)));
                    }
                }
            }
        }
    };
    let total = offs
        .len()
        .saturating_mul(m)
        .saturating_mul(n)
        .saturating_mul(k);
    if offs.len() > 1 && total >= (1 << 18) && max_threads() > 1 {
        c.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, cm)| body(i, cm));
    } else {
        for (i, cm) in c.chunks_mut(m * n).enumerate() {
            body(i, cm);
        }
    }
}
