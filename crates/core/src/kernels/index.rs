//! Gather (`take`), its adjoint scatter-add, concatenation, one-hot.

use crate::{Result, Tensor, TensorView};

/// `out = take(x, indices, axis)`: `out.shape = x.shape[:axis] + indices.shape +
/// x.shape[axis+1:]`. Indices are int32/int64; negative ones count from the end;
/// out-of-range ones are a `CoreError::Index`.
pub fn take(x: &TensorView, indices: &TensorView, axis: usize, out: &mut Tensor) -> Result<()> {
    let _ = (x, indices, axis, out);
    todo!()
}

/// The adjoint of [`take`]: zero `out` (shape of the original `x`), then
/// `out[.., idx, ..] += grad[.., i, ..]` for every index position.
pub fn scatter_add(grad: &TensorView, indices: &TensorView, axis: usize, out: &mut Tensor) -> Result<()> {
    let _ = (grad, indices, axis, out);
    todo!()
}

/// Concatenates along `axis` into `out`.
pub fn concat(xs: &[TensorView], axis: usize, out: &mut Tensor) -> Result<()> {
    let _ = (xs, axis, out);
    todo!()
}

/// `out[..., k] = (indices[...] == k)` as 0/1 in `out`'s dtype; `out.shape = indices.shape + (n,)`.
pub fn one_hot(indices: &TensorView, n: usize, out: &mut Tensor) -> Result<()> {
    let _ = (indices, n, out);
    todo!()
}
