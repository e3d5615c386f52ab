//! Reductions over any set of axes: sum, mean, max, min, prod, logsumexp; argmax/argmin.

use crate::{Result, Tensor, TensorView};

/// A reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Σ
    Sum,
    /// Σ / n
    Mean,
    /// maximum (NaN-propagating)
    Max,
    /// minimum (NaN-propagating)
    Min,
    /// Π
    Prod,
    /// log Σ exp, computed stably (max-shifted)
    LogSumExp,
}

/// Reduces `x` over `axes` (sorted, unique, in range) into `out`, whose element count equals
/// the product of the kept dimensions (its shape may be the keepdims or the squeezed form;
/// elements are written in row-major order of the kept axes). Same dtype in and out;
/// Sum/Prod/Max/Min accept ints too. Max/Min over an empty axis is an error.
pub fn reduce(op: ReduceOp, x: &TensorView, axes: &[usize], out: &mut Tensor) -> Result<()> {
    let _ = (op, x, axes, out);
    todo!()
}

/// Index of the max (`is_max`) or min along `axis` (`None`: over the flattened array) into
/// an int64 `out`. First occurrence wins; NaN counts as the extreme, like NumPy.
pub fn arg_reduce(is_max: bool, x: &TensorView, axis: Option<usize>, out: &mut Tensor) -> Result<()> {
    let _ = (is_max, x, axis, out);
    todo!()
}
