//! Shape arithmetic: NumPy broadcasting, axis normalization, strides. Pure functions only.

use crate::error::{fmt_shape, CoreError, Result};

/// The broadcast shape of two shapes under NumPy rules.
///
/// ```
/// use gorgon_core::shape::broadcast_shapes;
/// assert_eq!(broadcast_shapes(&[2, 1, 3], &[4, 1]).unwrap(), vec![2, 4, 3]);
/// assert!(broadcast_shapes(&[2], &[3]).is_err());
/// ```
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(CoreError::Shape {
                op: "broadcast",
                detail: format!("shapes {} and {} are not broadcastable", fmt_shape(a), fmt_shape(b)),
            });
        };
    }
    Ok(out)
}

/// Normalizes a possibly negative axis against `ndim`.
///
/// ```
/// assert_eq!(gorgon_core::shape::normalize_axis(-1, 3).unwrap(), 2);
/// ```
pub fn normalize_axis(axis: isize, ndim: usize) -> Result<usize> {
    let n = ndim as isize;
    let a = if axis < 0 { axis + n } else { axis };
    if a < 0 || a >= n.max(0) {
        return Err(CoreError::Index {
            op: "axis",
            detail: format!("axis {} is out of bounds for an array of dimension {}", axis, ndim),
        });
    }
    Ok(a as usize)
}

/// Normalizes, sorts and de-duplicates-checks a set of axes (`None` = all axes).
pub fn normalize_axes(axes: Option<&[isize]>, ndim: usize) -> Result<Vec<usize>> {
    let mut out: Vec<usize> = match axes {
        None => (0..ndim).collect(),
        Some(a) => a.iter().map(|&x| normalize_axis(x, ndim)).collect::<Result<_>>()?,
    };
    out.sort_unstable();
    if out.windows(2).any(|w| w[0] == w[1]) {
        return Err(CoreError::Index { op: "axis", detail: format!("repeated axis in {:?}", axes) });
    }
    Ok(out)
}

/// The shape after reducing `axes` (sorted), with or without keeping them as size 1.
pub fn reduced_shape(shape: &[usize], axes: &[usize], keepdims: bool) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .filter_map(|(i, &d)| {
            if axes.contains(&i) {
                if keepdims { Some(1) } else { None }
            } else {
                Some(d)
            }
        })
        .collect()
}

/// Row-major (C) strides, in elements.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Product of dimensions.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Shape equality for hot paths. Equivalent to `a == b`, but never calls `memcmp`: slice
/// equality on `usize` lowers to `memcmp`, and on some CPUs glibc's AVX-512 `memcmp` takes
/// ~400 ns for two *empty* slices (dangling pointers of 0-d shapes), which dominated
/// scalar-graph runs.
///
/// ```
/// use gorgon_core::shape::same_shape;
/// assert!(same_shape(&[], &[]));
/// assert!(!same_shape(&[2, 3], &[3, 2]));
/// ```
#[inline]
pub fn same_shape(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn reduce_shapes() {
        assert_eq!(reduced_shape(&[2, 3, 4], &[1], false), vec![2, 4]);
        assert_eq!(reduced_shape(&[2, 3, 4], &[0, 2], true), vec![1, 3, 1]);
        assert!(normalize_axes(Some(&[0, -3]), 3).is_err());
        assert_eq!(contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);
    }
}
