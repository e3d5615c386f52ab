//! Elementwise kernels: unary math, binary arithmetic/comparisons with NumPy broadcasting,
//! `where`, `cast`, and strided copies.
//!
//! All kernels share one strided loop: the output is contiguous, every input is viewed with
//! the output's shape (broadcast axes have stride 0), axes of size 1 are dropped and adjacent
//! axes that are contiguous for *every* operand are merged. The innermost (merged) axis runs
//! through specialized loops (both unit-stride → slices, one operand a scalar → slice plus
//! constant, anything else → strided gather), so contiguous tensors, scalars and row/column
//! broadcasts all reach tight, vectorizable loops. Large outputs are split into contiguous
//! pieces across threads ([`threads`](super::threads)).
//!
//! Exp/Log/Log1p/Expm1/Tanh/Sigmoid (and Softplus/Mish built on them) use the explicit SIMD
//! kernels of [`vmath`](super::vmath); simple maps are compiled a second time with AVX2
//! enabled and chosen at run time.
//!
//! ```
//! use gorgon_core::{Tensor, DType};
//! use gorgon_core::kernels::elementwise::{unary, binary, UnaryOp, BinaryOp};
//! let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
//! let b = Tensor::from_vec(vec![10.0f32, 20.0], &[2, 1]).unwrap();
//! let mut out = Tensor::zeros(DType::F32, &[2, 3]);
//! binary(BinaryOp::Mul, &a.view(), &b.view(), &mut out).unwrap();
//! assert_eq!(out.to_vec_f64(), vec![10., 20., 30., 80., 100., 120.]);
//! let mut r = Tensor::zeros(DType::F32, &[2, 3]);
//! unary(UnaryOp::Neg, &a.view(), &mut r).unwrap();
//! assert_eq!(r.to_vec_f64()[0], -1.0);
//! ```

use crate::error::{fmt_shape, CoreError};
use crate::shape::broadcast_shapes;
use crate::{DType, Result, Tensor, TensorView};

mod binary;
mod convert;
mod elem;
mod engine;
mod unary;

use binary::{binary_bool, binary_float, binary_int};
use convert::{cast_t, copy_t, where_t};
use unary::{unary_float_slice, unary_int_slice, unary_t};

/// A unary elementwise operation. Float-only ops reject integer inputs with
/// `CoreError::DType`; `Neg Abs Sign Square Cube` (and `Relu`) also accept int32/int64.
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

impl UnaryOp {
    /// The op's lowercase name, used in error messages (`"exp"`, `"leaky_relu"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Expm1 => "expm1",
            UnaryOp::Log2 => "log2",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Square => "square",
            UnaryOp::Cube => "cube",
            UnaryOp::Inverse => "reciprocal",
            UnaryOp::InverseSqrt => "rsqrt",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Softplus => "softplus",
            UnaryOp::Relu => "relu",
            UnaryOp::Mish => "mish",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::LeakyRelu(_) => "leaky_relu",
            UnaryOp::Clip(..) => "clip",
            UnaryOp::Step => "step",
            UnaryOp::InRange(..) => "in_range",
            UnaryOp::LeakyStep(_) => "leaky_step",
            UnaryOp::MishGrad => "mish_grad",
        }
    }

    /// True when the op accepts `dtype` (floats: every op; int32/int64: Neg, Abs, Sign,
    /// Square, Cube, Relu; bool: none).
    pub fn supports(&self, dtype: DType) -> bool {
        match dtype {
            DType::F32 | DType::F64 => true,
            DType::I32 | DType::I64 => matches!(
                self,
                UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Square | UnaryOp::Cube | UnaryOp::Relu
            ),
            DType::Bool => false,
        }
    }
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

impl BinaryOp {
    /// The op's lowercase name (NumPy's ufunc name), used in error messages.
    pub fn name(&self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "subtract",
            BinaryOp::Mul => "multiply",
            BinaryOp::Div => "divide",
            BinaryOp::Pow => "power",
            BinaryOp::FloorDiv => "floor_divide",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Lt => "less",
            BinaryOp::Le => "less_equal",
            BinaryOp::Gt => "greater",
            BinaryOp::Ge => "greater_equal",
            BinaryOp::Eq => "equal",
            BinaryOp::Ne => "not_equal",
        }
    }

    /// True when the op accepts operands of `dtype` (floats: all; ints: all but Div; bool:
    /// comparisons, Maximum/Add (logical or) and Minimum/Mul (logical and)).
    pub fn supports(&self, dtype: DType) -> bool {
        match dtype {
            DType::F32 | DType::F64 => true,
            DType::I32 | DType::I64 => *self != BinaryOp::Div,
            DType::Bool => !matches!(self, BinaryOp::Sub | BinaryOp::Div | BinaryOp::Pow | BinaryOp::FloorDiv),
        }
    }

    /// True for the comparison ops (Lt, Le, Gt, Ge, Eq, Ne).
    pub fn is_comparison(&self) -> bool {
        matches!(self, BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Eq | BinaryOp::Ne)
    }
}

// =========================================================================================
// Public kernels.
// =========================================================================================

/// NumPy's float `floor_divide` (its `npy_divmod` rule): `1.0 // 0.1 == 9.0`,
/// `inf // 2` is NaN, `-1 // inf == -1`, division by zero gives `a / b`.
///
/// ```
/// use gorgon_core::kernels::elementwise::floor_divide_f64;
/// assert_eq!(floor_divide_f64(1.0, 0.1), 9.0);
/// assert_eq!(floor_divide_f64(-1.0, f64::INFINITY), -1.0);
/// assert_eq!(floor_divide_f64(7.0, -2.0), -4.0);
/// ```
pub fn floor_divide_f64(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        return a / b;
    }
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div != 0.0 {
        let f = div.floor();
        if div - f > 0.5 { f + 1.0 } else { f }
    } else {
        0.0f64.copysign(a / b)
    }
}

/// `match (operands..., out)` over the listed dtypes, binding the typed arrays of one dtype
/// and evaluating `$body`; any other combination is a dtype error of `$name`.
macro_rules! same_dtype {
    ($name:expr, ($x:expr, $out:expr), [$($v:ident),+], |$xa:ident, $oa:ident| $body:expr) => {
        match ($x, $out) {
            $((TensorView::$v($xa), Tensor::$v($oa)) => $body,)+
            (x, _) => Err(CoreError::DType { op: $name, dtype: x.dtype(), detail: String::new() }),
        }
    };
    ($name:expr, ($a:expr, $b:expr, $out:expr), [$($v:ident),+], |$aa:ident, $ba:ident, $oa:ident| $body:expr) => {
        match ($a, $b, $out) {
            $((TensorView::$v($aa), TensorView::$v($ba), Tensor::$v($oa)) => $body,)+
            (a, _, _) => Err(CoreError::DType { op: $name, dtype: a.dtype(), detail: String::new() }),
        }
    };
}

/// `out = op(x)`. `out` has x's shape and dtype.
pub fn unary(op: UnaryOp, x: &TensorView, out: &mut Tensor) -> Result<()> {
    let name = op.name();
    check_out_dtype(name, x.dtype(), out.dtype(), "input")?;
    check_out_shape(name, x.shape(), out.shape(), "input")?;
    if !op.supports(x.dtype()) {
        return Err(CoreError::DType {
            op: name,
            dtype: x.dtype(),
            detail: if matches!(x.dtype(), DType::I32 | DType::I64) {
                format!("{name} is only defined for float32 and float64")
            } else {
                format!("{name} is not defined for bool")
            },
        });
    }
    match (x, out) {
        (TensorView::F32(x), Tensor::F32(o)) => unary_t(x, o, move |s, d| unary_float_slice::<f32>(op, s, d)),
        (TensorView::F64(x), Tensor::F64(o)) => unary_t(x, o, move |s, d| unary_float_slice::<f64>(op, s, d)),
        (TensorView::I32(x), Tensor::I32(o)) => unary_t(x, o, move |s, d| unary_int_slice::<i32>(op, s, d)),
        (TensorView::I64(x), Tensor::I64(o)) => unary_t(x, o, move |s, d| unary_int_slice::<i64>(op, s, d)),
        (x, _) => Err(CoreError::DType { op: name, dtype: x.dtype(), detail: String::new() }),
    }
}

/// `out = op(a, b)` with broadcasting; `out` has the broadcast shape and the operands' dtype.
pub fn binary(op: BinaryOp, a: &TensorView, b: &TensorView, out: &mut Tensor) -> Result<()> {
    let name = op.name();
    same_dtypes(name, &[a.dtype(), b.dtype()], out.dtype())?;
    let shape = broadcast_shapes(a.shape(), b.shape()).map_err(|_| {
        shape_err(name, format!(
            "operands could not be broadcast together with shapes {} {}",
            fmt_shape(a.shape()),
            fmt_shape(b.shape())
        ))
    })?;
    check_out_shape(name, &shape, out.shape(), "the broadcast")?;
    if !op.supports(a.dtype()) {
        return Err(CoreError::DType {
            op: name,
            dtype: a.dtype(),
            detail: match a.dtype() {
                DType::I32 | DType::I64 => "integer true division: cast the operands to a float dtype first".into(),
                _ => format!("{name} is not defined for bool"),
            },
        });
    }
    match (a, b, out) {
        (TensorView::F32(a), TensorView::F32(b), Tensor::F32(o)) => binary_float::<f32>(op, a, b, o),
        (TensorView::F64(a), TensorView::F64(b), Tensor::F64(o)) => binary_float::<f64>(op, a, b, o),
        (TensorView::I32(a), TensorView::I32(b), Tensor::I32(o)) => binary_int::<i32>(op, a, b, o),
        (TensorView::I64(a), TensorView::I64(b), Tensor::I64(o)) => binary_int::<i64>(op, a, b, o),
        (TensorView::Bool(a), TensorView::Bool(b), Tensor::Bool(o)) => binary_bool(op, a, b, o),
        (a, _, _) => Err(CoreError::DType { op: name, dtype: a.dtype(), detail: String::new() }),
    }
}

/// `out = cond != 0 ? a : b` with three-way broadcasting; `cond` may be any dtype,
/// `a`/`b`/`out` share a dtype.
pub fn where_(cond: &TensorView, a: &TensorView, b: &TensorView, out: &mut Tensor) -> Result<()> {
    let name = "where";
    same_dtypes(name, &[a.dtype(), b.dtype()], out.dtype())?;
    let shape = broadcast_shapes(cond.shape(), a.shape())
        .and_then(|s| broadcast_shapes(&s, b.shape()))
        .map_err(|_| {
            shape_err(name, format!(
                "operands could not be broadcast together with shapes {} {} {}",
                fmt_shape(cond.shape()),
                fmt_shape(a.shape()),
                fmt_shape(b.shape())
            ))
        })?;
    check_out_shape(name, &shape, out.shape(), "the broadcast")?;
    same_dtype!(name, (a, b, out), [F32, F64, I32, I64, Bool], |a, b, o| {
        crate::match_tensor!(TensorView, cond, c => where_t(c, a, b, o))
    })
}

/// Converts `x` into `out`'s dtype (same shape). float→int truncates toward zero like
/// NumPy's `astype`; to bool is `!= 0`.
///
/// Out-of-range floats saturate to the integer's bounds and NaN becomes 0 (NumPy leaves
/// these undefined); int64→int32 wraps like NumPy.
pub fn cast(x: &TensorView, out: &mut Tensor) -> Result<()> {
    check_out_shape("cast", x.shape(), out.shape(), "input")?;
    crate::match_tensor!(TensorView, x, xv => crate::match_tensor!(Tensor, out, o => cast_t(xv, o)))
}

/// Copies a (possibly strided or broadcast) view into `out` (same dtype; `out`'s shape must
/// equal the view's shape). Used to materialize transposes, slices and broadcasts.
pub fn copy_into(x: &TensorView, out: &mut Tensor) -> Result<()> {
    let name = "copy";
    check_out_dtype(name, x.dtype(), out.dtype(), "input")?;
    check_out_shape(name, x.shape(), out.shape(), "input")?;
    same_dtype!(name, (x, out), [F32, F64, I32, I64, Bool], |x, o| copy_t(x, o))
}

// =========================================================================================
// Checks.
// =========================================================================================

fn shape_err(op: &'static str, detail: String) -> CoreError {
    CoreError::Shape { op, detail }
}

/// Errors unless the output dtype is `want`, the dtype of the `what` ("input", "operand").
fn check_out_dtype(op: &'static str, want: DType, out: DType, what: &str) -> Result<()> {
    if out != want {
        return Err(CoreError::DType {
            op,
            dtype: out,
            detail: format!("output dtype {out} differs from {what} dtype {want}"),
        });
    }
    Ok(())
}

/// Errors unless the output shape is `want`, the shape of the `what` ("input", "the broadcast").
fn check_out_shape(op: &'static str, want: &[usize], out: &[usize], what: &str) -> Result<()> {
    if !crate::shape::same_shape(want, out) {
        return Err(shape_err(op, format!(
            "output shape {} differs from {what} shape {}",
            fmt_shape(out),
            fmt_shape(want)
        )));
    }
    Ok(())
}

fn same_dtypes(op: &'static str, ins: &[DType], out: DType) -> Result<()> {
    let first = ins[0];
    if let Some(&bad) = ins.iter().find(|&&d| d != first) {
        return Err(CoreError::DType {
            op,
            dtype: bad,
            detail: format!(
                "operand dtypes differ ({}); cast them to one dtype first",
                ins.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    check_out_dtype(op, first, out, "operand")
}
