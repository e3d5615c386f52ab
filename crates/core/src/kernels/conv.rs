//! 2-D convolution (NCHW input, OIHW weight) by im2col + GEMM, with both backward passes
//! (col2im for the input gradient).
//!
//! Per image `n`, the input patches are unrolled into a column matrix `col (K, P)` with
//! `K = C·kH·kW` rows and `P = oH·oW` columns, held in a per-thread scratch buffer that only
//! ever grows, so steady-state calls allocate nothing themselves (`matrixmultiply` still
//! allocates its packing buffers per product). Then
//!
//! * forward: `out[n] (O, P) = W (O, K) · col`;
//! * input gradient: `col = Wᵀ (K, O) · grad[n] (O, P)`, scattered back by col2im;
//! * weight gradient: `dW (O, K) = Σₙ grad[n] (O, P) · colₙᵀ (P, K)`.
//!
//! Large batches are split across rayon threads (each with its own scratch); the weight
//! gradient then sums per-thread partials in a fixed order, so results do not depend on
//! scheduling. 1×1 convolutions with stride 1 and no padding skip im2col.

use crate::error::{fmt_shape, CoreError};
use crate::tensor::try_alloc;
use crate::{DType, Element, Float, Result, Tensor, TensorView};
use ndarray::{ArrayViewD, CowArray, IxDyn};
use rayon::prelude::*;
use std::cell::RefCell;
use std::thread::LocalKey;

/// Geometry of a 2-D convolution or pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    /// (stride_h, stride_w)
    pub stride: (usize, usize),
    /// (pad_h, pad_w), zeros on both sides
    pub padding: (usize, usize),
    /// (dilation_h, dilation_w)
    pub dilation: (usize, usize),
}

impl Conv2dParams {
    /// Output spatial size for input `(h, w)` and kernel `(kh, kw)`, or `None` when the window
    /// does not fit.
    pub fn out_hw(&self, hw: (usize, usize), khw: (usize, usize)) -> Option<(usize, usize)> {
        let f = |n: usize, k: usize, s: usize, p: usize, d: usize| {
            let eff = d * (k.max(1) - 1) + 1;
            let padded = n + 2 * p;
            if padded < eff || s == 0 { None } else { Some((padded - eff) / s + 1) }
        };
        Some((
            f(hw.0, khw.0, self.stride.0, self.padding.0, self.dilation.0)?,
            f(hw.1, khw.1, self.stride.1, self.padding.1, self.dilation.1)?,
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Shared plumbing (also used by pooling).
// ---------------------------------------------------------------------------------------------

/// Number of threads the conv/pool kernels may split work across (rayon's pool, capped by
/// `GORGON_NUM_THREADS`).
pub(crate) fn max_threads() -> usize {
    crate::kernels::threads::num_threads().max(1)
}

/// Runs `f(first_item, chunk)` over `out` cut into items of `item` elements, grouped into at
/// most `parts` contiguous pieces run in parallel (inline when `parts ≤ 1`).
pub(crate) fn par_items<T: Send, E: Send>(
    out: &mut [T],
    item: usize,
    parts: usize,
    f: impl Fn(usize, &mut [T]) -> std::result::Result<(), E> + Sync + Send,
) -> std::result::Result<(), E> {
    if item == 0 || out.is_empty() {
        return Ok(());
    }
    let items = out.len() / item;
    if parts <= 1 || items <= 1 {
        return f(0, out);
    }
    let per = items.div_ceil(parts.min(items));
    out.par_chunks_mut(per * item).enumerate().try_for_each(|(i, c)| f(i * per, c))
}

/// A raw pointer that may cross into rayon closures. Every use is confined to a region the
/// owning kernel has proven disjoint/in-bounds.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *const T);
// SAFETY: the pointee is only read, and only while the borrowed array it came from is alive
// (the kernels hold the borrow for the whole parallel region).
unsafe impl<T: Sync> Send for SendPtr<T> {}
// SAFETY: as above; shared reads of `T: Sync` data are fine from any thread.
unsafe impl<T: Sync> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    #[inline(always)]
    pub(crate) fn get(self) -> *const T {
        self.0
    }
}

/// Checks that `x` (and the other operands) are one float dtype and that `out` matches.
pub(crate) fn check_float_dtypes(op: &'static str, ins: &[DType], out: DType) -> Result<DType> {
    let d = ins.first().copied().unwrap_or(out);
    if !d.is_float() {
        return Err(CoreError::DType { op, dtype: d, detail: "expected float32 or float64".into() });
    }
    for &o in ins.iter().skip(1).chain(std::iter::once(&out)) {
        if o != d {
            return Err(CoreError::DType {
                op,
                dtype: o,
                detail: format!("all operands and the output must be {d}"),
            });
        }
    }
    Ok(d)
}

/// Errors unless `a` is 4-D; `what` names it ("input", "weight", ...).
pub(crate) fn check_4d(op: &'static str, what: &str, expect: &str, shape: &[usize]) -> Result<[usize; 4]> {
    if shape.len() != 4 {
        return Err(CoreError::Shape {
            op,
            detail: format!("{what} must be 4-D {expect}, got {}", fmt_shape(shape)),
        });
    }
    Ok([shape[0], shape[1], shape[2], shape[3]])
}

/// Errors unless the output has exactly `expect` as its shape.
pub(crate) fn check_out_shape(op: &'static str, got: &[usize], expect: &[usize]) -> Result<()> {
    if got != expect {
        return Err(CoreError::Shape {
            op,
            detail: format!("output has shape {}, expected {}", fmt_shape(got), fmt_shape(expect)),
        });
    }
    Ok(())
}

/// The output's elements as one contiguous row-major slice, or an error.
pub(crate) fn out_slice<'a, T: Element>(op: &'static str, out: &'a mut Tensor) -> Result<&'a mut [T]> {
    let dt = out.dtype();
    let a = out.as_array_mut::<T>().ok_or(CoreError::DType {
        op,
        dtype: dt,
        detail: format!("output must be {}", T::DTYPE),
    })?;
    let shape = fmt_shape(a.shape());
    a.as_slice_mut().ok_or(CoreError::Shape {
        op,
        detail: format!("output of shape {shape} must be contiguous (row-major)"),
    })
}

/// The typed 4-D view's base pointer and strides.
pub(crate) fn raw4<T: Element>(a: &ArrayViewD<'_, T>) -> (SendPtr<T>, [isize; 4]) {
    let s = a.strides();
    (SendPtr(a.as_ptr()), [s[0], s[1], s[2], s[3]])
}

/// If the axes `dims` (with `strides`) can be walked as one axis with a single stride, that
/// stride (1 when every axis has length ≤ 1).
fn merged_stride(dims: &[usize], strides: &[isize]) -> Option<isize> {
    let mut inner: Option<isize> = None;
    let mut expect = 0isize;
    for (&d, &s) in dims.iter().zip(strides).rev() {
        if d == 1 {
            continue;
        }
        match inner {
            None => inner = Some(s),
            Some(_) if s != expect => return None,
            Some(_) => {}
        }
        expect = s.wrapping_mul(d as isize);
    }
    Some(inner.unwrap_or(1))
}

/// A view whose axes `1..` merge to a single stride (copied to standard layout when they do
/// not; a rare, allocating path for exotic views). Returns the view and the row/col strides of
/// the `(shape[0], prod(shape[1..]))` matrix it denotes.
fn as_matrix<'a, T: Element>(a: &'a ArrayViewD<'a, T>) -> (CowArray<'a, T, IxDyn>, isize, isize) {
    let cs = merged_stride(&a.shape()[1..], &a.strides()[1..]);
    match cs {
        Some(cs) => (CowArray::from(a.view()), a.strides()[0], cs),
        None => {
            let owned = a.as_standard_layout().into_owned();
            let k: usize = a.shape()[1..].iter().product();
            (CowArray::from(owned), k as isize, 1)
        }
    }
}

/// A row-major slice of `n` zeros-or-garbage elements from `key`'s buffer, grown if needed
/// (falls back to a fresh allocation if the buffer is busy, e.g. re-entrancy).
fn with_buf<T: Element, R>(
    key: &'static LocalKey<RefCell<Vec<T>>>,
    n: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> Result<R> {
    let mut f = Some(f);
    let attempt = key.try_with(|cell| -> Option<Result<R>> {
        let mut v = cell.try_borrow_mut().ok()?;
        if v.len() < n {
            let extra = n - v.len();
            if v.try_reserve_exact(extra).is_err() {
                return Some(Err(CoreError::Alloc {
                    bytes: n.saturating_mul(std::mem::size_of::<T>()),
                    shape: fmt_shape(&[n]),
                }));
            }
            v.resize(n, T::zero());
        }
        let f = f.take()?;
        Some(Ok(f(&mut v[..n])))
    });
    match attempt {
        Ok(Some(r)) => r,
        _ => {
            let mut v = try_alloc::<T>(n, &[n])?;
            match f.take() {
                Some(f) => Ok(f(&mut v)),
                None => Err(CoreError::Device("conv scratch buffer unavailable".into())),
            }
        }
    }
}

/// Float types the convolution supports: a GEMM and per-thread scratch buffers.
pub(crate) trait ConvFloat: Float {
    /// The im2col scratch of this thread.
    fn scratch() -> &'static LocalKey<RefCell<Vec<Self>>>;
    /// Per-thread partial sums for the weight gradient (owned by the calling thread).
    fn partials() -> &'static LocalKey<RefCell<Vec<Self>>>;
    /// `C ← α·A·B + β·C` through matrixmultiply.
    ///
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
}

thread_local! {
    static SCRATCH_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    static PARTIAL_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static PARTIAL_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

impl ConvFloat for f32 {
    fn scratch() -> &'static LocalKey<RefCell<Vec<f32>>> { &SCRATCH_F32 }
    fn partials() -> &'static LocalKey<RefCell<Vec<f32>>> { &PARTIAL_F32 }
    unsafe fn gemm_raw(
        m: usize, k: usize, n: usize, alpha: f32,
        a: *const f32, rsa: isize, csa: isize,
        b: *const f32, rsb: isize, csb: isize,
        beta: f32, c: *mut f32, rsc: isize, csc: isize,
    ) {
        // SAFETY: forwarded caller contract.
        unsafe { matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

impl ConvFloat for f64 {
    fn scratch() -> &'static LocalKey<RefCell<Vec<f64>>> { &SCRATCH_F64 }
    fn partials() -> &'static LocalKey<RefCell<Vec<f64>>> { &PARTIAL_F64 }
    unsafe fn gemm_raw(
        m: usize, k: usize, n: usize, alpha: f64,
        a: *const f64, rsa: isize, csa: isize,
        b: *const f64, rsb: isize, csb: isize,
        beta: f64, c: *mut f64, rsc: isize, csc: isize,
    ) {
        // SAFETY: forwarded caller contract.
        unsafe { matrixmultiply::dgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

/// A strided read-only matrix operand.
#[derive(Clone, Copy)]
struct Mat<T> {
    ptr: *const T,
    rs: isize,
    cs: isize,
}

#[allow(clippy::too_many_arguments)]
/// `c (m×n, row-major with row stride ldc) ← A·B + β·c`, with the degenerate sizes handled.
///
/// # Safety
/// As [`ConvFloat::gemm_raw`]; `c` must hold `m` rows of `ldc ≥ n` elements.
unsafe fn gemm<T: ConvFloat>(m: usize, k: usize, n: usize, a: Mat<T>, b: Mat<T>, beta: T, c: &mut [T], ldc: usize) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for r in 0..m {
            for v in &mut c[r * ldc..r * ldc + n] {
                *v = if beta == T::zero() { T::zero() } else { *v * beta };
            }
        }
        return;
    }
    // SAFETY: caller contract; `c` is a live exclusive slice large enough.
    unsafe {
        T::gemm_raw(m, k, n, T::one(), a.ptr, a.rs, a.cs, b.ptr, b.rs, b.cs, beta, c.as_mut_ptr(), ldc as isize, 1)
    }
}

/// `matrixmultiply` splits a product across its own threads once `m·k + k·n ≥ 2¹⁵`; inside
/// our batch-parallel regions that nests pools and oversubscribes the cores (measured ~40%
/// slower on 2 cores, and its small shared pool serializes many callers), so there every
/// product is cut into blocks below that size.
const MM_SERIAL_LIMIT: usize = 1 << 15;

/// Block sizes `(mb, kb, nb)` for [`gemm_serial`]: every block satisfies
/// `kb·(mb + nb) < MM_SERIAL_LIMIT`, chosen to minimize the relative extra memory traffic
/// `1/mb + 1/nb + 1/kb` (B repacked per row block, A per column block, C re-read per k-block).
fn serial_blocks(m: usize, k: usize, n: usize) -> (usize, usize, usize) {
    let mut best = (f64::INFINITY, (1, 1, 1));
    // k-blocks of at least 16 (or all of k).
    let max_nk = k.div_ceil(16).max(1);
    for nk in 1..=max_nk {
        let kb = k.div_ceil(nk);
        if nk > 1 && k.div_ceil(kb) != nk {
            continue; // same kb as a smaller nk
        }
        let budget = (MM_SERIAL_LIMIT - 1) / kb; // mb + nb ≤ budget
        if budget < 2 {
            continue;
        }
        let (mb, nb) = if m + n <= budget {
            (m, n)
        } else if 2 * m <= budget {
            (m, budget - m)
        } else if 2 * n <= budget {
            (budget - n, n)
        } else {
            (budget / 2, budget - budget / 2)
        };
        let mb = m.div_ceil(m.div_ceil(mb));
        let nb = n.div_ceil(n.div_ceil(nb));
        let cost = 1.0 / mb as f64 + 1.0 / nb as f64 + 1.0 / kb as f64;
        if cost < best.0 {
            best = (cost, (mb, kb, nb));
        }
    }
    best.1
}

#[allow(clippy::too_many_arguments)]
/// Like [`gemm`] but guaranteed to run on the calling thread: large products are done as a
/// sequence of blocks that matrixmultiply will not thread.
///
/// # Safety
/// As [`gemm`].
unsafe fn gemm_serial<T: ConvFloat>(m: usize, k: usize, n: usize, a: Mat<T>, b: Mat<T>, beta: T, c: &mut [T], ldc: usize) {
    if k == 0 || m == 0 || n == 0 || m * k + k * n < MM_SERIAL_LIMIT {
        // SAFETY: forwarded.
        unsafe { gemm(m, k, n, a, b, beta, c, ldc) };
        return;
    }
    let (mb, kb, nb) = serial_blocks(m, k, n);
    let mut i0 = 0;
    while i0 < m {
        let mi = mb.min(m - i0);
        let mut j0 = 0;
        while j0 < n {
            let nj = nb.min(n - j0);
            let mut k0 = 0;
            while k0 < k {
                let kk = kb.min(k - k0);
                let bt = if k0 == 0 { beta } else { T::one() };
                // SAFETY: the offsets select the (i0.., k0..) block of A, the (k0.., j0..) block
                // of B and the (i0.., j0..) block of C, all inside the caller's matrices.
                unsafe {
                    let ab = Mat { ptr: a.ptr.offset(i0 as isize * a.rs + k0 as isize * a.cs), ..a };
                    let bb = Mat { ptr: b.ptr.offset(k0 as isize * b.rs + j0 as isize * b.cs), ..b };
                    gemm(mi, kk, nj, ab, bb, bt, &mut c[i0 * ldc + j0..], ldc);
                }
                k0 += kk;
            }
            j0 += nj;
        }
        i0 += mi;
    }
}

/// [`gemm_serial`] inside parallel regions, [`gemm`] (which may use matrixmultiply's threads)
/// otherwise.
///
/// # Safety
/// As [`gemm`].
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_in<T: ConvFloat>(par: bool, m: usize, k: usize, n: usize, a: Mat<T>, b: Mat<T>, beta: T, c: &mut [T], ldc: usize) {
    // SAFETY: forwarded.
    unsafe {
        if par {
            gemm_serial(m, k, n, a, b, beta, c, ldc)
        } else {
            gemm(m, k, n, a, b, beta, c, ldc)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Geometry.
// ---------------------------------------------------------------------------------------------

/// Sizes of one convolution.
#[derive(Clone, Copy, Debug)]
struct Geom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    p: Conv2dParams,
}

impl Geom {
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    fn pix(&self) -> usize {
        self.oh * self.ow
    }
    /// 1×1 kernel, stride 1, no padding: `col` is the input itself.
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.p.stride == (1, 1) && self.p.padding == (0, 0)
    }
    fn macs(&self) -> usize {
        self.n.saturating_mul(self.o).saturating_mul(self.k()).saturating_mul(self.pix())
    }
    fn parallel(&self) -> bool {
        self.n >= 2 && self.macs() >= (1 << 20) && max_threads() > 1
    }
}

/// Validates stride/dilation and computes the output size.
fn geometry(op: &'static str, x: [usize; 4], o: usize, khw: (usize, usize), p: Conv2dParams) -> Result<Geom> {
    if p.stride.0 == 0 || p.stride.1 == 0 || p.dilation.0 == 0 || p.dilation.1 == 0 {
        return Err(CoreError::Shape {
            op,
            detail: format!(
                "stride {:?} and dilation {:?} must be positive",
                p.stride, p.dilation
            ),
        });
    }
    let (oh, ow) = p.out_hw((x[2], x[3]), khw).ok_or_else(|| CoreError::Shape {
        op,
        detail: format!(
            "kernel {} with dilation {} is larger than the padded input {} (input {}, padding {})",
            fmt_shape(&[khw.0, khw.1]),
            fmt_shape(&[p.dilation.0, p.dilation.1]),
            fmt_shape(&[x[2] + 2 * p.padding.0, x[3] + 2 * p.padding.1]),
            fmt_shape(&x),
            fmt_shape(&[p.padding.0, p.padding.1]),
        ),
    })?;
    Ok(Geom { n: x[0], c: x[1], h: x[2], w: x[3], o, kh: khw.0, kw: khw.1, oh, ow, p })
}

fn channel_mismatch(op: &'static str, x: &[usize], w: &[usize]) -> CoreError {
    CoreError::Shape {
        op,
        detail: format!(
            "input {} has {} channels but weight {} expects {}",
            fmt_shape(x),
            x[1],
            fmt_shape(w),
            w[1]
        ),
    }
}

/// Output columns `[lo, hi)` whose tap at offset `off = j·d` lands inside `[0, len)` after
/// subtracting the padding: `0 ≤ o·s + off − pad < len`.
#[inline]
fn valid_range(n_out: usize, off: usize, pad: usize, s: usize, len: usize) -> (usize, usize) {
    let lo = if off >= pad { 0 } else { (pad - off).div_ceil(s) };
    let hi = if len + pad > off { (len + pad - off).div_ceil(s) } else { 0 };
    let hi = hi.min(n_out);
    let lo = lo.min(hi);
    (lo, hi)
}

/// Unrolls one image (`x` points at `[n, 0, 0, 0]`, `xs` = strides of C, H, W) into
/// `col (K, P)` row-major.
///
/// # Safety
/// `x` with strides `xs` must address a live `(C, H, W)` array matching `g`.
unsafe fn im2col<T: Element>(x: *const T, xs: [isize; 3], g: &Geom, col: &mut [T]) {
    let (sh, sw) = g.p.stride;
    let (ph, pw) = g.p.padding;
    let (dh, dw) = g.p.dilation;
    let (oh, ow) = (g.oh, g.ow);
    let pix = oh * ow;
    let mut row = 0;
    for c in 0..g.c {
        // SAFETY: c < C.
        let xc = unsafe { x.offset(c as isize * xs[0]) };
        for i in 0..g.kh {
            for j in 0..g.kw {
                let dst = &mut col[row * pix..(row + 1) * pix];
                let (lo, hi) = valid_range(ow, j * dw, pw, sw, g.w);
                for oy in 0..oh {
                    let d = &mut dst[oy * ow..(oy + 1) * ow];
                    let iy = (oy * sh + i * dh) as isize - ph as isize;
                    if iy < 0 || iy >= g.h as isize || lo == hi {
                        d.fill(T::zero());
                        continue;
                    }
                    d[..lo].fill(T::zero());
                    d[hi..].fill(T::zero());
                    let ix0 = (lo * sw + j * dw) as isize - pw as isize;
                    // SAFETY: 0 ≤ iy < H and every ix = ix0 + t·sw for t < hi−lo is in [0, W).
                    unsafe {
                        let xr = xc.offset(iy * xs[1] + ix0 * xs[2]);
                        if sw == 1 && xs[2] == 1 {
                            d[lo..hi].copy_from_slice(std::slice::from_raw_parts(xr, hi - lo));
                        } else {
                            let step = sw as isize * xs[2];
                            for (t, v) in d[lo..hi].iter_mut().enumerate() {
                                *v = *xr.offset(t as isize * step);
                            }
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// Adds `col (K, P)` back onto one image `out (C, H, W)` (contiguous): the adjoint of im2col.
fn col2im<T: Float>(col: &[T], g: &Geom, out: &mut [T]) {
    let (sh, sw) = g.p.stride;
    let (ph, pw) = g.p.padding;
    let (dh, dw) = g.p.dilation;
    let (oh, ow) = (g.oh, g.ow);
    let (h, w) = (g.h, g.w);
    let pix = oh * ow;
    let mut row = 0;
    for c in 0..g.c {
        let oc = &mut out[c * h * w..(c + 1) * h * w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let src = &col[row * pix..(row + 1) * pix];
                let (lo, hi) = valid_range(ow, j * dw, pw, sw, w);
                row += 1;
                if lo == hi {
                    continue;
                }
                for oy in 0..oh {
                    let iy = (oy * sh + i * dh) as isize - ph as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let s = &src[oy * ow + lo..oy * ow + hi];
                    let ix0 = lo * sw + j * dw - pw;
                    let orow = &mut oc[iy as usize * w..(iy as usize + 1) * w];
                    if sw == 1 {
                        for (d, &v) in orow[ix0..ix0 + (hi - lo)].iter_mut().zip(s) {
                            *d += v;
                        }
                    } else {
                        for (t, &v) in s.iter().enumerate() {
                            orow[ix0 + t * sw] += v;
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Forward.
// ---------------------------------------------------------------------------------------------

/// `out = conv2d(x, w)`: x `(N, C, H, W)`, w `(O, C, kH, kW)`, out `(N, O, oH, oW)`.
///
/// float32 / float64 only; `x`, `w` and `out` must share the dtype; `out` must be contiguous.
/// Operands may be arbitrary strided views.
///
/// ```
/// use gorgon_core::{Tensor, kernels::conv::{conv2d, Conv2dParams}};
/// let x = Tensor::from_vec_f64((0..9).map(f64::from).collect(), &[1, 1, 3, 3]).unwrap();
/// let w = Tensor::from_vec_f64(vec![1.0; 4], &[1, 1, 2, 2]).unwrap();
/// let p = Conv2dParams { stride: (1, 1), padding: (0, 0), dilation: (1, 1) };
/// let mut out = Tensor::zeros(gorgon_core::DType::F64, &[1, 1, 2, 2]);
/// conv2d(&x.view(), &w.view(), p, &mut out).unwrap();
/// assert_eq!(out.to_vec_f64(), vec![8.0, 12.0, 20.0, 24.0]);
/// ```
pub fn conv2d(x: &TensorView, w: &TensorView, p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    const OP: &str = "conv2d";
    let dt = check_float_dtypes(OP, &[x.dtype(), w.dtype()], out.dtype())?;
    let xs = check_4d(OP, "input", "(N, C, H, W)", x.shape())?;
    let ws = check_4d(OP, "weight", "(O, C, kH, kW)", w.shape())?;
    if xs[1] != ws[1] {
        return Err(channel_mismatch(OP, &xs, &ws));
    }
    let g = geometry(OP, xs, ws[0], (ws[2], ws[3]), p)?;
    check_out_shape(OP, out.shape(), &[g.n, g.o, g.oh, g.ow])?;
    match dt {
        DType::F32 => conv2d_t::<f32>(OP, x, w, &g, out),
        _ => conv2d_t::<f64>(OP, x, w, &g, out),
    }
}

fn typed<'a, T: Element>(op: &'static str, v: &TensorView<'a>) -> Result<ArrayViewD<'a, T>> {
    v.as_array::<T>().ok_or(CoreError::DType { op, dtype: v.dtype(), detail: format!("expected {}", T::DTYPE) })
}

fn conv2d_t<T: ConvFloat>(op: &'static str, x: &TensorView, w: &TensorView, g: &Geom, out: &mut Tensor) -> Result<()> {
    let x = typed::<T>(op, x)?;
    let w = typed::<T>(op, w)?;
    let out = out_slice::<T>(op, out)?;
    let (k, pix, o) = (g.k(), g.pix(), g.o);
    if out.is_empty() {
        return Ok(());
    }
    if k == 0 {
        out.fill(T::zero());
        return Ok(());
    }
    let (wm, w_rs, w_cs) = as_matrix(&w);
    let wmat = SendPtr(wm.as_ptr());
    let (xp, xs) = raw4(&x);
    let pointwise = if g.is_pointwise() { merged_stride(&x.shape()[2..], &x.strides()[2..]) } else { None };

    let parts = if g.parallel() { max_threads() } else { 1 };
    let par = parts > 1;
    let one_image = |n: usize, dst: &mut [T]| -> Result<()> {
        let a = Mat { ptr: wmat.get(), rs: w_rs, cs: w_cs };
        // SAFETY: n < N so the image offset is in bounds.
        let xn = unsafe { xp.get().offset(n as isize * xs[0]) };
        if let Some(ps) = pointwise {
            let b = Mat { ptr: xn, rs: xs[1], cs: ps };
            // SAFETY: W is (O, K=C), x[n] is (C, P) with the strides above, dst is (O, P).
            unsafe { gemm_in(par, o, k, pix, a, b, T::zero(), dst, pix) };
            return Ok(());
        }
        with_buf(T::scratch(), k * pix, |col| {
            // SAFETY: x[n] is a live (C, H, W) array with strides xs[1..].
            unsafe { im2col(xn, [xs[1], xs[2], xs[3]], g, col) };
            let b = Mat { ptr: col.as_ptr(), rs: pix as isize, cs: 1 };
            // SAFETY: W (O, K), col (K, P), dst (O, P) contiguous and distinct from both.
            unsafe { gemm_in(par, o, k, pix, a, b, T::zero(), dst, pix) };
        })
    };
    par_items(out, o * pix, parts, |first, chunk| {
        chunk.chunks_mut(o * pix).enumerate().try_for_each(|(i, dst)| one_image(first + i, dst))
    })
}

// ---------------------------------------------------------------------------------------------
// Input gradient.
// ---------------------------------------------------------------------------------------------

/// Gradient w.r.t. the input: `out (N, C, H, W)` from `grad (N, O, oH, oW)` and `w`.
///
/// The input's spatial size is taken from `out`'s shape (several input sizes can give the
/// same output size when the stride is > 1).
pub fn conv2d_backward_input(grad: &TensorView, w: &TensorView, p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    const OP: &str = "conv2d_backward_input";
    let dt = check_float_dtypes(OP, &[grad.dtype(), w.dtype()], out.dtype())?;
    let gs = check_4d(OP, "grad", "(N, O, oH, oW)", grad.shape())?;
    let ws = check_4d(OP, "weight", "(O, C, kH, kW)", w.shape())?;
    let xs = check_4d(OP, "output", "(N, C, H, W)", out.shape())?;
    if xs[1] != ws[1] {
        return Err(channel_mismatch(OP, &xs, &ws));
    }
    let g = geometry(OP, xs, ws[0], (ws[2], ws[3]), p)?;
    let expect = [g.n, g.o, g.oh, g.ow];
    if gs != expect {
        return Err(CoreError::Shape {
            op: OP,
            detail: format!(
                "grad has shape {}, expected {} for input {} and weight {}",
                fmt_shape(&gs),
                fmt_shape(&expect),
                fmt_shape(&xs),
                fmt_shape(&ws)
            ),
        });
    }
    match dt {
        DType::F32 => conv2d_bi_t::<f32>(OP, grad, w, &g, out),
        _ => conv2d_bi_t::<f64>(OP, grad, w, &g, out),
    }
}

fn conv2d_bi_t<T: ConvFloat>(op: &'static str, grad: &TensorView, w: &TensorView, g: &Geom, out: &mut Tensor) -> Result<()> {
    let grad = typed::<T>(op, grad)?;
    let w = typed::<T>(op, w)?;
    let out = out_slice::<T>(op, out)?;
    let (k, pix, o) = (g.k(), g.pix(), g.o);
    let img = g.c * g.h * g.w;
    if out.is_empty() {
        return Ok(());
    }
    if k == 0 || o == 0 {
        out.fill(T::zero());
        return Ok(());
    }
    let (wm, w_rs, w_cs) = as_matrix(&w);
    let wmat = SendPtr(wm.as_ptr());
    // grad[n] as an (O, P) matrix: needs (oH, oW) to merge, else copy once.
    let gcow: CowArray<'_, T, IxDyn> = match merged_stride(&grad.shape()[2..], &grad.strides()[2..]) {
        Some(_) => CowArray::from(grad.view()),
        None => CowArray::from(grad.as_standard_layout().into_owned()),
    };
    let gview = gcow.view();
    let (gp, gst) = raw4(&gview);
    let g_cs = merged_stride(&gview.shape()[2..], &gview.strides()[2..]).unwrap_or(1);
    let pointwise = g.is_pointwise();

    let parts = if g.parallel() { max_threads() } else { 1 };
    let par = parts > 1;
    let one_image = |n: usize, dst: &mut [T]| -> Result<()> {
        // Wᵀ: (K, O).
        let a = Mat { ptr: wmat.get(), rs: w_cs, cs: w_rs };
        // SAFETY: n < N.
        let b = Mat { ptr: unsafe { gp.get().offset(n as isize * gst[0]) }, rs: gst[1], cs: g_cs };
        if pointwise {
            // SAFETY: Wᵀ (C, O) · grad[n] (O, H·W) → dst (C, H·W) contiguous.
            unsafe { gemm_in(par, k, o, pix, a, b, T::zero(), dst, pix) };
            return Ok(());
        }
        with_buf(T::scratch(), k * pix, |col| {
            // SAFETY: Wᵀ (K, O), grad[n] (O, P), col (K, P) contiguous and private.
            unsafe { gemm_in(par, k, o, pix, a, b, T::zero(), col, pix) };
            dst.fill(T::zero());
            col2im(col, g, dst);
        })
    };
    par_items(out, img, parts, |first, chunk| {
        chunk.chunks_mut(img).enumerate().try_for_each(|(i, dst)| one_image(first + i, dst))
    })
}

// ---------------------------------------------------------------------------------------------
// Weight gradient.
// ---------------------------------------------------------------------------------------------

/// Gradient w.r.t. the weight: `out (O, C, kH, kW)` from `x` and `grad (N, O, oH, oW)`.
///
/// The kernel size is taken from `out`'s shape. The batch sum is split into contiguous
/// per-thread ranges whose partials are added in a fixed order (deterministic for a given
/// thread count).
pub fn conv2d_backward_weight(x: &TensorView, grad: &TensorView, p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    const OP: &str = "conv2d_backward_weight";
    let dt = check_float_dtypes(OP, &[x.dtype(), grad.dtype()], out.dtype())?;
    let xs = check_4d(OP, "input", "(N, C, H, W)", x.shape())?;
    let gs = check_4d(OP, "grad", "(N, O, oH, oW)", grad.shape())?;
    let ws = check_4d(OP, "output", "(O, C, kH, kW)", out.shape())?;
    if xs[1] != ws[1] {
        return Err(channel_mismatch(OP, &xs, &ws));
    }
    let g = geometry(OP, xs, ws[0], (ws[2], ws[3]), p)?;
    let expect = [g.n, g.o, g.oh, g.ow];
    if gs != expect {
        return Err(CoreError::Shape {
            op: OP,
            detail: format!(
                "grad has shape {}, expected {} for input {} and weight {}",
                fmt_shape(&gs),
                fmt_shape(&expect),
                fmt_shape(&xs),
                fmt_shape(&ws)
            ),
        });
    }
    match dt {
        DType::F32 => conv2d_bw_t::<f32>(OP, x, grad, &g, out),
        _ => conv2d_bw_t::<f64>(OP, x, grad, &g, out),
    }
}

fn conv2d_bw_t<T: ConvFloat>(op: &'static str, x: &TensorView, grad: &TensorView, g: &Geom, out: &mut Tensor) -> Result<()> {
    let x = typed::<T>(op, x)?;
    let grad = typed::<T>(op, grad)?;
    let out = out_slice::<T>(op, out)?;
    let (k, pix, o) = (g.k(), g.pix(), g.o);
    if out.is_empty() {
        return Ok(());
    }
    if g.n == 0 || pix == 0 {
        out.fill(T::zero());
        return Ok(());
    }
    let gcow: CowArray<'_, T, IxDyn> = match merged_stride(&grad.shape()[2..], &grad.strides()[2..]) {
        Some(_) => CowArray::from(grad.view()),
        None => CowArray::from(grad.as_standard_layout().into_owned()),
    };
    let gview = gcow.view();
    let (gp, gst) = raw4(&gview);
    let g_cs = merged_stride(&gview.shape()[2..], &gview.strides()[2..]).unwrap_or(1);
    let (xp, xst) = raw4(&x);
    let pointwise = if g.is_pointwise() { merged_stride(&x.shape()[2..], &x.strides()[2..]) } else { None };

    let chunks = if g.parallel() { max_threads().min(g.n) } else { 1 };
    let par = chunks > 1;
    // Sums images [lo, hi) into dst (O, K), overwriting it.
    let range = |lo: usize, hi: usize, dst: &mut [T]| -> Result<()> {
        let grad_n = |n: usize| Mat {
            // SAFETY: n < N.
            ptr: unsafe { gp.get().offset(n as isize * gst[0]) },
            rs: gst[1],
            cs: g_cs,
        };
        // SAFETY: n < N.
        let x_n = |n: usize| unsafe { xp.get().offset(n as isize * xst[0]) };
        if let Some(ps) = pointwise {
            for n in lo..hi {
                let beta = if n == lo { T::zero() } else { T::one() };
                // x[n]ᵀ: (P, C).
                let b = Mat { ptr: x_n(n), rs: ps, cs: xst[1] };
                // SAFETY: grad[n] (O, P) · x[n]ᵀ (P, C) → dst (O, C).
                unsafe { gemm_in(par, o, pix, k, grad_n(n), b, beta, dst, k) };
            }
            return Ok(());
        }
        with_buf(T::scratch(), k * pix, |col| {
            for n in lo..hi {
                let beta = if n == lo { T::zero() } else { T::one() };
                // SAFETY: x[n] is a live (C, H, W) array with strides xst[1..].
                unsafe { im2col(x_n(n), [xst[1], xst[2], xst[3]], g, col) };
                let b = Mat { ptr: col.as_ptr(), rs: 1, cs: pix as isize };
                // SAFETY: grad[n] (O, P) · colᵀ (P, K) → dst (O, K).
                unsafe { gemm_in(par, o, pix, k, grad_n(n), b, beta, dst, k) };
            }
        })
    };

    if chunks <= 1 {
        return range(0, g.n, out);
    }
    let bounds = |i: usize| i * g.n / chunks;
    let ok = out.len();
    let mut go = |partials: &mut [T]| -> Result<()> {
        let (r0, r1) = rayon::join(
            || range(bounds(0), bounds(1), &mut *out),
            || {
                partials
                    .par_chunks_mut(ok)
                    .enumerate()
                    .try_for_each(|(i, dst)| range(bounds(i + 1), bounds(i + 2), dst))
            },
        );
        r0?;
        r1?;
        for part in partials.chunks(ok) {
            for (d, &v) in out.iter_mut().zip(part) {
                *d += v;
            }
        }
        Ok(())
    };
    with_buf(T::partials(), (chunks - 1) * ok, |parts| go(parts))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_range_matches_definition() {
        for n_out in 0..6 {
            for off in 0..7 {
                for pad in 0..4 {
                    for s in 1..4 {
                        for len in 0..6 {
                            let inside = |o: usize| {
                                let i = (o * s + off) as isize - pad as isize;
                                i >= 0 && i < len as isize
                            };
                            let (lo, hi) = valid_range(n_out, off, pad, s, len);
                            assert!(lo <= hi && hi <= n_out);
                            for o in 0..n_out {
                                assert_eq!(inside(o), o >= lo && o < hi, "{n_out} {off} {pad} {s} {len} o={o}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn merged_strides() {
        assert_eq!(merged_stride(&[3, 4, 5], &[20, 5, 1]), Some(1));
        assert_eq!(merged_stride(&[3, 1, 5], &[5, 99, 1]), Some(1));
        assert_eq!(merged_stride(&[3, 4], &[1, 3]), None);
        assert_eq!(merged_stride(&[3, 4], &[0, 0]), Some(0));
        assert_eq!(merged_stride(&[3, 4], &[-4, -1]), Some(-1));
        assert_eq!(merged_stride(&[1, 1], &[7, 9]), Some(1));
        assert_eq!(merged_stride(&[2, 3], &[6, 2]), Some(2));
    }

    #[test]
    fn scratch_grows_and_survives_reentrancy() {
        let r = with_buf(f64::scratch(), 10, |a| {
            a.fill(1.0);
            // Nested use of the same buffer falls back to a fresh allocation.
            let inner = with_buf(f64::scratch(), 4, |b| b.len()).unwrap();
            a.len() + inner
        })
        .unwrap();
        assert_eq!(r, 14);
        SCRATCH_F64.with(|c| assert!(c.borrow().len() >= 10));
    }

    #[test]
    fn blocked_gemm_matches_plain() {
        for &(m, k, n) in &[(64, 288, 196), (300, 700, 5), (3, 900, 400), (200, 20, 1000), (1, 5000, 1)] {
            let a: Vec<f64> = (0..m * k).map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0).collect();
            let b: Vec<f64> = (0..k * n).map(|i| ((i * 104729) % 97) as f64 / 48.0 - 1.0).collect();
            // A row-major, B column-major (transposed view), C with an extra-wide row.
            let am = Mat { ptr: a.as_ptr(), rs: k as isize, cs: 1 };
            let bm = Mat { ptr: b.as_ptr(), rs: 1, cs: k as isize };
            let ldc = n + 3;
            let mut c1 = vec![0.5; m * ldc];
            let mut c2 = c1.clone();
            unsafe {
                gemm(m, k, n, am, bm, 2.0, &mut c1, ldc);
                gemm_serial(m, k, n, am, bm, 2.0, &mut c2, ldc);
            }
            let err = c1.iter().zip(&c2).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
            assert!(err < 1e-10, "{m}x{k}x{n}: {err}");
            // The padding columns are untouched.
            assert!((0..m).all(|r| c2[r * ldc + n..r * ldc + ldc].iter().all(|&v| v == 0.5)));
        }
    }

    /// `MATMUL_NUM_THREADS=1 cargo test --release --lib blocked_gemm_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn blocked_gemm_timing() {
        for &(m, k, n) in &[(64usize, 288usize, 196usize), (64, 196, 288), (128, 1152, 784), (256, 2304, 196)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32).collect();
            let am = Mat { ptr: a.as_ptr(), rs: k as isize, cs: 1 };
            let bm = Mat { ptr: b.as_ptr(), rs: n as isize, cs: 1 };
            let mut c = vec![0f32; m * n];
            let mut best = [f64::INFINITY; 2];
            for _ in 0..100 {
                for (v, slot) in best.iter_mut().enumerate() {
                    let t = std::time::Instant::now();
                    unsafe {
                        if v == 0 { gemm(m, k, n, am, bm, 0.0, &mut c, n) } else { gemm_serial(m, k, n, am, bm, 0.0, &mut c, n) }
                    }
                    *slot = slot.min(t.elapsed().as_secs_f64() * 1e6);
                }
            }
            let gf = |us: f64| 2.0 * (m * k * n) as f64 / us / 1e3;
            println!("{m}x{k}x{n}: plain {:.0} us ({:.1} GF/s), blocked {:.0} us ({:.1} GF/s)", best[0], gf(best[0]), best[1], gf(best[1]));
        }
    }

    #[test]
    fn dtype_checks() {
        assert!(check_float_dtypes("t", &[DType::F32, DType::F32], DType::F32).is_ok());
        assert!(check_float_dtypes("t", &[DType::I32], DType::I32).is_err());
        assert!(check_float_dtypes("t", &[DType::F32, DType::F64], DType::F32).is_err());
    }
}
