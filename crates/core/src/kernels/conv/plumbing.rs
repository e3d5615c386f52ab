//! Plumbing shared by the convolution and pooling kernels: operand checks, typed access to
//! strided 4-D views, the batch/plane splitter and per-thread scratch buffers.

use super::Conv2dParams;
use crate::error::{fmt_shape, CoreError};
use crate::kernels::threads::SendPtr;
use crate::tensor::try_alloc;
use crate::{DType, Element, Result, Tensor, TensorView};
use ndarray::{ArrayViewD, CowArray, IxDyn};
use rayon::prelude::*;
use std::cell::RefCell;
use std::thread::LocalKey;

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

/// [`par_items`] calling `f(index, item)` for every item, stopping a piece at its first
/// error.
pub(crate) fn for_each_item<T: Send, E: Send, F>(out: &mut [T], item: usize, parts: usize, f: F) -> std::result::Result<(), E>
where
    F: Fn(usize, &mut [T]) -> std::result::Result<(), E> + Sync + Send,
{
    par_items(out, item, parts, |first, chunk| chunk.chunks_mut(item).enumerate().try_for_each(|(i, d)| f(first + i, d)))
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

/// [`check_4d`] of several operands `(what, expect, shape)`, in order.
pub(crate) fn check_4ds<const N: usize>(op: &'static str, operands: [(&str, &str, &[usize]); N]) -> Result<[[usize; 4]; N]> {
    let mut shapes = [[0; 4]; N];
    for (s, (what, expect, shape)) in shapes.iter_mut().zip(operands) {
        *s = check_4d(op, what, expect, shape)?;
    }
    Ok(shapes)
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

/// The typed view inside `v`, or a dtype error.
pub(crate) fn typed<'a, T: Element>(op: &'static str, v: &TensorView<'a>) -> Result<ArrayViewD<'a, T>> {
    v.as_array::<T>().ok_or(CoreError::DType { op, dtype: v.dtype(), detail: format!("expected {}", T::DTYPE) })
}

/// The output size of a `window` (`what`: "kernel", "window") over the input `x`, or an
/// error when it does not fit the padded input.
pub(crate) fn out_hw(op: &'static str, what: &str, x: [usize; 4], window: (usize, usize), p: Conv2dParams) -> Result<(usize, usize)> {
    p.out_hw((x[2], x[3]), window).ok_or_else(|| CoreError::Shape {
        op,
        detail: format!(
            "{what} {} with dilation {} is larger than the padded input {} (input {}, padding {})",
            fmt_shape(&[window.0, window.1]),
            fmt_shape(&[p.dilation.0, p.dilation.1]),
            fmt_shape(&[x[2] + 2 * p.padding.0, x[3] + 2 * p.padding.1]),
            fmt_shape(&x),
            fmt_shape(&[p.padding.0, p.padding.1]),
        ),
    })
}

/// The typed 4-D view's base pointer and strides.
pub(crate) fn raw4<T: Element>(a: &ArrayViewD<'_, T>) -> (SendPtr<T>, [isize; 4]) {
    let s = a.strides();
    (SendPtr(a.as_ptr()), [s[0], s[1], s[2], s[3]])
}

/// If the axes `dims` (with `strides`) can be walked as one axis with a single stride, that
/// stride (1 when every axis has length ≤ 1).
pub(super) fn merged_stride(dims: &[usize], strides: &[isize]) -> Option<isize> {
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
pub(super) fn as_matrix<'a, T: Element>(a: &'a ArrayViewD<'a, T>) -> (CowArray<'a, T, IxDyn>, isize, isize) {
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
pub(super) fn with_buf<T: Element, R>(
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn dtype_checks() {
        assert!(check_float_dtypes("t", &[DType::F32, DType::F32], DType::F32).is_ok());
        assert!(check_float_dtypes("t", &[DType::I32], DType::I32).is_err());
        assert!(check_float_dtypes("t", &[DType::F32, DType::F64], DType::F32).is_err());
    }
}
