//! The dtype-erased tensor types.
//!
//! [`Tensor`] owns its elements in an `ndarray::ArrayD` of the right element type;
//! [`TensorView`] borrows with arbitrary strides, so transpose, slicing and broadcasting are
//! views (see [`TensorView::permuted`], [`TensorView::broadcast_to`], [`TensorView::slice`]).
//! Conversion to and from `ndarray` is free: the variants *are* ndarray arrays.

use crate::error::{fmt_shape, CoreError, Result};
use crate::{DType, Element};
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn, Slice};

/// An owned, dtype-erased tensor on the CPU.
///
/// ```
/// use gorgon_core::{Tensor, DType};
/// let t = Tensor::zeros(DType::F32, &[2, 3]);
/// assert_eq!(t.shape(), &[2, 3]);
/// assert_eq!(t.dtype(), DType::F32);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    /// float32 elements.
    F32(ArrayD<f32>),
    /// float64 elements.
    F64(ArrayD<f64>),
    /// int32 elements.
    I32(ArrayD<i32>),
    /// int64 elements.
    I64(ArrayD<i64>),
    /// bool elements.
    Bool(ArrayD<bool>),
}

/// A borrowed, strided, dtype-erased view of tensor data.
#[derive(Clone, Debug)]
pub enum TensorView<'a> {
    /// float32 elements.
    F32(ArrayViewD<'a, f32>),
    /// float64 elements.
    F64(ArrayViewD<'a, f64>),
    /// int32 elements.
    I32(ArrayViewD<'a, i32>),
    /// int64 elements.
    I64(ArrayViewD<'a, i64>),
    /// bool elements.
    Bool(ArrayViewD<'a, bool>),
}

/// Applies `$body` to the inner array of any variant of a [`Tensor`] or [`TensorView`],
/// binding it to `$a`. The body must have one type for all variants.
#[macro_export]
macro_rules! match_tensor {
    ($enum:ident, $val:expr, $a:ident => $body:expr) => {
        match $val {
            $enum::F32($a) => $body,
            $enum::F64($a) => $body,
            $enum::I32($a) => $body,
            $enum::I64($a) => $body,
            $enum::Bool($a) => $body,
        }
    };
}

/// Like [`match_tensor!`] but rebuilds the same variant from the body's result.
#[macro_export]
macro_rules! map_tensor {
    ($enum:ident, $val:expr, $out:ident, $a:ident => $body:expr) => {
        match $val {
            $enum::F32($a) => $out::F32($body),
            $enum::F64($a) => $out::F64($body),
            $enum::I32($a) => $out::I32($body),
            $enum::I64($a) => $out::I64($body),
            $enum::Bool($a) => $out::Bool($body),
        }
    };
}

/// Physical memory plus swap in bytes (Linux: `/proc/meminfo`), read once; `None` where it
/// cannot be read. No single buffer may be larger: on a system that overcommits memory such
/// a reservation would succeed and the process would be killed while filling it.
fn memory_ceiling() -> Option<usize> {
    static CEILING: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *CEILING.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kib = |key: &str| -> Option<usize> {
            let line = info.lines().find(|l| l.starts_with(key))?;
            line.split_whitespace().nth(1)?.parse::<usize>().ok()
        };
        let total = kib("MemTotal:")?.checked_add(kib("SwapTotal:").unwrap_or(0))?;
        total.checked_mul(1024)
    })
}

/// Allocates a vector of `n` default elements, reporting failure instead of aborting. A
/// request larger than the machine's memory (RAM plus swap) fails at once.
pub fn try_alloc<T: Element>(n: usize, shape: &[usize]) -> Result<Vec<T>> {
    let bytes = n.checked_mul(std::mem::size_of::<T>()).ok_or_else(|| CoreError::Alloc {
        bytes: usize::MAX,
        shape: fmt_shape(shape),
    })?;
    if memory_ceiling().is_some_and(|limit| bytes > limit) {
        return Err(CoreError::Alloc { bytes, shape: fmt_shape(shape) });
    }
    let mut v: Vec<T> = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| CoreError::Alloc { bytes, shape: fmt_shape(shape) })?;
    v.resize(n, T::default());
    Ok(v)
}

/// Number of elements of a shape, or an error when it overflows `usize`.
pub fn checked_numel(shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| CoreError::Alloc {
        bytes: usize::MAX,
        shape: fmt_shape(shape),
    })
}

impl Tensor {
    /// A zero-filled tensor. Panics only if the allocation fails; use [`Tensor::try_zeros`]
    /// where the size comes from a user.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Tensor {
        Self::try_zeros(dtype, shape).expect("allocation failed")
    }

    /// A zero-filled tensor, or [`CoreError::Alloc`] when memory cannot be had.
    pub fn try_zeros(dtype: DType, shape: &[usize]) -> Result<Tensor> {
        fn mk<T: Element>(shape: &[usize]) -> Result<ArrayD<T>> {
            let n = checked_numel(shape)?;
            let v = try_alloc::<T>(n, shape)?;
            Ok(ArrayD::from_shape_vec(IxDyn(shape), v).expect("numel checked"))
        }
        Ok(match dtype {
            DType::F32 => Tensor::F32(mk(shape)?),
            DType::F64 => Tensor::F64(mk(shape)?),
            DType::I32 => Tensor::I32(mk(shape)?),
            DType::I64 => Tensor::I64(mk(shape)?),
            DType::Bool => Tensor::Bool(mk(shape)?),
        })
    }

    /// A tensor filled with `value` (converted with [`Element::from_f64`]).
    pub fn full(dtype: DType, shape: &[usize], value: f64) -> Result<Tensor> {
        let mut t = Self::try_zeros(dtype, shape)?;
        crate::match_tensor!(Tensor, &mut t, a => { let v = Element::from_f64(value); a.fill(v) });
        Ok(t)
    }

    /// A 0-d tensor holding `value`.
    pub fn scalar(dtype: DType, value: f64) -> Tensor {
        Self::full(dtype, &[], value).expect("scalar alloc")
    }

    /// Builds a float64 tensor from a vector and a shape.
    pub fn from_vec_f64(v: Vec<f64>, shape: &[usize]) -> Result<Tensor> {
        Self::from_vec(v, shape)
    }

    /// Builds a tensor from a vector and a shape (row-major).
    pub fn from_vec<T: Element>(v: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        let n = v.len();
        let a = ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|_| CoreError::Shape {
            op: "from_vec",
            detail: format!("{} elements cannot have shape {}", n, fmt_shape(shape)),
        })?;
        Ok(Tensor::from_array(a))
    }

    /// Wraps an ndarray array of any element type.
    pub fn from_array<T: Element>(a: ArrayD<T>) -> Tensor {
        T::into_tensor(a)
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::F64(_) => DType::F64,
            Tensor::I32(_) => DType::I32,
            Tensor::I64(_) => DType::I64,
            Tensor::Bool(_) => DType::Bool,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        crate::match_tensor!(Tensor, self, a => a.shape())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        crate::match_tensor!(Tensor, self, a => a.len())
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of element storage.
    pub fn nbytes(&self) -> usize {
        self.len() * self.dtype().size_of()
    }

    /// A borrowed view.
    pub fn view(&self) -> TensorView<'_> {
        crate::map_tensor!(Tensor, self, TensorView, a => a.view())
    }

    /// The elements as a typed array, or `None` when `T` is not this tensor's dtype.
    pub fn as_array<T: Element>(&self) -> Option<&ArrayD<T>> {
        T::tensor_ref(self)
    }

    /// Mutable typed access, or `None` when `T` is not this tensor's dtype.
    pub fn as_array_mut<T: Element>(&mut self) -> Option<&mut ArrayD<T>> {
        T::tensor_mut(self)
    }

    /// A typed mutable view, or `None` when `T` is not this tensor's dtype.
    pub fn view_mut<T: Element>(&mut self) -> Option<ArrayViewMutD<'_, T>> {
        self.as_array_mut::<T>().map(|a| a.view_mut())
    }

    /// All elements converted to f64, in row-major order (for tests and debugging).
    pub fn to_vec_f64(&self) -> Vec<f64> {
        crate::match_tensor!(Tensor, self, a => a.iter().map(|v| v.to_f64()).collect())
    }

    /// Reshapes in place when the element count matches (the data must be standard layout,
    /// which every tensor made by this crate is).
    pub fn reshape_in_place(&mut self, shape: &[usize]) -> Result<()> {
        let cur = fmt_shape(self.shape());
        let n = self.len();
        let ok = checked_numel(shape).map(|m| m == n).unwrap_or(false);
        if !ok {
            return Err(CoreError::Shape {
                op: "reshape",
                detail: format!("cannot reshape {} into {}", cur, fmt_shape(shape)),
            });
        }
        fn go<T: Element>(a: &mut ArrayD<T>, shape: &[usize]) {
            let owned = std::mem::replace(a, ArrayD::from_shape_vec(IxDyn(&[0]), vec![]).unwrap());
            let owned = if owned.is_standard_layout() { owned } else { owned.as_standard_layout().into_owned() };
            *a = owned.into_shape_with_order(IxDyn(shape)).expect("numel checked");
        }
        crate::match_tensor!(Tensor, self, a => go(a, shape));
        Ok(())
    }
}

impl<'a> TensorView<'a> {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorView::F32(_) => DType::F32,
            TensorView::F64(_) => DType::F64,
            TensorView::I32(_) => DType::I32,
            TensorView::I64(_) => DType::I64,
            TensorView::Bool(_) => DType::Bool,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        crate::match_tensor!(TensorView, self, a => a.shape())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        crate::match_tensor!(TensorView, self, a => a.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The typed view, or `None` when `T` is not this view's dtype.
    pub fn as_array<T: Element>(&self) -> Option<ArrayViewD<'a, T>> {
        T::view_ref(self)
    }

    /// A view with axes permuted (a transpose; no copy).
    pub fn permuted(&self, axes: &[usize]) -> Result<TensorView<'a>> {
        let nd = self.shape().len();
        let mut seen = vec![false; nd];
        if axes.len() != nd || axes.iter().any(|&a| a >= nd || std::mem::replace(&mut seen[a], true)) {
            return Err(CoreError::Shape {
                op: "transpose",
                detail: format!("axes {:?} are not a permutation of {} axes", axes, nd),
            });
        }
        Ok(crate::map_tensor!(TensorView, self.clone(), TensorView, a => a.permuted_axes(IxDyn(axes))))
    }

    /// A broadcast view to `shape` (NumPy rules; no copy).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<TensorView<'a>> {
        let err = || CoreError::Shape {
            op: "broadcast_to",
            detail: format!("cannot broadcast {} to {}", fmt_shape(self.shape()), fmt_shape(shape)),
        };
        fn go<'b, T: Element>(a: ArrayViewD<'b, T>, shape: &[usize]) -> Option<ArrayViewD<'b, T>> {
            let v = a.broadcast(IxDyn(shape))?;
            // SAFETY: `v` views the same elements as `a`, which are borrowed for 'b; only the
            // lifetime of the temporary borrow of `a` is extended to that of its data.
            Some(unsafe { std::mem::transmute::<ArrayViewD<'_, T>, ArrayViewD<'b, T>>(v) })
        }
        Ok(match self.clone() {
            TensorView::F32(a) => TensorView::F32(go(a, shape).ok_or_else(err)?),
            TensorView::F64(a) => TensorView::F64(go(a, shape).ok_or_else(err)?),
            TensorView::I32(a) => TensorView::I32(go(a, shape).ok_or_else(err)?),
            TensorView::I64(a) => TensorView::I64(go(a, shape).ok_or_else(err)?),
            TensorView::Bool(a) => TensorView::Bool(go(a, shape).ok_or_else(err)?),
        })
    }

    /// A strided slice view: per axis `(start, stop, step)` with `step != 0` already
    /// normalized to in-range, non-negative start/stop as Python's `slice.indices` gives
    /// (a negative step walks backwards from `start` down to, not including, `stop`).
    pub fn slice(&self, spec: &[(isize, isize, isize)]) -> Result<TensorView<'a>> {
        if spec.len() != self.shape().len() || spec.iter().any(|s| s.2 == 0) {
            return Err(CoreError::Index {
                op: "slice",
                detail: format!("bad slice spec {:?} for shape {}", spec, fmt_shape(self.shape())),
            });
        }
        fn go<'b, T: Element>(mut a: ArrayViewD<'b, T>, spec: &[(isize, isize, isize)]) -> ArrayViewD<'b, T> {
            for (ax, &(start, stop, step)) in spec.iter().enumerate() {
                let s = if step > 0 {
                    Slice::new(start, Some(stop.max(start)), step)
                } else {
                    // Python semantics: elements start, start+step, ... > stop.
                    // ndarray: negative step takes the range [lo, hi) reversed from hi-1.
                    let hi = start + 1;
                    let lo = (stop + 1).min(hi);
                    Slice::new(lo, Some(hi), step)
                };
                a.slice_axis_inplace(ndarray::Axis(ax), s);
            }
            a
        }
        Ok(crate::map_tensor!(TensorView, self.clone(), TensorView, a => go(a, spec)))
    }

    /// A copy in standard (row-major, contiguous) layout.
    pub fn to_owned(&self) -> Tensor {
        crate::map_tensor!(TensorView, self, Tensor, a => a.as_standard_layout().into_owned())
    }

    /// True when the elements are contiguous in row-major order.
    pub fn is_standard_layout(&self) -> bool {
        crate::match_tensor!(TensorView, self, a => a.is_standard_layout())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_larger_than_the_machine_fails_at_once() {
        // 2^42 f32 = 16 TiB: more than RAM plus swap here, whether or not the kernel would
        // overcommit the reservation (filling it would get the process killed).
        match try_alloc::<f32>(1 << 42, &[1 << 21, 1 << 21]) {
            Err(CoreError::Alloc { bytes, shape }) => {
                assert_eq!(bytes, 1 << 44);
                assert!(shape.contains("2097152"), "{shape}");
            }
            other => panic!("expected an allocation error, got {:?}", other.map(|v| v.len())),
        }
        assert_eq!(try_alloc::<f64>(4, &[4]).unwrap(), vec![0.0; 4]);
    }

    #[test]
    fn views_do_not_copy() {
        let t = Tensor::from_vec((0..6).map(|v| v as f64).collect::<Vec<_>>(), &[2, 3]).unwrap();
        let v = t.view().permuted(&[1, 0]).unwrap();
        assert_eq!(v.shape(), &[3, 2]);
        assert_eq!(v.to_owned().to_vec_f64(), vec![0., 3., 1., 4., 2., 5.]);
        let b = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
        let bv = b.view().broadcast_to(&[3, 2]).unwrap();
        assert_eq!(bv.to_owned().to_vec_f64(), vec![1., 2., 1., 2., 1., 2.]);
        let s = t.view().slice(&[(0, 2, 1), (2, -1, -2)]).unwrap();
        assert_eq!(s.to_owned().to_vec_f64(), vec![2., 0., 5., 3.]);
        // Broadcasting a view with negative strides.
        let r = t.view().slice(&[(1, -1, -1), (0, 3, 1)]).unwrap();
        let rb = r.broadcast_to(&[2, 2, 3]).unwrap();
        assert_eq!(rb.to_owned().to_vec_f64(), vec![3., 4., 5., 0., 1., 2., 3., 4., 5., 0., 1., 2.]);
    }

    #[test]
    fn huge_alloc_is_an_error() {
        assert!(matches!(Tensor::try_zeros(DType::F64, &[1 << 40, 1 << 30]), Err(CoreError::Alloc { .. })));
    }
}
