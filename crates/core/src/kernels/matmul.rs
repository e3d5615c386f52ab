//! Matrix products through `matrixmultiply` (f32/f64): 2-D and batched with broadcast batch
//! dims. Transposed operands arrive as strided views and are never copied.

use crate::{Result, Tensor, TensorView};

/// `out = a @ b` for `a: (..., m, k)`, `b: (..., k, n)` (both at least 2-D; the graph layer
/// handles 1-D operands by reshaping), batch dims broadcast NumPy-style; `out` is
/// `(batch..., m, n)` contiguous. Integer dtypes use a plain loop.
pub fn matmul(a: &TensorView, b: &TensorView, out: &mut Tensor) -> Result<()> {
    let _ = (a, b, out);
    todo!()
}
