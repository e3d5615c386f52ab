//! Elementwise kernels: unary math, binary arithmetic/comparisons with NumPy broadcasting,
//! `where`, `cast`, and strided copies.

use crate::{Result, Tensor, TensorView};

/// A unary elementwise operation. Float-only ops reject integer inputs with
/// `CoreError::DType`; `Neg Abs Sign Square Cube` also accept int32/int64.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// −x
    Neg,
    /// |x|
    Abs,
    /// sign(x) ∈ {−1, 0, 1} (NaN stays NaN)
    Sign,
    /// e^x
    Exp,
    /// ln x
    Log,
    /// ln(1+x)
    Log1p,
    /// e^x − 1
    Expm1,
    /// log₂ x
    Log2,
    /// √x
    Sqrt,
    /// x²
    Square,
    /// x³
    Cube,
    /// 1/x
    Inverse,
    /// 1/√x
    InverseSqrt,
    /// sin x
    Sin,
    /// cos x
    Cos,
    /// tanh x
    Tanh,
    /// 1/(1+e^−x), stable for both signs
    Sigmoid,
    /// ln(1+e^x), stable (x for large x, e^x for very negative x)
    Softplus,
    /// max(x, 0)
    Relu,
    /// x·tanh(softplus(x))
    Mish,
    /// ⌊x⌋
    Floor,
    /// ⌈x⌉
    Ceil,
    /// x if x > 0 else alpha·x
    LeakyRelu(f64),
    /// min(max(x, lo), hi)
    Clip(f64, f64),
    /// 1 if x > 0 else 0 (derivative of relu)
    Step,
    /// 1 if lo ≤ x ≤ hi else 0 (derivative of clip)
    InRange(f64, f64),
    /// 1 if x > 0 else alpha (derivative of leaky relu)
    LeakyStep(f64),
    /// d mish / dx
    MishGrad,
}

/// A binary elementwise operation with NumPy broadcasting. Both operands have the same dtype
/// (the graph layer guarantees it). Comparisons produce 0/1 *in the operand dtype*.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// a + b
    Add,
    /// a − b
    Sub,
    /// a · b
    Mul,
    /// a / b (floats; for ints the graph casts to float64 first)
    Div,
    /// a ^ b (floats; ints: non-negative integer power)
    Pow,
    /// ⌊a / b⌋ (NumPy floor_divide; int division by zero gives 0 like NumPy)
    FloorDiv,
    /// max(a, b), NaN-propagating like np.maximum
    Maximum,
    /// min(a, b), NaN-propagating like np.minimum
    Minimum,
    /// a < b
    Lt,
    /// a ≤ b
    Le,
    /// a > b
    Gt,
    /// a ≥ b
    Ge,
    /// a == b
    Eq,
    /// a != b
    Ne,
}

/// `out = op(x)`. `out` has x's shape and dtype.
pub fn unary(op: UnaryOp, x: &TensorView, out: &mut Tensor) -> Result<()> {
    let _ = (op, x, out);
    todo!("implemented by the elementwise kernel work")
}

/// `out = op(a, b)` with broadcasting; `out` has the broadcast shape and the operands' dtype.
pub fn binary(op: BinaryOp, a: &TensorView, b: &TensorView, out: &mut Tensor) -> Result<()> {
    let _ = (op, a, b, out);
    todo!()
}

/// `out = cond != 0 ? a : b` with three-way broadcasting; `cond` may be any dtype,
/// `a`/`b`/`out` share a dtype.
pub fn where_(cond: &TensorView, a: &TensorView, b: &TensorView, out: &mut Tensor) -> Result<()> {
    let _ = (cond, a, b, out);
    todo!()
}

/// Converts `x` into `out`'s dtype (same shape). float→int truncates toward zero like
/// NumPy's `astype`; to bool is `!= 0`.
pub fn cast(x: &TensorView, out: &mut Tensor) -> Result<()> {
    let _ = (x, out);
    todo!()
}

/// Copies a (possibly strided or broadcast) view into `out` (same dtype; `out`'s shape must
/// equal the view's shape). Used to materialize transposes, slices and broadcasts.
pub fn copy_into(x: &TensorView, out: &mut Tensor) -> Result<()> {
    let _ = (x, out);
    todo!()
}
