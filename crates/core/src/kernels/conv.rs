//! 2-D convolution (NCHW input, OIHW weight) by im2col + GEMM, with both backward passes
//! (col2im for the input gradient).

use crate::{Result, Tensor, TensorView};

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

/// `out = conv2d(x, w)`: x `(N, C, H, W)`, w `(O, C, kH, kW)`, out `(N, O, oH, oW)`.
pub fn conv2d(x: &TensorView, w: &TensorView, p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    let _ = (x, w, p, out);
    todo!()
}

/// Gradient w.r.t. the input: `out (N, C, H, W)` from `grad (N, O, oH, oW)` and `w`.
pub fn conv2d_backward_input(grad: &TensorView, w: &TensorView, p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    let _ = (grad, w, p, out);
    todo!()
}

/// Gradient w.r.t. the weight: `out (O, C, kH, kW)` from `x` and `grad (N, O, oH, oW)`.
pub fn conv2d_backward_weight(x: &TensorView, grad: &TensorView, p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    let _ = (x, grad, p, out);
    todo!()
}
