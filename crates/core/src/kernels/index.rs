//! Gather (`take`), its adjoint scatter-add, concatenation, one-hot.
//!
//! All four treat their operands as contiguous `(outer, n, inner)` arrays around the axis
//! and move whole `inner`-long runs with `copy_from_slice` (a memcpy) or a vectorizable add;
//! non-contiguous inputs are first brought to row-major order (borrowed when already so).
//! Indices are validated before anything is written.

use crate::error::{fmt_shape, CoreError, Result};
use crate::kernels::checks::{check_contiguous, not_contiguous, result_shape_err};
use crate::{DType, Element, Tensor, TensorView};
use ndarray::{ArrayD, ArrayViewD};
use rayon::prelude::*;

/// Outputs at least this large are split across threads.
const PAR_MIN: usize = 1 << 18;

/// Threads the kernels may use (rayon's pool, capped by `GORGON_NUM_THREADS`).
fn max_threads() -> usize {
    crate::kernels::threads::num_threads().max(1)
}

/// `out = take(x, indices, axis)`: `out.shape = x.shape[:axis] + indices.shape +
/// x.shape[axis+1:]`. Indices are int32/int64; negative ones count from the end;
/// out-of-range ones are a `CoreError::Index`.
///
/// ```
/// use gorgon_core::{Tensor, DType, kernels::index::take};
/// let x = Tensor::from_vec(vec![10.0f32, 11.0, 12.0], &[3]).unwrap();
/// let i = Tensor::from_vec(vec![2i64, -3, 2], &[3]).unwrap();
/// let mut out = Tensor::zeros(DType::F32, &[3]);
/// take(&x.view(), &i.view(), 0, &mut out).unwrap();
/// assert_eq!(out.to_vec_f64(), vec![12.0, 10.0, 12.0]);
/// ```
pub fn take(x: &TensorView, indices: &TensorView, axis: usize, out: &mut Tensor) -> Result<()> {
    let name = "take";
    let xs = x.shape();
    check_axis(name, axis, xs.len())?;
    let idx = read_indices(name, indices, xs[axis], axis, true)?;
    let mut want = xs[..axis].to_vec();
    want.extend_from_slice(indices.shape());
    want.extend_from_slice(&xs[axis + 1..]);
    check_out(name, out, x.dtype(), &want)?;
    match (x, out) {
        (TensorView::F32(a), Tensor::F32(o)) => take_typed(a, &idx, axis, o),
        (TensorView::F64(a), Tensor::F64(o)) => take_typed(a, &idx, axis, o),
        (TensorView::I32(a), Tensor::I32(o)) => take_typed(a, &idx, axis, o),
        (TensorView::I64(a), Tensor::I64(o)) => take_typed(a, &idx, axis, o),
        (TensorView::Bool(a), Tensor::Bool(o)) => take_typed(a, &idx, axis, o),
        _ => return Err(internal(name, x.dtype())),
    }
    Ok(())
}

/// The adjoint of [`take`]: zero `out` (shape of the original `x`), then
/// `out[.., idx, ..] += grad[.., i, ..]` for every index position.
///
/// `grad.shape` must be `out.shape[:axis] + indices.shape + out.shape[axis+1:]`; repeated
/// indices accumulate. Numeric dtypes only (integer adds wrap).
///
/// ```
/// use gorgon_core::{Tensor, DType, kernels::index::scatter_add};
/// let g = Tensor::from_vec(vec![1.0f32, 2.0, 4.0], &[3]).unwrap();
/// let i = Tensor::from_vec(vec![0i32, 2, 0], &[3]).unwrap();
/// let mut out = Tensor::zeros(DType::F32, &[3]);
/// scatter_add(&g.view(), &i.view(), 0, &mut out).unwrap();
/// assert_eq!(out.to_vec_f64(), vec![5.0, 0.0, 2.0]);
/// ```
pub fn scatter_add(
    grad: &TensorView,
    indices: &TensorView,
    axis: usize,
    out: &mut Tensor,
) -> Result<()> {
    let name = "scatter_add";
    let os = out.shape().to_vec();
    check_axis(name, axis, os.len())?;
    if grad.dtype() != out.dtype() {
        return Err(CoreError::DType {
            op: name,
            dtype: grad.dtype(),
            detail: format!(
                "grad and out have different dtypes {} and {}",
                grad.dtype(),
                out.dtype()
            ),
        });
    }
    if grad.dtype() == DType::Bool {
        return Err(CoreError::DType {
            op: name,
            dtype: DType::Bool,
            detail: "needs a numeric dtype".into(),
        });
    }
    let mut want = os[..axis].to_vec();
    want.extend_from_slice(indices.shape());
    want.extend_from_slice(&os[axis + 1..]);
    if !crate::shape::same_shape(grad.shape(), want.as_slice()) {
        return Err(CoreError::Shape {
            op: name,
            detail: format!(
                "grad has shape {} but out {} with indices {} on axis {} needs {}",
                fmt_shape(grad.shape()),
                fmt_shape(&os),
                fmt_shape(indices.shape()),
                axis,
                fmt_shape(&want)
            ),
        });
    }
    check_out(name, out, grad.dtype(), &os)?;
    let idx = read_indices(name, indices, os[axis], axis, true)?;
    match (grad, out) {
        (TensorView::F32(g), Tensor::F32(o)) => scatter_typed(g, &idx, axis, o, |a, b| a + b),
        (TensorView::F64(g), Tensor::F64(o)) => scatter_typed(g, &idx, axis, o, |a, b| a + b),
        (TensorView::I32(g), Tensor::I32(o)) => scatter_typed(g, &idx, axis, o, i32::wrapping_add),
        (TensorView::I64(g), Tensor::I64(o)) => scatter_typed(g, &idx, axis, o, i64::wrapping_add),
        _ => return Err(internal(name, grad.dtype())),
    }
    Ok(())
}

/// Concatenates along `axis` into `out`.
///
/// All inputs share `out`'s dtype and rank and agree with it on every other axis; `out`'s
/// `axis` length is the sum of theirs. At least one input is needed, and 0-d inputs cannot
/// be concatenated (as in NumPy).
///
/// ```
/// use gorgon_core::{Tensor, DType, kernels::index::concat};
/// let a = Tensor::from_vec(vec![1i64, 2], &[1, 2]).unwrap();
/// let b = Tensor::from_vec(vec![3i64, 4, 5, 6], &[2, 2]).unwrap();
/// let mut out = Tensor::zeros(DType::I64, &[3, 2]);
/// concat(&[a.view(), b.view()], 0, &mut out).unwrap();
/// assert_eq!(out.to_vec_f64(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// ```
pub fn concat(xs: &[TensorView], axis: usize, out: &mut Tensor) -> Result<()> {
    let name = "concat";
    let first = xs.first().ok_or_else(|| CoreError::Shape {
        op: name,
        detail: "need at least one array to concatenate".into(),
    })?;
    let nd = first.shape().len();
    if nd == 0 {
        return Err(CoreError::Shape {
            op: name,
            detail: "zero-dimensional arrays cannot be concatenated".into(),
        });
    }
    check_axis(name, axis, nd)?;
    let dt = first.dtype();
    let mut total = 0usize;
    for (i, x) in xs.iter().enumerate() {
        if x.dtype() != dt {
            return Err(CoreError::DType {
                op: name,
                dtype: x.dtype(),
                detail: format!("input {} has dtype {} but input 0 has {}", i, x.dtype(), dt),
            });
        }
        let s = x.shape();
        let same_other = s.len() == nd && (0..nd).all(|d| d == axis || s[d] == first.shape()[d]);
        if !same_other {
            return Err(CoreError::Shape {
                op: name,
                detail: format!(
                    "input {} has shape {} which does not match input 0's {} except on axis {}",
                    i,
                    fmt_shape(s),
                    fmt_shape(first.shape()),
                    axis
                ),
            });
        }
        total += s[axis];
    }
    let mut want = first.shape().to_vec();
    want[axis] = total;
    check_out(name, out, dt, &want)?;
    fn go<T: Element>(xs: &[TensorView], axis: usize, out: &mut ArrayD<T>) -> Result<()> {
        let views: Vec<ArrayViewD<T>> = xs
            .iter()
            .map(|v| T::view_ref(v).ok_or_else(|| internal("concat", v.dtype())))
            .collect::<Result<_>>()?;
        let shape = out.shape().to_vec();
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let row = shape[axis] * inner;
        let o = out.as_slice_mut().ok_or_else(|| not_contiguous("concat"))?;
        let mut off = 0usize;
        for v in &views {
            let vs = v.as_standard_layout();
            let d = vs.as_slice().unwrap_or(&[]);
            let w = v.shape()[axis] * inner;
            if w > 0 {
                for (orow, drow) in o.chunks_mut(row.max(1)).zip(d.chunks(w)).take(outer) {
                    orow[off..off + w].copy_from_slice(drow);
                }
            }
            off += w;
        }
        Ok(())
    }
    crate::match_tensor!(Tensor, out, o => go(xs, axis, o))
}

/// `out[..., k] = (indices[...] == k)` as 0/1 in `out`'s dtype; `out.shape = indices.shape + (n,)`.
///
/// Indices must lie in `0..n` (as in PyTorch's `one_hot`: negative ones are an error, not
/// counted from the end); anything else is a `CoreError::Index`.
///
/// ```
/// use gorgon_core::{Tensor, DType, kernels::index::one_hot};
/// let i = Tensor::from_vec(vec![2i64, 0], &[2]).unwrap();
/// let mut out = Tensor::zeros(DType::F32, &[2, 3]);
/// one_hot(&i.view(), 3, &mut out).unwrap();
/// assert_eq!(out.to_vec_f64(), vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
/// ```
pub fn one_hot(indices: &TensorView, n: usize, out: &mut Tensor) -> Result<()> {
    let name = "one_hot";
    let mut want = indices.shape().to_vec();
    want.push(n);
    check_out(name, out, out.dtype(), &want)?;
    let idx = read_indices(name, indices, n, usize::MAX, false)?;
    fn go<T: Element>(idx: &[usize], n: usize, out: &mut ArrayD<T>) -> Result<()> {
        let o = out
            .as_slice_mut()
            .ok_or_else(|| not_contiguous("one_hot"))?;
        o.fill(T::zero());
        if n > 0 {
            for (row, &k) in o.chunks_exact_mut(n).zip(idx) {
                row[k] = T::one();
            }
        }
        Ok(())
    }
    crate::match_tensor!(Tensor, out, o => go(&idx, n, o))
}

// ---------------------------------------------------------------------------------------

fn internal(name: &'static str, dt: DType) -> CoreError {
    CoreError::DType {
        op: name,
        dtype: dt,
        detail: "internal dtype mismatch".into(),
    }
}

fn check_axis(name: &'static str, axis: usize, ndim: usize) -> Result<()> {
    if axis >= ndim {
        return Err(CoreError::Index {
            op: name,
            detail: format!(
                "axis {} is out of bounds for an array of dimension {}",
                axis, ndim
            ),
        });
    }
    Ok(())
}

fn check_out(name: &'static str, out: &Tensor, dt: DType, want: &[usize]) -> Result<()> {
    if out.dtype() != dt {
        return Err(CoreError::DType {
            op: name,
            dtype: out.dtype(),
            detail: format!("out must have dtype {}", dt),
        });
    }
    if !crate::shape::same_shape(out.shape(), want) {
        return Err(result_shape_err(name, out.shape(), want));
    }
    check_contiguous(name, out)
}

/// Reads int32/int64 indices in row-major order, normalizing negatives (when `wrap`) and
/// checking each against `size`.
fn read_indices(
    name: &'static str,
    indices: &TensorView,
    size: usize,
    axis: usize,
    wrap: bool,
) -> Result<Vec<usize>> {
    fn conv<T: Element + Into<i64>>(
        a: &ArrayViewD<T>,
        size: usize,
        axis: usize,
        wrap: bool,
        name: &'static str,
    ) -> Result<Vec<usize>> {
        let mut v = Vec::with_capacity(a.len());
        for &i in a.iter() {
            let i: i64 = i.into();
            let j = if wrap && i < 0 { i + size as i64 } else { i };
            if j < 0 || j as u64 >= size as u64 {
                return Err(CoreError::Index {
                    op: name,
                    detail: if axis == usize::MAX {
                        format!("index {} is out of bounds for {} classes", i, size)
                    } else {
                        format!(
                            "index {} is out of bounds for axis {} with size {}",
                            i, axis, size
                        )
                    },
                });
            }
            v.push(j as usize);
        }
        Ok(v)
    }
    match indices {
        TensorView::I32(a) => conv(a, size, axis, wrap, name),
        TensorView::I64(a) => conv(a, size, axis, wrap, name),
        other => Err(CoreError::DType {
            op: name,
            dtype: other.dtype(),
            detail: "indices must be int32 or int64".into(),
        }),
    }
}

fn take_typed<T: Element>(x: &ArrayViewD<T>, idx: &[usize], axis: usize, out: &mut ArrayD<T>) {
    let shape = x.shape();
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let Some(o) = out.as_slice_mut() else { return };
    if o.is_empty() {
        return;
    }
    let xs = x.as_standard_layout();
    let Some(d) = xs.as_slice() else { return };
    let k = idx.len();
    // one output slab per outer index: k runs of `inner`
    let slab = |o_i: usize, os: &mut [T]| {
        let src = &d[o_i * n * inner..(o_i + 1) * n * inner];
        for (run, &j) in os.chunks_exact_mut(inner).zip(idx) {
            run.copy_from_slice(&src[j * inner..(j + 1) * inner]);
        }
    };
    let big = o.len() >= PAR_MIN && max_threads() > 1;
    if big && outer >= 2 {
        o.par_chunks_mut(k * inner)
            .enumerate()
            .for_each(|(i, os)| slab(i, os));
    } else if big {
        // one slab (e.g. an embedding lookup): split the index list
        let per = (PAR_MIN / 16 / inner).max(1);
        o.par_chunks_mut(per * inner)
            .zip(idx.par_chunks(per))
            .for_each(|(os, ids)| {
                for (run, &j) in os.chunks_exact_mut(inner).zip(ids) {
                    run.copy_from_slice(&d[j * inner..(j + 1) * inner]);
                }
            });
    } else {
        for (i, os) in o.chunks_mut(k * inner).enumerate() {
            slab(i, os);
        }
    }
}

fn scatter_typed<T: Element>(
    g: &ArrayViewD<T>,
    idx: &[usize],
    axis: usize,
    out: &mut ArrayD<T>,
    add: fn(T, T) -> T,
) {
    let oshape = out.shape().to_vec();
    let outer: usize = oshape[..axis].iter().product();
    let n = oshape[axis];
    let inner: usize = oshape[axis + 1..].iter().product();
    let Some(o) = out.as_slice_mut() else { return };
    o.fill(T::zero());
    if o.is_empty() || idx.is_empty() || inner == 0 {
        return;
    }
    let gs = g.as_standard_layout();
    let Some(d) = gs.as_slice() else { return };
    let k = idx.len();
    let accumulate = |os: &mut [T], src: &[T], c0: usize, w: usize| {
        for (t, &j) in idx.iter().enumerate() {
            let dst = &mut os[j * inner + c0..j * inner + c0 + w];
            let s = &src[t * inner + c0..t * inner + c0 + w];
            dst.iter_mut().zip(s).for_each(|(a, &b)| *a = add(*a, b));
        }
    };
    let big = d.len() >= PAR_MIN && max_threads() > 1;
    if big && outer >= 2 {
        o.par_chunks_mut(n * inner)
            .zip(d.par_chunks(k * inner))
            .for_each(|(os, src)| accumulate(os, src, 0, inner));
    } else if big && inner >= 64 {
        // one slab: threads own disjoint column stripes of every output row (deterministic)
        let nt = max_threads();
        let stripe = inner.div_ceil(nt * 2).div_ceil(16) * 16;
        let optr = SendPtr(o.as_mut_ptr());
        (0..inner.div_ceil(stripe)).into_par_iter().for_each(|s| {
            let c0 = s * stripe;
            let w = stripe.min(inner - c0);
            for (t, &j) in idx.iter().enumerate() {
                let src = &d[t * inner + c0..t * inner + c0 + w];
                // SAFETY: `j < n` was checked, so the run lies inside `o`; each task touches
                // only columns [c0, c0+w) of each row, disjoint from every other task, and
                // `o` outlives the parallel loop.
                let dst =
                    unsafe { std::slice::from_raw_parts_mut(optr.get().add(j * inner + c0), w) };
                dst.iter_mut().zip(src).for_each(|(a, &b)| *a = add(*a, b));
            }
        });
    } else {
        for (os, src) in o.chunks_mut(n * inner).zip(d.chunks(k * inner)) {
            accumulate(os, src, 0, inner);
        }
    }
}

/// A raw pointer that may cross threads; users guarantee disjoint writes.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: see its single use in `scatter_typed` (disjoint column stripes).
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    #[inline]
    fn get(self) -> *mut T {
        self.0
    }
}
