//! Numerically stable softmax and log-softmax along one axis, and their backward passes.
//!
//! The input is seen as a contiguous `(outer, n, inner)` array (a non-contiguous view is
//! copied once into row-major order). `inner == 1` — the last axis, the common case — runs
//! row by row, each row hot in cache for its three passes (max, exp-sum, scale). Otherwise
//! the kernel walks 512-wide column blocks of each `(n, inner)` slab, keeping the
//! per-column running max and sum in small buffers, so memory is still read row-major.
//! Large inputs (≥ 2^18 elements) split rows or slabs across rayon threads.
//!
//! Stability: `x - max(x)` is exponentiated, so no finite input overflows. A lane that is
//! all `-inf` gives NaN (as PyTorch does), and NaN propagates.

use crate::error::{fmt_shape, CoreError, Result};
use crate::kernels::arith::vmax;
use crate::kernels::checks::not_contiguous;
use crate::kernels::reduce::{max_slice, multiversion, sum_slice, RElem};
use crate::kernels::vmath::{VFunc, VMath};
use crate::{DType, Float, Tensor, TensorView};
use ndarray::ArrayViewD;
use rayon::prelude::*;

/// Inputs at least this large are split across threads.
const PAR_MIN: usize = 1 << 18;
/// Column-block width for reductions over a non-last axis.
const COL_BLOCK: usize = 512;

/// Element types the softmax kernels run on (f32, f64).
trait SElem: Float + VMath + RElem {}
impl<T: Float + VMath + RElem> SElem for T {}

/// Threads the kernels may use (rayon's pool, capped by `GORGON_NUM_THREADS`).
fn max_threads() -> usize {
    crate::kernels::threads::num_threads().max(1)
}

/// `out = softmax(x)` (or `log_softmax` when `log`) along `axis`.
///
/// `x` is float32/float64 of any layout; `out` is a contiguous tensor of the same shape and
/// dtype.
///
/// ```
/// use gorgon_core::{Tensor, DType, kernels::softmax::softmax};
/// let x = Tensor::from_vec(vec![0.0f64, 0.0, 1000.0, 1000.0], &[2, 2]).unwrap();
/// let mut out = Tensor::zeros(DType::F64, &[2, 2]);
/// softmax(&x.view(), 1, false, &mut out).unwrap();
/// assert_eq!(out.to_vec_f64(), vec![0.5, 0.5, 0.5, 0.5]);
/// ```
pub fn softmax(x: &TensorView, axis: usize, log: bool, out: &mut Tensor) -> Result<()> {
    let name = if log { "log_softmax" } else { "softmax" };
    check(name, &[(x.dtype(), x.shape())], axis, out)?;
    match (x, out) {
        (TensorView::F32(a), Tensor::F32(o)) => {
            let o = o.as_slice_mut().ok_or_else(|| not_contiguous(name))?;
            forward(a, axis, log, o);
        }
        (TensorView::F64(a), Tensor::F64(o)) => {
            let o = o.as_slice_mut().ok_or_else(|| not_contiguous(name))?;
            forward(a, axis, log, o);
        }
        _ => return Err(internal(name, x.dtype())),
    }
    Ok(())
}

/// Backward pass of [`softmax`] along `axis`, from its output `y` and the upstream gradient
/// `grad` (same shape):
/// softmax: `out = y * (grad - sum(grad * y, axis))`;
/// log-softmax (`y` is the log-softmax output): `out = grad - exp(y) * sum(grad, axis)`.
///
/// ```
/// use gorgon_core::{Tensor, DType, kernels::softmax::softmax_backward};
/// let y = Tensor::from_vec(vec![0.5f64, 0.5], &[2]).unwrap();
/// let g = Tensor::from_vec(vec![1.0f64, 0.0], &[2]).unwrap();
/// let mut out = Tensor::zeros(DType::F64, &[2]);
/// softmax_backward(&y.view(), &g.view(), 0, false, &mut out).unwrap();
/// assert_eq!(out.to_vec_f64(), vec![0.25, -0.25]);
/// ```
pub fn softmax_backward(
    y: &TensorView,
    grad: &TensorView,
    axis: usize,
    log: bool,
    out: &mut Tensor,
) -> Result<()> {
    let name = if log {
        "log_softmax_backward"
    } else {
        "softmax_backward"
    };
    check(
        name,
        &[(y.dtype(), y.shape()), (grad.dtype(), grad.shape())],
        axis,
        out,
    )?;
    match (y, grad, out) {
        (TensorView::F32(a), TensorView::F32(g), Tensor::F32(o)) => {
            let o = o.as_slice_mut().ok_or_else(|| not_contiguous(name))?;
            backward(a, g, axis, log, o);
        }
        (TensorView::F64(a), TensorView::F64(g), Tensor::F64(o)) => {
            let o = o.as_slice_mut().ok_or_else(|| not_contiguous(name))?;
            backward(a, g, axis, log, o);
        }
        _ => return Err(internal(name, y.dtype())),
    }
    Ok(())
}

fn internal(name: &'static str, dt: DType) -> CoreError {
    CoreError::DType {
        op: name,
        dtype: dt,
        detail: "internal dtype mismatch".into(),
    }
}

/// Validates dtypes (all float, all equal), shapes (all equal to `out`'s) and the axis.
fn check(name: &'static str, ins: &[(DType, &[usize])], axis: usize, out: &Tensor) -> Result<()> {
    let (dt, shape) = ins[0];
    if !dt.is_float() {
        return Err(CoreError::DType {
            op: name,
            dtype: dt,
            detail: "needs a float dtype".into(),
        });
    }
    for &(vdt, vshape) in ins.iter().skip(1) {
        if vdt != dt {
            return Err(CoreError::DType {
                op: name,
                dtype: vdt,
                detail: format!("inputs have different dtypes {} and {}", dt, vdt),
            });
        }
        if vshape != shape {
            return Err(CoreError::Shape {
                op: name,
                detail: format!(
                    "inputs have different shapes {} and {}",
                    fmt_shape(shape),
                    fmt_shape(vshape)
                ),
            });
        }
    }
    if out.dtype() != dt {
        return Err(CoreError::DType {
            op: name,
            dtype: out.dtype(),
            detail: format!("out must have dtype {}", dt),
        });
    }
    if axis >= shape.len() {
        return Err(CoreError::Index {
            op: name,
            detail: format!(
                "axis {} is out of bounds for an array of dimension {}",
                axis,
                shape.len()
            ),
        });
    }
    if !crate::shape::same_shape(out.shape(), shape) {
        return Err(CoreError::Shape {
            op: name,
            detail: format!(
                "out has shape {} but the input has shape {}",
                fmt_shape(out.shape()),
                fmt_shape(shape)
            ),
        });
    }
    Ok(())
}

/// `(outer, n, inner)` around `axis`.
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

multiversion! {
    /// Runs [`softmax_row_impl`] built for the best SIMD level available.
    fn softmax_row<T: SElem>(x: &[T], o: &mut [T], log: bool, scratch: &mut [T]) -> () => softmax_row_impl
}

/// Softmax (or log-softmax) of one row; `scratch` is at least `x.len()` long. `exp` is the
/// vectorized one from [`vmath`](crate::kernels::vmath).
#[inline(always)]
fn softmax_row_impl<T: SElem>(x: &[T], o: &mut [T], log: bool, scratch: &mut [T]) {
    let m = max_slice(x);
    for (ov, &v) in o.iter_mut().zip(x) {
        *ov = v - m;
    }
    if log {
        let e = &mut scratch[..x.len()];
        T::vapply(VFunc::Exp, o, e);
        let ls = sum_slice(e).ln();
        for ov in o.iter_mut() {
            *ov = *ov - ls;
        }
    } else {
        T::vapply_inplace(VFunc::Exp, o);
        let inv = T::one() / sum_slice(o);
        for ov in o.iter_mut() {
            *ov *= inv;
        }
    }
}

multiversion! {
    /// Runs [`softmax_slab_impl`] built for the best SIMD level available.
    fn softmax_slab<T: SElem>(x: &[T], o: &mut [T], n: usize, inner: usize, log: bool) -> () => softmax_slab_impl
}

/// Softmax over the rows of one `(n, inner)` slab, column block by column block.
#[inline(always)]
fn softmax_slab_impl<T: SElem>(x: &[T], o: &mut [T], n: usize, inner: usize, log: bool) {
    let mut m = vec![T::zero(); COL_BLOCK.min(inner)];
    let mut s = vec![T::zero(); COL_BLOCK.min(inner)];
    let mut e = vec![T::zero(); COL_BLOCK.min(inner)];
    for c0 in (0..inner).step_by(COL_BLOCK) {
        let w = COL_BLOCK.min(inner - c0);
        let (m, s) = (&mut m[..w], &mut s[..w]);
        let row = |i: usize| i * inner + c0..i * inner + c0 + w;
        m.copy_from_slice(&x[row(0)]);
        for i in 1..n {
            m.iter_mut()
                .zip(&x[row(i)])
                .for_each(|(a, &v)| *a = vmax(*a, v));
        }
        s.fill(T::zero());
        for i in 0..n {
            let (xr, or) = (&x[row(i)], &mut o[row(i)]);
            for ((ov, &v), &mv) in or.iter_mut().zip(xr).zip(m.iter()) {
                *ov = v - mv;
            }
            let e = &mut e[..w];
            if log {
                T::vapply(VFunc::Exp, or, e);
                s.iter_mut().zip(e.iter()).for_each(|(sv, &ev)| *sv += ev);
            } else {
                T::vapply_inplace(VFunc::Exp, or);
                s.iter_mut().zip(or.iter()).for_each(|(sv, &ev)| *sv += ev);
            }
        }
        if log {
            s.iter_mut().for_each(|v| *v = v.ln());
            for i in 0..n {
                o[row(i)]
                    .iter_mut()
                    .zip(s.iter())
                    .for_each(|(ov, &ls)| *ov = *ov - ls);
            }
        } else {
            s.iter_mut().for_each(|v| *v = T::one() / *v);
            for i in 0..n {
                o[row(i)]
                    .iter_mut()
                    .zip(s.iter())
                    .for_each(|(ov, &inv)| *ov *= inv);
            }
        }
    }
}

fn forward<T: SElem>(x: &ArrayViewD<T>, axis: usize, log: bool, out: &mut [T]) {
    let (outer, n, inner) = split(x.shape(), axis);
    if out.is_empty() {
        return;
    }
    let xs = x.as_standard_layout();
    let Some(data) = xs.as_slice() else { return };
    let big = data.len() >= PAR_MIN && max_threads() > 1;
    if inner == 1 {
        let rows = |o: &mut [T], d: &[T]| {
            let mut scratch = if log { vec![T::zero(); n] } else { Vec::new() };
            o.chunks_exact_mut(n)
                .zip(d.chunks_exact(n))
                .for_each(|(o, d)| softmax_row(d, o, log, &mut scratch));
        };
        if big {
            let per = (PAR_MIN / 16 / n).max(1);
            out.par_chunks_mut(per * n)
                .zip(data.par_chunks(per * n))
                .for_each(|(o, d)| rows(o, d));
        } else {
            rows(out, data);
        }
    } else {
        let slab = n * inner;
        if big && outer >= 2 {
            out.par_chunks_mut(slab)
                .zip(data.par_chunks(slab))
                .for_each(|(o, d)| softmax_slab(d, o, n, inner, log));
        } else {
            out.chunks_mut(slab)
                .zip(data.chunks(slab))
                .for_each(|(o, d)| softmax_slab(d, o, n, inner, log));
        }
    }
}

multiversion! {
    /// Runs [`backward_row_impl`] built for the best SIMD level available.
    fn backward_row<T: SElem>(y: &[T], g: &[T], o: &mut [T], log: bool) -> () => backward_row_impl
}

#[inline(always)]
fn backward_row_impl<T: SElem>(y: &[T], g: &[T], o: &mut [T], log: bool) {
    if log {
        let s = sum_slice(g);
        T::vapply(VFunc::Exp, y, o);
        for (ov, &gv) in o.iter_mut().zip(g) {
            *ov = gv - *ov * s;
        }
    } else {
        for ((ov, &gv), &yv) in o.iter_mut().zip(g).zip(y) {
            *ov = gv * yv;
        }
        let d = sum_slice(o);
        for ((ov, &yv), &gv) in o.iter_mut().zip(y).zip(g) {
            *ov = yv * (gv - d);
        }
    }
}

multiversion! {
    /// Runs [`backward_slab_impl`] built for the best SIMD level available.
    fn backward_slab<T: SElem>(y: &[T], g: &[T], o: &mut [T], n: usize, inner: usize, log: bool) -> () => backward_slab_impl
}

#[inline(always)]
fn backward_slab_impl<T: SElem>(y: &[T], g: &[T], o: &mut [T], n: usize, inner: usize, log: bool) {
    let mut s = vec![T::zero(); COL_BLOCK.min(inner)];
    for c0 in (0..inner).step_by(COL_BLOCK) {
        let w = COL_BLOCK.min(inner - c0);
        let s = &mut s[..w];
        let row = |i: usize| i * inner + c0..i * inner + c0 + w;
        s.fill(T::zero());
        for i in 0..n {
            let (yr, gr) = (&y[row(i)], &g[row(i)]);
            if log {
                s.iter_mut().zip(gr).for_each(|(sv, &gv)| *sv += gv);
            } else {
                s.iter_mut()
                    .zip(gr)
                    .zip(yr)
                    .for_each(|((sv, &gv), &yv)| *sv += gv * yv);
            }
        }
        for i in 0..n {
            let (yr, gr, or) = (&y[row(i)], &g[row(i)], &mut o[row(i)]);
            if log {
                T::vapply(VFunc::Exp, yr, or);
                for ((ov, &gv), &sv) in or.iter_mut().zip(gr).zip(s.iter()) {
                    *ov = gv - *ov * sv;
                }
            } else {
                for (((ov, &yv), &gv), &sv) in or.iter_mut().zip(yr).zip(gr).zip(s.iter()) {
                    *ov = yv * (gv - sv);
                }
            }
        }
    }
}

fn backward<T: SElem>(y: &ArrayViewD<T>, g: &ArrayViewD<T>, axis: usize, log: bool, out: &mut [T]) {
    let (outer, n, inner) = split(y.shape(), axis);
    if out.is_empty() {
        return;
    }
    let (ys, gs) = (y.as_standard_layout(), g.as_standard_layout());
    let (Some(yd), Some(gd)) = (ys.as_slice(), gs.as_slice()) else {
        return;
    };
    let big = yd.len() >= PAR_MIN && max_threads() > 1;
    if inner == 1 {
        let per = (PAR_MIN / 16 / n).max(1) * n;
        let f = |o: &mut [T], y: &[T], g: &[T]| {
            for ((o, y), g) in o
                .chunks_exact_mut(n)
                .zip(y.chunks_exact(n))
                .zip(g.chunks_exact(n))
            {
                backward_row(y, g, o, log);
            }
        };
        if big {
            out.par_chunks_mut(per)
                .zip(yd.par_chunks(per))
                .zip(gd.par_chunks(per))
                .for_each(|((o, y), g)| f(o, y, g));
        } else {
            f(out, yd, gd);
        }
    } else {
        let slab = n * inner;
        let f = |o: &mut [T], y: &[T], g: &[T]| backward_slab(y, g, o, n, inner, log);
        if big && outer >= 2 {
            out.par_chunks_mut(slab)
                .zip(yd.par_chunks(slab))
                .zip(gd.par_chunks(slab))
                .for_each(|((o, y), g)| f(o, y, g));
        } else {
            for ((o, y), g) in out
                .chunks_mut(slab)
                .zip(yd.chunks(slab))
                .zip(gd.chunks(slab))
            {
                f(o, y, g);
            }
        }
    }
}
