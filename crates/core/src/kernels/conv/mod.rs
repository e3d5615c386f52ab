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
use crate::{Result, Tensor, TensorView};

mod gemm;
mod im2col;
mod passes;
mod plumbing;

pub(crate) use plumbing::{
    check_4d, check_4ds, check_float_dtypes, check_out_shape, max_threads, out_hw, out_slice, par_items, raw4, typed,
};
use passes::{conv2d_bi_t, conv2d_bw_t, conv2d_t};

/// Runs `$f::<f32>(args)` or `$f::<f64>(args)` for the float dtype `$dt` (checked before:
/// anything but float32 is float64).
macro_rules! by_float_dtype {
    ($dt:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $dt {
            crate::DType::F32 => $f::<f32>($($arg),*),
            _ => $f::<f64>($($arg),*),
        }
    };
}
pub(crate) use by_float_dtype;

/// The layouts the checks name.
const IMAGE: &str = "(N, C, H, W)";
const WEIGHT: &str = "(O, C, kH, kW)";
const GRAD: &str = "(N, O, oH, oW)";

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
    let (oh, ow) = out_hw(op, "kernel", x, khw, p)?;
    Ok(Geom { n: x[0], c: x[1], h: x[2], w: x[3], o, kh: khw.0, kw: khw.1, oh, ow, p })
}

/// The geometry of input shape `xs` and weight shape `ws` (channels must agree); for the
/// backward passes also checks the gradient's shape `grad`.
fn checked_geometry(op: &'static str, xs: [usize; 4], ws: [usize; 4], p: Conv2dParams, grad: Option<[usize; 4]>) -> Result<Geom> {
    if xs[1] != ws[1] {
        return Err(CoreError::Shape {
            op,
            detail: format!(
                "input {} has {} channels but weight {} expects {}",
                fmt_shape(&xs),
                xs[1],
                fmt_shape(&ws),
                ws[1]
            ),
        });
    }
    let g = geometry(op, xs, ws[0], (ws[2], ws[3]), p)?;
    let expect = [g.n, g.o, g.oh, g.ow];
    match grad {
        Some(gs) if gs != expect => Err(CoreError::Shape {
            op,
            detail: format!(
                "grad has shape {}, expected {} for input {} and weight {}",
                fmt_shape(&gs),
                fmt_shape(&expect),
                fmt_shape(&xs),
                fmt_shape(&ws)
            ),
        }),
        _ => Ok(g),
    }
}

// ---------------------------------------------------------------------------------------------
// The passes.
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
    let [xs, ws] = check_4ds(OP, [("input", IMAGE, x.shape()), ("weight", WEIGHT, w.shape())])?;
    let g = checked_geometry(OP, xs, ws, p, None)?;
    check_out_shape(OP, out.shape(), &[g.n, g.o, g.oh, g.ow])?;
    by_float_dtype!(dt, conv2d_t(OP, x, w, &g, out))
}

/// Gradient w.r.t. the input: `out (N, C, H, W)` from `grad (N, O, oH, oW)` and `w`.
///
/// The input's spatial size is taken from `out`'s shape (several input sizes can give the
/// same output size when the stride is > 1).
pub fn conv2d_backward_input(grad: &TensorView, w: &TensorView, p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    const OP: &str = "conv2d_backward_input";
    let dt = check_float_dtypes(OP, &[grad.dtype(), w.dtype()], out.dtype())?;
    let [gs, ws, xs] = check_4ds(OP, [("grad", GRAD, grad.shape()), ("weight", WEIGHT, w.shape()), ("output", IMAGE, out.shape())])?;
    by_float_dtype!(dt, conv2d_bi_t(OP, grad, w, &checked_geometry(OP, xs, ws, p, Some(gs))?, out))
}

/// Gradient w.r.t. the weight: `out (O, C, kH, kW)` from `x` and `grad (N, O, oH, oW)`.
///
/// The kernel size is taken from `out`'s shape. The batch sum is split into contiguous
/// per-thread ranges whose partials are added in a fixed order (deterministic for a given
/// thread count).
pub fn conv2d_backward_weight(x: &TensorView, grad: &TensorView, p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    const OP: &str = "conv2d_backward_weight";
    let dt = check_float_dtypes(OP, &[x.dtype(), grad.dtype()], out.dtype())?;
    let [xs, gs, ws] = check_4ds(OP, [("input", IMAGE, x.shape()), ("grad", GRAD, grad.shape()), ("output", WEIGHT, out.shape())])?;
    by_float_dtype!(dt, conv2d_bw_t(OP, x, grad, &checked_geometry(OP, xs, ws, p, Some(gs))?, out))
}
