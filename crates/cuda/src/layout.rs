//! Host-side index arithmetic for the kernels: the `Layout` and `ConvGeom` structs passed to
//! kernels by value, dimension merging, broadcast strides, and the `(outer, r, inner)` plans
//! of reductions, softmax and gathers. Pure functions (no device, no cudarc), so they are
//! tested on every machine.

use gorgon_core::error::fmt_shape;
use gorgon_core::kernels::conv::Conv2dParams;
use gorgon_core::{CoreError, Result};

/// Most dimensions a kernel `Layout` holds (after merging contiguous dimensions).
pub const MAX_DIMS: usize = 8;

/// Strided index description for up to three operands of one output shape; mirrors
/// `struct Layout` in `kernels/common.cuh` (#[repr(C)], i64 everywhere).
///
/// ```
/// use gorgon_cuda::layout::KernelLayout;
/// // A (2, 3) output reading a contiguous (2, 3) operand and a broadcast (3,) operand.
/// let l = KernelLayout::new(&[2, 3], &[&[3, 1], &[0, 1]]).unwrap();
/// assert_eq!(l.ndim, 2);
/// // Two contiguous operands merge into one dimension.
/// let l = KernelLayout::new(&[2, 3], &[&[3, 1], &[3, 1]]).unwrap();
/// assert_eq!((l.ndim, l.shape[0]), (1, 6));
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelLayout {
    /// Number of dimensions in use.
    pub ndim: i64,
    /// Extent of each dimension (row-major, outermost first).
    pub shape: [i64; MAX_DIMS],
    /// Per operand, per dimension stride in elements (0 = broadcast, negative = reversed).
    pub stride: [[i64; MAX_DIMS]; 3],
}

impl KernelLayout {
    /// Builds the layout of an output of `shape` whose operands (at most 3) have the given
    /// element strides, merging dimensions that are contiguous for every operand and dropping
    /// size-1 dimensions. `None` when more than [`MAX_DIMS`] dimensions remain.
    pub fn new(shape: &[usize], strides: &[&[isize]]) -> Option<KernelLayout> {
        assert!(strides.len() <= 3 && strides.iter().all(|s| s.len() == shape.len()));
        let mut dims: Vec<(i64, [i64; 3])> = Vec::new();
        for (d, &size) in shape.iter().enumerate() {
            if size == 1 {
                continue;
            }
            let mut st = [0i64; 3];
            for (slot, s) in st.iter_mut().zip(strides) {
                *slot = s[d] as i64;
            }
            if let Some(prev) = dims.last_mut() {
                if (0..3).all(|k| prev.1[k] == st[k] * size as i64) {
                    prev.0 *= size as i64;
                    prev.1 = st;
                    continue;
                }
            }
            dims.push((size as i64, st));
        }
        if dims.len() > MAX_DIMS {
            return None;
        }
        let mut l = KernelLayout { ndim: dims.len() as i64, ..Default::default() };
        for (d, (size, st)) in dims.iter().enumerate() {
            l.shape[d] = *size;
            for (row, &v) in l.stride.iter_mut().zip(st.iter()) {
                row[d] = v;
            }
        }
        Some(l)
    }
}

/// Row-major strides (in elements) of `shape`, as signed values.
pub fn contiguous_strides(shape: &[usize]) -> Vec<isize> {
    gorgon_core::shape::contiguous_strides(shape).into_iter().map(|s| s as isize).collect()
}

/// Strides that read a contiguous tensor of `in_shape` as if broadcast to `out_shape`
/// (NumPy rules: missing leading dimensions and size-1 dimensions get stride 0).
///
/// ```
/// use gorgon_cuda::layout::broadcast_strides;
/// assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 4]).unwrap(), vec![0, 1, 0]);
/// assert!(broadcast_strides(&[3], &[4]).is_err());
/// ```
pub fn broadcast_strides(in_shape: &[usize], out_shape: &[usize]) -> Result<Vec<isize>> {
    let err = || CoreError::Shape {
        op: "broadcast_to",
        detail: format!("cannot broadcast {} to {}", fmt_shape(in_shape), fmt_shape(out_shape)),
    };
    if in_shape.len() > out_shape.len() {
        return Err(err());
    }
    let lead = out_shape.len() - in_shape.len();
    let cs = contiguous_strides(in_shape);
    let mut out = vec![0isize; out_shape.len()];
    for (i, &d) in in_shape.iter().enumerate() {
        let o = out_shape[lead + i];
        if d == o {
            out[lead + i] = if d == 1 { 0 } else { cs[i] };
        } else if d != 1 {
            return Err(err());
        }
    }
    Ok(out)
}

/// How to reduce a contiguous tensor over a set of axes: optionally permute first (reduced
/// axes last), then view it as `(outer, r, inner)` and reduce over `r`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReducePlan {
    /// Axis order to copy the input into before reducing (`None`: reduce in place).
    pub permute: Option<Vec<usize>>,
    /// Product of the kept dimensions before the reduced block.
    pub outer: usize,
    /// Product of the reduced dimensions.
    pub r: usize,
    /// Product of the kept dimensions after the reduced block.
    pub inner: usize,
}

/// Plans a reduction of `shape` over `axes` (sorted, unique, in range). Reduced axes that
/// are consecutive apart from size-1 axes need no copy.
///
/// ```
/// use gorgon_cuda::layout::reduce_plan;
/// let p = reduce_plan(&[2, 3, 4], &[1]);
/// assert_eq!((p.outer, p.r, p.inner, p.permute), (2, 3, 4, None));
/// let p = reduce_plan(&[2, 3, 4], &[0, 2]);
/// assert_eq!((p.outer, p.r, p.inner), (3, 8, 1));
/// assert_eq!(p.permute, Some(vec![1, 0, 2]));
/// ```
pub fn reduce_plan(shape: &[usize], axes: &[usize]) -> ReducePlan {
    if axes.is_empty() {
        return ReducePlan { permute: None, outer: shape.iter().product(), r: 1, inner: 1 };
    }
    let (lo, hi) = (axes[0], axes[axes.len() - 1]);
    let r: usize = axes.iter().map(|&a| shape[a]).product();
    let gap_free = (lo..=hi).all(|a| axes.contains(&a) || shape[a] == 1);
    if gap_free {
        return ReducePlan {
            permute: None,
            outer: shape[..lo].iter().product(),
            r,
            inner: shape[hi + 1..].iter().product(),
        };
    }
    let mut perm: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    perm.extend_from_slice(axes);
    let outer = perm[..shape.len() - axes.len()].iter().map(|&a| shape[a]).product();
    ReducePlan { permute: Some(perm), outer, r, inner: 1 }
}

/// `(outer, shape[axis], inner)` of a contiguous tensor around one axis.
///
/// ```
/// assert_eq!(gorgon_cuda::layout::split_at_axis(&[2, 3, 4], 1), (2, 3, 4));
/// ```
pub fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

/// Geometry of a 2-D window over NCHW data; mirrors `struct ConvGeom` in `common.cuh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvGeom {
    /// Batch size.
    pub n: i64,
    /// Input channels.
    pub c: i64,
    /// Input height.
    pub h: i64,
    /// Input width.
    pub w: i64,
    /// Window height.
    pub kh: i64,
    /// Window width.
    pub kw: i64,
    /// Output height.
    pub oh: i64,
    /// Output width.
    pub ow: i64,
    /// Vertical stride.
    pub sh: i64,
    /// Horizontal stride.
    pub sw: i64,
    /// Vertical zero padding (both sides).
    pub ph: i64,
    /// Horizontal zero padding (both sides).
    pub pw: i64,
    /// Vertical dilation.
    pub dh: i64,
    /// Horizontal dilation.
    pub dw: i64,
}

impl ConvGeom {
    /// Geometry for input `(n, c, h, w)` and window `(kh, kw)`, or a shape error when the
    /// input is not 4-D or the window does not fit.
    ///
    /// ```
    /// use gorgon_core::kernels::conv::Conv2dParams;
    /// let p = Conv2dParams { stride: (1, 1), padding: (1, 1), dilation: (1, 1) };
    /// let g = gorgon_cuda::layout::ConvGeom::new("conv2d", &[2, 3, 8, 8], (3, 3), p).unwrap();
    /// assert_eq!((g.oh, g.ow), (8, 8));
    /// ```
    pub fn new(op: &'static str, x_shape: &[usize], kernel: (usize, usize), p: Conv2dParams) -> Result<ConvGeom> {
        if x_shape.len() != 4 {
            return Err(CoreError::Shape { op, detail: format!("expected an NCHW input, got {}", fmt_shape(x_shape)) });
        }
        let (h, w) = (x_shape[2], x_shape[3]);
        let (oh, ow) = p.out_hw((h, w), kernel).ok_or_else(|| CoreError::Shape {
            op,
            detail: format!("window {:?} with {:?} does not fit input {}", kernel, p, fmt_shape(x_shape)),
        })?;
        let i = |v: usize| v as i64;
        Ok(ConvGeom {
            n: i(x_shape[0]),
            c: i(x_shape[1]),
            h: i(h),
            w: i(w),
            kh: i(kernel.0),
            kw: i(kernel.1),
            oh: i(oh),
            ow: i(ow),
            sh: i(p.stride.0),
            sw: i(p.stride.1),
            ph: i(p.padding.0),
            pw: i(p.padding.1),
            dh: i(p.dilation.0),
            dw: i(p.dilation.1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_merges_and_drops_unit_dims() {
        let l = KernelLayout::new(&[2, 1, 3, 4], &[&[12, 12, 4, 1], &[0, 0, 0, 1]]).unwrap();
        // operand 0 contiguous everywhere, operand 1 broadcast over the first two real dims
        assert_eq!(l.ndim, 2);
        assert_eq!(&l.shape[..2], &[6, 4]);
        assert_eq!(&l.stride[0][..2], &[4, 1]);
        assert_eq!(&l.stride[1][..2], &[0, 1]);
        let scalar = KernelLayout::new(&[], &[&[], &[]]).unwrap();
        assert_eq!(scalar.ndim, 0);
        let nine: Vec<usize> = vec![2; 9];
        let perm: Vec<isize> = (0..9).map(|d| 1isize << d).collect(); // fully transposed
        assert!(KernelLayout::new(&nine, &[&perm]).is_none());
    }

    #[test]
    fn layout_keeps_transposes() {
        // (3, 2) transpose of a contiguous (2, 3): strides (1, 3)
        let l = KernelLayout::new(&[3, 2], &[&[1, 3]]).unwrap();
        assert_eq!(l.ndim, 2);
        assert_eq!(&l.stride[0][..2], &[1, 3]);
    }

    #[test]
    fn reduce_plans() {
        let p = reduce_plan(&[2, 1, 3], &[0, 2]);
        assert_eq!((p.outer, p.r, p.inner, p.permute.clone()), (1, 6, 1, None));
        let p = reduce_plan(&[4, 5], &[]);
        assert_eq!((p.outer, p.r, p.inner), (20, 1, 1));
        let p = reduce_plan(&[4, 0, 5], &[0, 2]);
        assert_eq!((p.outer, p.r, p.inner), (0, 20, 1));
        let p = reduce_plan(&[2, 3, 4, 5], &[1, 3]);
        assert_eq!(p.permute, Some(vec![0, 2, 1, 3]));
        assert_eq!((p.outer, p.r, p.inner), (8, 15, 1));
    }

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_strides(&[], &[2, 2]).unwrap(), vec![0, 0]);
        assert_eq!(broadcast_strides(&[2, 3], &[2, 3]).unwrap(), vec![3, 1]);
    }
}
