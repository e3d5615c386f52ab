//! 2-D max and average pooling (NCHW), forward and backward.

use crate::kernels::conv::Conv2dParams;
use crate::{Result, Tensor, TensorView};

/// Max pooling with window `kernel`; padded cells never win (as −∞).
pub fn max_pool2d(x: &TensorView, kernel: (usize, usize), p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    let _ = (x, kernel, p, out);
    todo!()
}

/// Gradient of max pooling: routes each `grad` cell to the first arg-max of its window in `x`.
pub fn max_pool2d_backward(x: &TensorView, grad: &TensorView, kernel: (usize, usize), p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    let _ = (x, grad, kernel, p, out);
    todo!()
}

/// Average pooling; padded zeros count in the divisor (PyTorch's default).
pub fn avg_pool2d(x: &TensorView, kernel: (usize, usize), p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    let _ = (x, kernel, p, out);
    todo!()
}

/// Gradient of average pooling into `out` (the input's shape).
pub fn avg_pool2d_backward(grad: &TensorView, kernel: (usize, usize), p: Conv2dParams, out: &mut Tensor) -> Result<()> {
    let _ = (grad, kernel, p, out);
    todo!()
}
