//! 2-D max and average pooling (NCHW), forward and backward.
//!
//! Semantics follow PyTorch with `ceil_mode=False`:
//!
//! * max pooling treats padding as −∞, propagates NaN, and its backward routes each output
//!   gradient to the window's arg-max as PyTorch's CPU kernel picks it (the first maximum in
//!   row-major window order; a NaN wins over numbers). Dilation is supported.
//! * average pooling is `count_include_pad=True`: each window is clipped to the padded input
//!   (`H + pad`), its size is the divisor, and the sum runs over the real input cells only.
//!   Average pooling has no dilation; anything but `(1, 1)` is rejected.
//!
//! Inputs may be arbitrary strided views; outputs must be contiguous. Work is split over the
//! `N·C` planes with rayon when it is large enough.
//!
//! Max pooling without padding or dilation over rows with unit stride takes the fast paths
//! of the `fast` module (and, for float32 2×2 / stride 2 windows on AVX2 machines, `avx2`), which
//! give bit-identical results; everything else walks each window generically.

use crate::error::{fmt_shape, CoreError};
use crate::kernels::conv::{
    by_float_dtype, check_4d, check_float_dtypes, check_out_shape, max_threads, out_hw, out_slice, par_items, raw4, typed,
    Conv2dParams,
};
use crate::kernels::threads::SendPtr;
use crate::{DType, Float, Result, Tensor, TensorView};

#[cfg(target_arch = "x86_64")]
mod avx2;
mod fast;

/// Pool sizes.
#[derive(Clone, Copy, Debug)]
struct PGeom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    p: Conv2dParams,
}

impl PGeom {
    fn parallel(&self) -> bool {
        let work = (self.n * self.c)
            .saturating_mul(self.oh * self.ow)
            .saturating_mul(self.kh * self.kw);
        self.n * self.c >= 2 && work >= (1 << 16) && max_threads() > 1
    }
}

fn pool_geometry(
    op: &'static str,
    x: [usize; 4],
    kernel: (usize, usize),
    p: Conv2dParams,
    allow_dilation: bool,
) -> Result<PGeom> {
    if kernel.0 == 0 || kernel.1 == 0 {
        return Err(CoreError::Shape {
            op,
            detail: format!("kernel size {} must be positive", fmt_shape(&[kernel.0, kernel.1])),
        });
    }
    if p.stride.0 == 0 || p.stride.1 == 0 || p.dilation.0 == 0 || p.dilation.1 == 0 {
        return Err(CoreError::Shape {
            op,
            detail: format!(
                "stride {} and dilation {} must be positive",
                fmt_shape(&[p.stride.0, p.stride.1]),
                fmt_shape(&[p.dilation.0, p.dilation.1])
            ),
        });
    }
    if !allow_dilation && p.dilation != (1, 1) {
        return Err(CoreError::Shape {
            op,
            detail: format!(
                "dilation {} is not supported (only (1, 1))",
                fmt_shape(&[p.dilation.0, p.dilation.1])
            ),
        });
    }
    let (oh, ow) = out_hw(op, "window", x, kernel, p)?;
    Ok(PGeom { n: x[0], c: x[1], h: x[2], w: x[3], kh: kernel.0, kw: kernel.1, oh, ow, p })
}

/// Checks of a forward pass: one float dtype, a 4-D input, the window, and `out`'s shape.
fn forward_geometry(op: &'static str, x: &TensorView, kernel: (usize, usize), p: Conv2dParams, out: &Tensor, dilation: bool) -> Result<(DType, PGeom)> {
    let dt = check_float_dtypes(op, &[x.dtype()], out.dtype())?;
    let g = pool_geometry(op, check_4d(op, "input", "(N, C, H, W)", x.shape())?, kernel, p, dilation)?;
    check_out_shape(op, out.shape(), &[g.n, g.c, g.oh, g.ow])?;
    Ok((dt, g))
}

/// Checks of a backward pass: one float dtype (`ins`, `out`), the input-shaped operand `x`
/// (`(name, shape)`) 4-D, the window, and the gradient's shape.
#[allow(clippy::too_many_arguments)]
fn backward_geometry(
    op: &'static str,
    ins: &[DType],
    out: DType,
    x: (&str, &[usize]),
    grad: &[usize],
    kernel: (usize, usize),
    p: Conv2dParams,
    dilation: bool,
) -> Result<(DType, PGeom)> {
    let dt = check_float_dtypes(op, ins, out)?;
    let g = pool_geometry(op, check_4d(op, x.0, "(N, C, H, W)", x.1)?, kernel, p, dilation)?;
    let expect = [g.n, g.c, g.oh, g.ow];
    if grad != expect {
        return Err(CoreError::Shape {
            op,
            detail: format!(
                "grad has shape {}, expected {} for input {}",
                fmt_shape(grad),
                fmt_shape(&expect),
                fmt_shape(&[g.n, g.c, g.h, g.w])
            ),
        });
    }
    Ok((dt, g))
}

/// Runs a pooling pass plane by plane: `f(i, src, strides, dst)` for every `(n, c)` plane
/// `i = n·C + c`, with `src` pointing at that plane of `src_view` (the input forward, the
/// gradient backward; `strides` are its 4-D strides) and `dst` the plane of `out`
/// (`out_plane` elements). Planes run in parallel when the work is large.
fn for_planes<T: Float>(
    op: &'static str,
    src_view: &TensorView,
    g: &PGeom,
    out: &mut Tensor,
    out_plane: usize,
    f: impl Fn(usize, *const T, [isize; 4], &mut [T]) + Sync + Send,
) -> Result<()> {
    let src = typed::<T>(op, src_view)?;
    let out = out_slice::<T>(op, out)?;
    let (sp, s) = raw4(&src);
    let (c, parts) = (g.c, if g.parallel() { max_threads() } else { 1 });
    let infallible: std::result::Result<(), std::convert::Infallible> = par_items(out, out_plane, parts, |first, chunk| {
        for (k, dst) in chunk.chunks_mut(out_plane).enumerate() {
            // SAFETY: first + k < N·C (one item per plane).
            f(first + k, unsafe { plane_ptr(sp, s, c, first + k) }, s, dst);
        }
        Ok(())
    });
    let _ = infallible;
    Ok(())
}

/// The reduction of one pooling window, for the forward pass.
trait Window: Copy + Sync + Send {
    /// The value of output `(oy, ox)` from the input plane at `xp` (strides `s[2]`, `s[3]`).
    ///
    /// # Safety
    /// `xp` with strides `s` must address a live `(H, W)` plane matching `g`.
    unsafe fn value<T: Float>(self, xp: *const T, s: [isize; 4], g: &PGeom, oy: usize, ox: usize) -> T;
}

/// Max pooling's window: the arg-max's value, −∞ when the window holds no input cell.
#[derive(Clone, Copy)]
struct MaxWindow;

impl Window for MaxWindow {
    #[inline(always)]
    unsafe fn value<T: Float>(self, xp: *const T, s: [isize; 4], g: &PGeom, oy: usize, ox: usize) -> T {
        // SAFETY: caller contract.
        let r = unsafe { window_argmax(xp, s[2], s[3], g, oy, ox) };
        r.map_or(T::neg_infinity(), |(_, v)| v)
    }
}

/// Average pooling's window: the sum over the real cells divided by the window size.
#[derive(Clone, Copy)]
struct AvgWindow;

impl Window for AvgWindow {
    #[inline(always)]
    unsafe fn value<T: Float>(self, xp: *const T, s: [isize; 4], g: &PGeom, oy: usize, ox: usize) -> T {
        let (y0, y1, x0, x1, size) = avg_window(g, oy, ox);
        let mut sum = T::zero();
        for iy in y0..y1 {
            for ix in x0..x1 {
                // SAFETY: iy < H, ix < W.
                sum += unsafe { *xp.offset(iy as isize * s[2] + ix as isize * s[3]) };
            }
        }
        if y0 == y1 { T::zero() } else { sum / T::from_f64(size as f64) }
    }
}

/// The forward pass of window `w`: every output cell is its window's value.
fn forward_t<T: Float>(op: &'static str, x: &TensorView, g: &PGeom, out: &mut Tensor, w: impl Window) -> Result<()> {
    let g = *g;
    for_planes(op, x, &g, out, g.oh * g.ow, move |_, pp, s, dst: &mut [T]| {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                // SAFETY: pp is a live (H, W) plane with strides s[2], s[3].
                dst[oy * g.ow + ox] = unsafe { w.value(pp, s, &g, oy, ox) };
            }
        }
    })
}

/// Pointer to plane `i = n·C + c` of a 4-D strided view.
///
/// # Safety
/// `i < N·C` of the view that `base`/`s` describe.
#[inline]
unsafe fn plane_ptr<T>(base: SendPtr<T>, s: [isize; 4], c: usize, i: usize) -> *const T {
    let (n, ch) = (i / c, i % c);
    // SAFETY: caller contract.
    unsafe { base.get().offset(n as isize * s[0] + ch as isize * s[1]) }
}

/// The window of output `(oy, ox)`: the valid taps are
/// `iy = y0 + a·dh` for `a ∈ [a0, a1)` and `ix = x0 + b·dw` for `b ∈ [b0, b1)`.
#[inline]
fn taps(start: isize, k: usize, d: usize, len: usize) -> (usize, usize) {
    // first a with start + a·d ≥ 0, first a with start + a·d ≥ len
    let a0 = if start >= 0 { 0 } else { ((-start) as usize).div_ceil(d) };
    let a1 = if start >= len as isize { 0 } else { ((len as isize - start) as usize).div_ceil(d) };
    let a1 = a1.min(k);
    (a0.min(a1), a1)
}

/// Arg-max of one window as a flat plane index, PyTorch's rule; `None` when the window
/// holds no real input cell.
///
/// # Safety
/// `xp` with strides `(sy, sx)` must address a live `(H, W)` plane matching `g`.
#[inline]
unsafe fn window_argmax<T: Float>(xp: *const T, sy: isize, sx: isize, g: &PGeom, oy: usize, ox: usize) -> Option<(usize, T)> {
    let y0 = (oy * g.p.stride.0) as isize - g.p.padding.0 as isize;
    let x0 = (ox * g.p.stride.1) as isize - g.p.padding.1 as isize;
    let (dh, dw) = g.p.dilation;
    let (a0, a1) = taps(y0, g.kh, dh, g.h);
    let (b0, b1) = taps(x0, g.kw, dw, g.w);
    if a0 >= a1 || b0 >= b1 {
        return None;
    }
    let first_y = (y0 + (a0 * dh) as isize) as usize;
    let first_x = (x0 + (b0 * dw) as isize) as usize;
    let mut best = T::neg_infinity();
    let mut idx = first_y * g.w + first_x;
    for a in a0..a1 {
        let iy = (y0 + (a * dh) as isize) as usize;
        for b in b0..b1 {
            let ix = (x0 + (b * dw) as isize) as usize;
            // SAFETY: iy < H, ix < W.
            let v = unsafe { *xp.offset(iy as isize * sy + ix as isize * sx) };
            if v > best || v.is_nan() {
                best = v;
                idx = iy * g.w + ix;
            }
        }
    }
    Some((idx, best))
}

/// Max pooling with window `kernel`; padded cells never win (as −∞).
///
/// `x (N, C, H, W)` → `out (N, C, oH, oW)`, float32/float64, with
/// `oH = (H + 2·pad − dil·(k − 1) − 1) / stride + 1`.
///
/// ```
/// use gorgon_core::{Tensor, kernels::{pool::max_pool2d, conv::Conv2dParams}};
/// let x = Tensor::from_vec_f64((0..16).map(f64::from).collect(), &[1, 1, 4, 4]).unwrap();
/// let p = Conv2dParams { stride: (2, 2), padding: (0, 0), dilation: (1, 1) };
/// let mut out = Tensor::zeros(gorgon_core::DType::F64, &[1, 1, 2, 2]);
/// max_pool2d(&x.view(), (2, 2), p, &mut out).unwrap();
/// assert_eq!(out.to_vec_f64(), vec![5.0, 7.0, 13.0, 15.0]);
/// ```
pub fn max_pool2d(x: &TensorView, kernel: (usize, usize), p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    const OP: &str = "max_pool2d";
    let (dt, g) = forward_geometry(OP, x, kernel, p, out, true)?;
    by_float_dtype!(dt, max_fwd(OP, x, &g, out, true))
}

/// Max pooling's forward pass: the dense fast path (see [`fast`]) when it applies and
/// `allow_fast`, the generic window walk otherwise.
fn max_fwd<T: Float>(op: &'static str, x: &TensorView, g: &PGeom, out: &mut Tensor, allow_fast: bool) -> Result<()> {
    let sx = typed::<T>(op, x)?.strides()[3];
    if !(allow_fast && fast::applies(g, sx)) {
        return forward_t::<T>(op, x, g, out, MaxWindow);
    }
    let g = *g;
    for_planes(op, x, &g, out, g.oh * g.ow, move |_, pp, s, dst: &mut [T]| {
        // SAFETY: pp is a live (H, W) plane with row stride s[2] and unit column stride.
        unsafe { fast::forward_plane(pp, s[2], &g, dst) }
    })
}

/// Gradient of max pooling: routes each `grad` cell to the first arg-max of its window in `x`.
///
/// `x (N, C, H, W)`, `grad (N, C, oH, oW)`; `out` has `x`'s shape and is overwritten.
/// Overlapping windows that share an arg-max accumulate.
pub fn max_pool2d_backward(x: &TensorView, grad: &TensorView, kernel: (usize, usize), p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    const OP: &str = "max_pool2d_backward";
    let ins = [x.dtype(), grad.dtype()];
    let (dt, g) = backward_geometry(OP, &ins, out.dtype(), ("input", x.shape()), grad.shape(), kernel, p, true)?;
    check_out_shape(OP, out.shape(), &[g.n, g.c, g.h, g.w])?;
    by_float_dtype!(dt, max_bwd(OP, x, grad, &g, out, true))
}

/// Max pooling's backward pass: the dense fast path when it applies and `allow_fast`, the
/// generic zero-fill and scatter otherwise.
fn max_bwd<T: Float>(op: &'static str, x: &TensorView, grad: &TensorView, g: &PGeom, out: &mut Tensor, allow_fast: bool) -> Result<()> {
    let x = typed::<T>(op, x)?;
    let (xp, s) = raw4(&x);
    let g = *g;
    if allow_fast && fast::applies(&g, s[3]) {
        return for_planes(op, grad, &g, out, g.h * g.w, move |i, gpp, gs, dst: &mut [T]| {
            // SAFETY: i < N·C for x too; both planes are live, x's with unit column stride.
            unsafe { fast::backward_plane(plane_ptr(xp, s, g.c, i), s[2], gpp, gs[2], gs[3], &g, dst) }
        });
    }
    for_planes(op, grad, &g, out, g.h * g.w, move |i, gpp, gs, dst: &mut [T]| {
        dst.fill(T::zero());
        // SAFETY: i < N·C for x too (same N, C as grad).
        let pp = unsafe { plane_ptr(xp, s, g.c, i) };
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                // SAFETY: live planes; (oy, ox) inside grad's (oH, oW).
                unsafe {
                    if let Some((idx, _)) = window_argmax(pp, s[2], s[3], &g, oy, ox) {
                        dst[idx] += *gpp.offset(oy as isize * gs[2] + ox as isize * gs[3]);
                    }
                }
            }
        }
    })
}

/// PyTorch's window for average pooling: the real-cell ranges `[y0, y1) × [x0, x1)` and the
/// divisor (the window clipped to the padded input, `count_include_pad=True`).
#[inline]
fn avg_window(g: &PGeom, oy: usize, ox: usize) -> (usize, usize, usize, usize, usize) {
    let (sh, sw) = g.p.stride;
    let (ph, pw) = (g.p.padding.0 as isize, g.p.padding.1 as isize);
    let mut y0 = (oy * sh) as isize - ph;
    let mut x0 = (ox * sw) as isize - pw;
    let mut y1 = (y0 + g.kh as isize).min(g.h as isize + ph);
    let mut x1 = (x0 + g.kw as isize).min(g.w as isize + pw);
    let size = ((y1 - y0).max(0) * (x1 - x0).max(0)) as usize;
    y0 = y0.max(0);
    x0 = x0.max(0);
    y1 = y1.min(g.h as isize);
    x1 = x1.min(g.w as isize);
    if y0 >= y1 || x0 >= x1 {
        return (0, 0, 0, 0, size);
    }
    (y0 as usize, y1 as usize, x0 as usize, x1 as usize, size)
}

/// Average pooling; padded zeros count in the divisor (PyTorch's default).
///
/// Exactly PyTorch's `avg_pool2d(count_include_pad=True, ceil_mode=False)`; dilation must be
/// `(1, 1)`.
///
/// ```
/// use gorgon_core::{Tensor, kernels::{pool::avg_pool2d, conv::Conv2dParams}};
/// let x = Tensor::from_vec_f64(vec![4.0; 4], &[1, 1, 2, 2]).unwrap();
/// let p = Conv2dParams { stride: (2, 2), padding: (1, 1), dilation: (1, 1) };
/// let mut out = Tensor::zeros(gorgon_core::DType::F64, &[1, 1, 2, 2]);
/// avg_pool2d(&x.view(), (2, 2), p, &mut out).unwrap();
/// assert_eq!(out.to_vec_f64(), vec![1.0; 4]);
/// ```
pub fn avg_pool2d(x: &TensorView, kernel: (usize, usize), p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    const OP: &str = "avg_pool2d";
    let (dt, g) = forward_geometry(OP, x, kernel, p, out, false)?;
    by_float_dtype!(dt, forward_t(OP, x, &g, out, AvgWindow))
}

/// Gradient of average pooling into `out` (the input's shape).
///
/// `grad (N, C, oH, oW)`; `out (N, C, H, W)` is overwritten. Each input cell receives
/// `grad / divisor` from every window that covers it.
pub fn avg_pool2d_backward(grad: &TensorView, kernel: (usize, usize), p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    const OP: &str = "avg_pool2d_backward";
    let (dt, g) = backward_geometry(OP, &[grad.dtype()], out.dtype(), ("output", out.shape()), grad.shape(), kernel, p, false)?;
    by_float_dtype!(dt, avg_bwd(OP, grad, &g, out))
}

fn avg_bwd<T: Float>(op: &'static str, grad: &TensorView, g: &PGeom, out: &mut Tensor) -> Result<()> {
    let g = *g;
    for_planes(op, grad, &g, out, g.h * g.w, move |_, gpp, gs, dst: &mut [T]| {
        dst.fill(T::zero());
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (y0, y1, x0, x1, size) = avg_window(&g, oy, ox);
                if y0 == y1 {
                    continue;
                }
                // SAFETY: (oy, ox) inside grad's (oH, oW).
                let v = unsafe { *gpp.offset(oy as isize * gs[2] + ox as isize * gs[3]) };
                let d = v / T::from_f64(size as f64);
                for iy in y0..y1 {
                    for cell in &mut dst[iy * g.w + x0..iy * g.w + x1] {
                        *cell += d;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_match_definition() {
        for start in -5isize..6 {
            for k in 1..5 {
                for d in 1..4 {
                    for len in 0..6 {
                        let (a0, a1) = taps(start, k, d, len);
                        for a in 0..k {
                            let i = start + (a * d) as isize;
                            let inside = i >= 0 && i < len as isize;
                            assert_eq!(inside, a >= a0 && a < a1, "start {start} k {k} d {d} len {len} a {a}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn avg_window_divisor_is_pytorchs() {
        // H = 3, pad 1, k 3, stride 1: every window lies inside the padded input → 9.
        let p = Conv2dParams { stride: (1, 1), padding: (1, 1), dilation: (1, 1) };
        let g = pool_geometry("t", [1, 1, 3, 3], (3, 3), p, false).unwrap();
        for oy in 0..3 {
            for ox in 0..3 {
                assert_eq!(avg_window(&g, oy, ox).4, 9);
            }
        }
        assert_eq!(avg_window(&g, 0, 0), (0, 2, 0, 2, 9));
    }

    #[test]
    fn dilation_rules() {
        let p = Conv2dParams { stride: (1, 1), padding: (0, 0), dilation: (2, 1) };
        assert!(pool_geometry("t", [1, 1, 5, 5], (2, 2), p, true).is_ok());
        assert!(pool_geometry("t", [1, 1, 5, 5], (2, 2), p, false).is_err());
    }
}
