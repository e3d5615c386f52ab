//! f32 GEMM with AVX-512 micro-kernels, threaded on rayon's pool (x86-64 only; chosen at run
//! time by [`super::float_matmul`] when [`crate::kernels::simd::level`] is AVX-512).
//!
//! # Why our own
//! matrixmultiply already has AVX-512 kernels, and per core of CPU time ours is about as fast;
//! the difference is threading. matrixmultiply threads on its own `thread_tree` pool, whose
//! helpers spin and yield against rayon's workers on a small machine (about 15% of the MLP
//! training step went to the scheduler on the 2-core VM). This GEMM runs on rayon's pool
//! only, so inside a tape run (which itself runs on a rayon worker, see the autodiff crate's
//! `exec`) a product's parts are picked up by workers that are already awake.

//! # Structure (BLIS-style, written for row-major `C`)
//! `C (m×n) ← α·A·B + β·C`. `k` is cut into panels of at most [`KC`]; every panel of `A` is
//! packed into row tiles of [`MR`] rows stored `[p][MR]`, and every panel of `B` into column
//! strips of `NR = 16·V` columns stored `[p][NR]` (`V = 2`, or `1` when `n ≤ 16`). The packing
//! reads any strides (transposed operands are packed, never copied twice). The micro-kernel
//! holds an `R×NR` block of `C` in `R·V` zmm accumulators (`R ≤ 12`: 24 of the 32 registers),
//! and per step of `k` loads `V` vectors of packed `B` and broadcasts `R` values of packed `A`
//! (folded into the FMAs). Column edges use masked loads/stores of `C`; row edges use the
//! kernel instantiated for fewer rows. The first `k` panel applies `β` (never reading `C`
//! when `β = 0`, like BLAS), later panels add.
//!
//! # Threads
//! Two rayon phases: all panels are packed in parallel into one scratch buffer (kept per
//! calling thread, so a steady-state product allocates nothing), then `C` is cut into a few
//! regions per thread (so a worker that wakes late still gets a share), by columns when `A` is the smaller operand (each thread re-reads all of
//! packed `A`) and by rows otherwise, and each region runs every `k` panel in order (so no two
//! threads write the same element, and the sum order per element is fixed: the result does
//! not depend on the thread count).

use crate::kernels::threads::SendPtr;
use rayon::prelude::*;
use std::arch::x86_64::*;
use std::cell::RefCell;

/// Rows of a micro-tile.
pub(super) const MR: usize = 12;
/// Longest `k` panel (the packed `A` micro-panel, `KC·MR` floats = 24 KiB, stays in L1).
const KC: usize = 512;
/// Column strips per cache block: `KC·NC_STRIPS·32` floats of packed `B` (≤ 1 MiB) are reused
/// from L2 across the row tiles of a region.
const NC_STRIPS: usize = 16;
/// Below this many multiply-adds a product runs on the calling thread.
const PAR_MACS: usize = 1 << 20;
/// Parts of `C` per thread (see [`gemm_packed`]).
const PARTS_PER_THREAD: usize = 4;
/// Largest scratch (floats, 64 MiB) kept between calls; bigger ones are freed after the call.
/// Both operands are packed whole, so a product with `(m + n)·k` up to this size reuses its
/// scratch (freeing and re-faulting 32 MiB per N = 2048 product cost ~15% of its time). The
/// price: each thread that ran such a product keeps up to 64 MiB. The matmul module sends
/// larger products to matrixmultiply, so this bounds the scratch too.
pub(super) const KEEP_SCRATCH: usize = 16 << 20;

/// A strided read-only `f32` matrix operand.
#[derive(Clone, Copy)]
pub(crate) struct Mat {
    /// Element `(0, 0)`.
    pub(crate) ptr: *const f32,
    /// Row stride (elements).
    pub(crate) rs: isize,
    /// Column stride (elements).
    pub(crate) cs: isize,
}

/// A pointer that parallel tasks write through, each to a region no other task touches.
#[derive(Clone, Copy)]
struct SendMut(*mut f32);
// SAFETY: every task writes a disjoint region (packing: its own tiles/strips; compute: its own
// region of C), and the owner outlives the parallel region.
unsafe impl Send for SendMut {}
// SAFETY: as above.
unsafe impl Sync for SendMut {}

impl SendMut {
    #[inline(always)]
    fn get(self) -> *mut f32 {
        self.0
    }
}

thread_local! {
    /// The packing scratch of this calling thread.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The `k` panels: `(start, length)`, of near-equal length at most [`KC`].
fn k_panels(k: usize) -> impl Iterator<Item = (usize, usize)> {
    let np = k.div_ceil(KC).max(1);
    let kc = k.div_ceil(np);
    (0..np).map(move |i| (i * kc, kc.min(k - (i * kc).min(k)))).filter(|&(_, l)| l > 0)
}

/// Sizes of one product.
#[derive(Clone, Copy)]
struct Dims {
    m: usize,
    k: usize,
    n: usize,
    /// Columns per strip (16 or 32).
    nr: usize,
    /// Row tiles, column strips.
    mt: usize,
    nt: usize,
}

impl Dims {
    /// Offset of row tile `t` of the panel starting at `p0` (length `kc`) in packed `A`.
    fn a_off(&self, p0: usize, kc: usize, t: usize) -> usize {
        p0 * self.mt * MR + t * kc * MR
    }
    /// Offset of column strip `u` of that panel in packed `B` (after packed `A`).
    fn b_off(&self, p0: usize, kc: usize, u: usize) -> usize {
        self.k * self.mt * MR + p0 * self.nt * self.nr + u * kc * self.nr
    }
    fn len(&self) -> usize {
        self.k * (self.mt * MR + self.nt * self.nr)
    }
}

/// `C ← α·A·B + β·C` for `f32`, `C` row-major with row stride `ldc` (`csc = 1`), using up to
/// `threads` rayon threads.
///
/// # Safety
/// The CPU must support AVX-512F. `a`, `b` must describe valid `m×k`, `k×n` matrices and `c`
/// `m` rows of `n` writable elements at stride `ldc`, not aliasing `a` or `b`. `k ≥ 1`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(m: usize, k: usize, n: usize, alpha: f32, a: Mat, b: Mat, beta: f32, c: *mut f32, ldc: usize, threads: usize) {
    if m == 0 || n == 0 {
        return;
    }
    let nr = if n <= 16 { 16 } else { 32 };
    let d = Dims { m, k, n, nr, mt: m.div_ceil(MR), nt: n.div_ceil(nr) };
    let macs = m.saturating_mul(n).saturating_mul(k);
    let threads = if macs < PAR_MACS { 1 } else { threads.max(1) };
    let len = d.len() + 16;
    let run = |buf: &mut Vec<f32>| {
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        // 64-byte align the packed data.
        let base = buf.as_mut_ptr();
        let skip = base.align_offset(64).min(16);
        // SAFETY: `skip + d.len() <= len <= buf.len()`; the caller's contract covers a, b, c.
        unsafe { gemm_packed(&d, alpha, a, b, beta, c, ldc, threads, SendMut(base.add(skip))) };
    };
    // A nested call on this thread (a rayon task stolen while we wait) finds the scratch
    // borrowed and uses its own.
    let done = SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut buf) => {
            run(&mut buf);
            if buf.len() > KEEP_SCRATCH {
                *buf = Vec::new();
            }
            true
        }
        Err(_) => false,
    });
    if !done {
        run(&mut Vec::new());
    }
}

/// Splits `0..n` into `parts` contiguous near-equal ranges; returns range `i`.
fn part(n: usize, parts: usize, i: usize) -> (usize, usize) {
    let (q, r) = (n / parts, n % parts);
    let s = i * q + i.min(r);
    (s, s + q + usize::from(i < r))
}

#[allow(clippy::too_many_arguments)]
unsafe fn gemm_packed(d: &Dims, alpha: f32, a: Mat, b: Mat, beta: f32, c: *mut f32, ldc: usize, threads: usize, buf: SendMut) {
    let (pa, pb) = (SendPtr(a.ptr), SendPtr(b.ptr));
    // Phase 1: pack every panel; task i packs a share of A's row tiles and B's strips.
    let pack = |i: usize, parts: usize| {
        let a = Mat { ptr: pa.get(), ..a };
        let b = Mat { ptr: pb.get(), ..b };
        let (t0, t1) = part(d.mt, parts, i);
        let (u0, u1) = part(d.nt, parts, i);
        for (p0, kc) in k_panels(d.k) {
            for t in t0..t1 {
                let rows = MR.min(d.m - t * MR);
                // SAFETY: the tile lies inside the scratch (see Dims) and inside A.
                unsafe { pack_a(a, t * MR, rows, p0, kc, buf.get().add(d.a_off(p0, kc, t))) };
            }
            for u in u0..u1 {
                let cols = d.nr.min(d.n - u * d.nr);
                // SAFETY: as above, for B.
                unsafe { pack_b(b, u * d.nr, cols, d.nr, p0, kc, buf.get().add(d.b_off(p0, kc, u))) };
            }
        }
    };
    // Phase 2: regions of C.
    let by_cols = d.m <= d.n;
    let cptr = SendMut(c);
    let compute = |i: usize, parts: usize| {
        let ((t0, t1), (u0, u1)) = if by_cols { ((0, d.mt), part(d.nt, parts, i)) } else { (part(d.mt, parts, i), (0, d.nt)) };
        // SAFETY: the region's tiles of C are written by this task only; packed data is
        // complete (phase 1 joined).
        unsafe { region(d, alpha, beta, cptr.get(), ldc, buf.get(), (t0, t1), (u0, u1)) };
    };
    // Several parts per thread: a worker that wakes late still finds work to steal, and
    // rayon balances the parts (the result does not depend on how they are spread).
    let units = if by_cols { d.nt } else { d.mt };
    let parts = if threads <= 1 { 1 } else { units.min(threads * PARTS_PER_THREAD) };
    if parts <= 1 {
        pack(0, 1);
        compute(0, 1);
    } else {
        (0..parts).into_par_iter().for_each(|i| pack(i, parts));
        (0..parts).into_par_iter().for_each(|i| compute(i, parts));
    }
}

/// Runs every `k` panel over row tiles `t0..t1` × column strips `u0..u1` of `C`.
#[allow(clippy::too_many_arguments)]
unsafe fn region(d: &Dims, alpha: f32, beta: f32, c: *mut f32, ldc: usize, buf: *const f32, (t0, t1): (usize, usize), (u0, u1): (usize, usize)) {
    for (p0, kc) in k_panels(d.k) {
        let first = p0 == 0;
        let mut ub = u0;
        while ub < u1 {
            let ue = (ub + NC_STRIPS).min(u1);
            for t in t0..t1 {
                let rows = MR.min(d.m - t * MR);
                let ap = buf.add(d.a_off(p0, kc, t));
                for u in ub..ue {
                    let cols = d.nr.min(d.n - u * d.nr);
                    let bp = buf.add(d.b_off(p0, kc, u));
                    let cp = c.add(t * MR * ldc + u * d.nr);
                    let e = Epilogue { alpha, beta, first, cols };
                    if d.nr == 32 {
                        dispatch::<2>(rows, kc, ap, bp, cp, ldc, e);
                    } else {
                        dispatch::<1>(rows, kc, ap, bp, cp, ldc, e);
                    }
                }
            }
            ub = ue;
        }
    }
}

/// How a micro-tile is written back.
#[derive(Clone, Copy)]
struct Epilogue {
    alpha: f32,
    beta: f32,
    /// First `k` panel: apply `β` (else add to `C`).
    first: bool,
    /// Valid columns of the strip.
    cols: usize,
}

#[inline(always)]
unsafe fn dispatch<const V: usize>(rows: usize, kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, e: Epilogue) {
    match rows {
        12 => kernel::<12, V>(kc, a, b, c, ldc, e),
        11 => kernel::<11, V>(kc, a, b, c, ldc, e),
        10 => kernel::<10, V>(kc, a, b, c, ldc, e),
        9 => kernel::<9, V>(kc, a, b, c, ldc, e),
        8 => kernel::<8, V>(kc, a, b, c, ldc, e),
        7 => kernel::<7, V>(kc, a, b, c, ldc, e),
        6 => kernel::<6, V>(kc, a, b, c, ldc, e),
        5 => kernel::<5, V>(kc, a, b, c, ldc, e),
        4 => kernel::<4, V>(kc, a, b, c, ldc, e),
        3 => kernel::<3, V>(kc, a, b, c, ldc, e),
        2 => kernel::<2, V>(kc, a, b, c, ldc, e),
        _ => kernel::<1, V>(kc, a, b, c, ldc, e),
    }
}

/// The `R×16V` micro-kernel: `a` is a packed `[kc][MR]` tile, `b` a packed `[kc][16V]` strip.
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const R: usize, const V: usize>(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, e: Epilogue) {
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    let (mut ap, mut bp) = (a, b);
    for _ in 0..kc {
        let mut bv = [_mm512_setzero_ps(); V];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = _mm512_loadu_ps(bp.add(16 * v));
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*ap.add(i));
            for (x, bx) in row.iter_mut().zip(&bv) {
                *x = _mm512_fmadd_ps(av, *bx, *x);
            }
        }
        ap = ap.add(MR);
        bp = bp.add(16 * V);
    }
    let mut masks = [0u16; V];
    for (v, mk) in masks.iter_mut().enumerate() {
        let valid = e.cols.saturating_sub(16 * v).min(16);
        *mk = if valid == 16 { u16::MAX } else { ((1u32 << valid) - 1) as u16 };
    }
    let va = _mm512_set1_ps(e.alpha);
    let vb = _mm512_set1_ps(e.beta);
    for (i, row) in acc.iter().enumerate() {
        let cr = c.add(i * ldc);
        for (v, &x) in row.iter().enumerate() {
            let mk = masks[v];
            if mk == 0 {
                continue;
            }
            let cp = cr.add(16 * v);
            let x = if e.alpha == 1.0 { x } else { _mm512_mul_ps(x, va) };
            let r = if !e.first {
                _mm512_add_ps(_mm512_maskz_loadu_ps(mk, cp), x)
            } else if e.beta == 0.0 {
                x
            } else {
                _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, cp), vb, x)
            };
            _mm512_mask_storeu_ps(cp, mk, r);
        }
    }
}

/// Packs rows `r0..r0+rows` × columns `p0..p0+kc` of `a` into a `[kc][MR]` tile.
unsafe fn pack_a(a: Mat, r0: usize, rows: usize, p0: usize, kc: usize, dst: *mut f32) {
    let at = |i: usize, p: usize| a.ptr.offset((r0 + i) as isize * a.rs + (p0 + p) as isize * a.cs);
    if a.cs == 1 && rows == MR {
        // Rows are contiguous in k: read 16 columns of the 12 rows, write 16 tile rows.
        let mut p = 0;
        while p + 16 <= kc {
            for i in 0..MR {
                let src = at(i, p);
                for q in 0..16 {
                    *dst.add((p + q) * MR + i) = *src.add(q);
                }
            }
            p += 16;
        }
        for p in p..kc {
            for i in 0..MR {
                *dst.add(p * MR + i) = *at(i, p);
            }
        }
    } else {
        for p in 0..kc {
            let d = dst.add(p * MR);
            for i in 0..rows {
                *d.add(i) = *at(i, p);
            }
        }
    }
}

/// Packs rows `p0..p0+kc` × columns `c0..c0+cols` of `b` into a `[kc][nr]` strip (columns
/// past `cols` hold no meaningful values: the kernel masks them out).
#[target_feature(enable = "avx512f")]
unsafe fn pack_b(b: Mat, c0: usize, cols: usize, nr: usize, p0: usize, kc: usize, dst: *mut f32) {
    let at = |p: usize, j: usize| b.ptr.offset((p0 + p) as isize * b.rs + (c0 + j) as isize * b.cs);
    if b.cs == 1 {
        // Row pieces of up to 32 contiguous floats: masked vector copies, no call per row.
        let m0 = if cols >= 16 { u16::MAX } else { ((1u32 << cols) - 1) as u16 };
        let c1 = cols.saturating_sub(16).min(16);
        let m1 = if c1 == 16 { u16::MAX } else { ((1u32 << c1) - 1) as u16 };
        for p in 0..kc {
            let (s, d) = (at(p, 0), dst.add(p * nr));
            _mm512_storeu_ps(d, _mm512_maskz_loadu_ps(m0, s));
            if nr == 32 {
                _mm512_storeu_ps(d.add(16), _mm512_maskz_loadu_ps(m1, s.add(16)));
            }
        }
    } else {
        for j in 0..cols {
            let src = at(0, j);
            for p in 0..kc {
                *dst.add(p * nr + j) = *src.offset(p as isize * b.rs);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random matrix stored in `rows×cols` with the given layout; returns
    /// the storage and a `Mat` for the logical `r×c` matrix (`transposed`: stored as `c×r`;
    /// `reversed`: rows in reverse order, negative row stride).
    fn operand(r: usize, c: usize, transposed: bool, reversed: bool, seed: u32) -> (Vec<f32>, isize, isize, isize) {
        let data: Vec<f32> = (0..r * c).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 20) as f32 / 2048.0 - 1.0).collect();
        let (mut rs, cs) = if transposed { (1isize, r as isize) } else { (c as isize, 1isize) };
        let mut off = 0isize;
        if reversed {
            off = (r as isize - 1) * rs;
            rs = -rs;
        }
        (data, off, rs, cs)
    }

    /// Our kernel against matrixmultiply (the fallback path) on edge sizes, every operand
    /// layout, alpha/beta, and several thread counts; the thread count must not change a bit.
    #[test]
    fn matches_matrixmultiply() {
        if !crate::kernels::simd::supports(crate::kernels::simd::SimdLevel::Avx512) {
            eprintln!("skipped: no AVX-512F on this CPU");
            return;
        }
        let sizes = [(1, 1, 1), (5, 7, 3), (12, 16, 1), (13, 17, 33), (25, 513, 10), (130, 70, 40), (24, 1030, 32), (64, 300, 200), (200, 600, 100)];
        let mut seed = 1;
        for &(m, k, n) in &sizes {
            for (ta, tb, rev) in [(false, false, false), (true, false, false), (false, true, false), (true, true, true)] {
                for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, 1.0), (2.0, -0.25)] {
                    seed += 1;
                    let (a, oa, rsa, csa) = operand(m, k, ta, rev, seed);
                    let (b, ob, rsb, csb) = operand(k, n, tb, false, seed + 99);
                    let c0: Vec<f32> = (0..m * n).map(|i| (i % 7) as f32 - 3.0).collect();
                    let mut want = c0.clone();
                    // SAFETY: the operands describe the allocations above.
                    unsafe {
                        matrixmultiply::sgemm(m, k, n, alpha, a.as_ptr().offset(oa), rsa, csa, b.as_ptr().offset(ob), rsb, csb, beta, want.as_mut_ptr(), n as isize, 1);
                    }
                    let mut first: Option<Vec<f32>> = None;
                    for threads in [1, 2, 3] {
                        let mut got = c0.clone();
                        let (am, bm) = (Mat { ptr: a.as_ptr().wrapping_offset(oa), rs: rsa, cs: csa }, Mat { ptr: b.as_ptr().wrapping_offset(ob), rs: rsb, cs: csb });
                        // SAFETY: AVX-512F checked; operands as above; `got` is m×n.
                        unsafe { sgemm(m, k, n, alpha, am, bm, beta, got.as_mut_ptr(), n, threads) };
                        let what = format!("{m}x{k}x{n} ta={ta} tb={tb} rev={rev} alpha={alpha} beta={beta} threads={threads}");
                        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                            assert!((g - w).abs() <= 1e-4 * (k as f32).sqrt().max(1.0) * (1.0 + w.abs()), "{what}: element {i}: {g} vs {w}");
                        }
                        match &first {
                            None => first = Some(got),
                            Some(f) => assert!(f.iter().zip(&got).all(|(x, y)| x.to_bits() == y.to_bits()), "{what}: differs from threads=1"),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn panels_cover_k() {
        for k in [1, 5, 511, 512, 513, 784, 2048, 2049] {
            let ps: Vec<_> = k_panels(k).collect();
            assert_eq!(ps[0].0, 0);
            assert!(ps.iter().all(|&(_, l)| l >= 1 && l <= KC));
            assert_eq!(ps.iter().map(|p| p.1).sum::<usize>(), k);
            assert!(ps.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
        }
        assert_eq!(part(10, 3, 0), (0, 4));
        assert_eq!(part(10, 3, 2), (7, 10));
    }
}
