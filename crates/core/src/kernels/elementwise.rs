//! Elementwise kernels: unary math, binary arithmetic/comparisons with NumPy broadcasting,
//! `where`, `cast`, and strided copies.
//!
//! All kernels share one strided loop: the output is contiguous, every input is viewed with
//! the output's shape (broadcast axes have stride 0), axes of size 1 are dropped and adjacent
//! axes that are contiguous for *every* operand are merged. The innermost (merged) axis runs
//! through specialized loops (both unit-stride → slices, one operand a scalar → slice plus
//! constant, anything else → strided gather), so contiguous tensors, scalars and row/column
//! broadcasts all reach tight, vectorizable loops. Large outputs are split into contiguous
//! pieces across threads ([`threads`]).
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

#[cfg(target_arch = "x86_64")]
use super::simd::{self, SimdLevel};
use super::threads;
use super::vmath::{VFunc, VMath};
use crate::error::{fmt_shape, CoreError};
use crate::shape::broadcast_shapes;
use crate::tensor::try_alloc;
use crate::{DType, Element, Float, Result, Tensor, TensorView};
use ndarray::{ArrayD, ArrayViewD, IxDyn};

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

/// `out = op(x)`. `out` has x's shape and dtype.
pub fn unary(op: UnaryOp, x: &TensorView, out: &mut Tensor) -> Result<()> {
    let name = op.name();
    if out.dtype() != x.dtype() {
        return Err(CoreError::DType {
            op: name,
            dtype: out.dtype(),
            detail: format!("output dtype {} differs from input dtype {}", out.dtype(), x.dtype()),
        });
    }
    if !crate::shape::same_shape(out.shape(), x.shape()) {
        return Err(shape_err(name, format!(
            "output shape {} differs from input shape {}",
            fmt_shape(out.shape()),
            fmt_shape(x.shape())
        )));
    }
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
    check_out_shape(name, &shape, out.shape())?;
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
    check_out_shape(name, &shape, out.shape())?;
    match (a, b, out) {
        (TensorView::F32(a), TensorView::F32(b), Tensor::F32(o)) => {
            crate::match_tensor!(TensorView, cond, c => where_t(c, a, b, o))
        }
        (TensorView::F64(a), TensorView::F64(b), Tensor::F64(o)) => {
            crate::match_tensor!(TensorView, cond, c => where_t(c, a, b, o))
        }
        (TensorView::I32(a), TensorView::I32(b), Tensor::I32(o)) => {
            crate::match_tensor!(TensorView, cond, c => where_t(c, a, b, o))
        }
        (TensorView::I64(a), TensorView::I64(b), Tensor::I64(o)) => {
            crate::match_tensor!(TensorView, cond, c => where_t(c, a, b, o))
        }
        (TensorView::Bool(a), TensorView::Bool(b), Tensor::Bool(o)) => {
            crate::match_tensor!(TensorView, cond, c => where_t(c, a, b, o))
        }
        (a, _, _) => Err(CoreError::DType { op: name, dtype: a.dtype(), detail: String::new() }),
    }
}

/// Converts `x` into `out`'s dtype (same shape). float→int truncates toward zero like
/// NumPy's `astype`; to bool is `!= 0`.
///
/// Out-of-range floats saturate to the integer's bounds and NaN becomes 0 (NumPy leaves
/// these undefined); int64→int32 wraps like NumPy.
pub fn cast(x: &TensorView, out: &mut Tensor) -> Result<()> {
    let name = "cast";
    if !crate::shape::same_shape(out.shape(), x.shape()) {
        return Err(shape_err(name, format!(
            "output shape {} differs from input shape {}",
            fmt_shape(out.shape()),
            fmt_shape(x.shape())
        )));
    }
    crate::match_tensor!(TensorView, x, xv => match out {
        Tensor::F32(o) => cast_t(xv, o),
        Tensor::F64(o) => cast_t(xv, o),
        Tensor::I32(o) => cast_t(xv, o),
        Tensor::I64(o) => cast_t(xv, o),
        Tensor::Bool(o) => cast_t(xv, o),
    })
}

/// Copies a (possibly strided or broadcast) view into `out` (same dtype; `out`'s shape must
/// equal the view's shape). Used to materialize transposes, slices and broadcasts.
pub fn copy_into(x: &TensorView, out: &mut Tensor) -> Result<()> {
    let name = "copy";
    if out.dtype() != x.dtype() {
        return Err(CoreError::DType {
            op: name,
            dtype: out.dtype(),
            detail: format!("output dtype {} differs from input dtype {}", out.dtype(), x.dtype()),
        });
    }
    if !crate::shape::same_shape(out.shape(), x.shape()) {
        return Err(shape_err(name, format!(
            "output shape {} differs from input shape {}",
            fmt_shape(out.shape()),
            fmt_shape(x.shape())
        )));
    }
    match (x, out) {
        (TensorView::F32(x), Tensor::F32(o)) => copy_t(x, o),
        (TensorView::F64(x), Tensor::F64(o)) => copy_t(x, o),
        (TensorView::I32(x), Tensor::I32(o)) => copy_t(x, o),
        (TensorView::I64(x), Tensor::I64(o)) => copy_t(x, o),
        (TensorView::Bool(x), Tensor::Bool(o)) => copy_t(x, o),
        (x, _) => Err(CoreError::DType { op: name, dtype: x.dtype(), detail: String::new() }),
    }
}

// =========================================================================================
// Checks.
// =========================================================================================

fn shape_err(op: &'static str, detail: String) -> CoreError {
    CoreError::Shape { op, detail }
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
    if out != first {
        return Err(CoreError::DType {
            op,
            dtype: out,
            detail: format!("output dtype {out} differs from operand dtype {first}"),
        });
    }
    Ok(())
}

fn check_out_shape(op: &'static str, want: &[usize], got: &[usize]) -> Result<()> {
    if !crate::shape::same_shape(want, got) {
        return Err(shape_err(op, format!(
            "output shape {} differs from the broadcast shape {}",
            fmt_shape(got),
            fmt_shape(want)
        )));
    }
    Ok(())
}

// =========================================================================================
// The strided loop engine.
// =========================================================================================

/// Smallest piece of output handed to one thread.
const MIN_CHUNK: usize = threads::DEFAULT_MIN_CHUNK;

/// A raw read pointer that may cross threads (the data is borrowed, read-only, for the whole
/// kernel call).
#[derive(Clone, Copy)]
struct Ptr<T>(*const T);
// SAFETY: only reads through the pointer, of `T: Sync` data that outlives the kernel call.
unsafe impl<T: Sync> Send for Ptr<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Ptr<T> {}
impl<T> Ptr<T> {
    #[inline(always)]
    fn get(self) -> *const T {
        self.0
    }
}

/// Iteration plan for `N` input operands against a contiguous output: the output shape with
/// size-1 axes dropped and mergeable axes merged; the last axis is the inner loop.
struct Plan<const N: usize> {
    outer_shape: Vec<usize>,
    outer_strides: Vec<[isize; N]>,
    inner: usize,
    inner_strides: [isize; N],
    /// Visit full rows in `TILE_ROWS × TILE_COLS` tiles (an operand walks its rows with a
    /// large stride, e.g. a transpose: tiles keep its cache lines hot across rows).
    tiled: bool,
}

/// Rows per tile in tiled traversal.
const TILE_ROWS: usize = 32;
/// Columns per tile in tiled traversal.
const TILE_COLS: usize = 128;

#[allow(clippy::needless_range_loop)]
impl<const N: usize> Plan<N> {
    /// `shape` is the output shape; `strides[k]` the element strides of operand k viewed with
    /// that shape (0 on broadcast axes).
    fn new(shape: &[usize], strides: [&[isize]; N]) -> Plan<N> {
        let mut dims: Vec<(usize, [isize; N])> = Vec::with_capacity(shape.len());
        for (ax, &d) in shape.iter().enumerate() {
            if d == 1 {
                continue;
            }
            let mut st = [0isize; N];
            for k in 0..N {
                st[k] = strides[k][ax];
            }
            if let Some(last) = dims.last_mut() {
                if (0..N).all(|k| last.1[k] == st[k].wrapping_mul(d as isize)) {
                    last.0 *= d;
                    last.1 = st;
                    continue;
                }
            }
            dims.push((d, st));
        }
        let (inner, inner_strides) = dims.pop().unwrap_or((1, [0; N]));
        let tiled = !dims.is_empty() && inner >= 2 * TILE_COLS && inner_strides.iter().any(|s| s.unsigned_abs() > 1);
        Plan {
            outer_shape: dims.iter().map(|d| d.0).collect(),
            outer_strides: dims.iter().map(|d| d.1).collect(),
            inner,
            inner_strides,
            tiled,
        }
    }

    /// Calls `f(offsets, rel, n)` for the elements `e0..e1` of the flattened output, one call
    /// per (piece of an) inner row: `offsets` are the operands' element offsets of the row's
    /// first element, `rel` its position relative to `e0`, `n` the element count.
    fn run_range(&self, e0: usize, e1: usize, f: &mut dyn FnMut([isize; N], usize, usize)) {
        if e0 >= e1 || self.inner == 0 {
            return;
        }
        let nd = self.outer_shape.len();
        let inner = self.inner;
        let mut idx = vec![0usize; nd];
        let mut rem = e0 / inner;
        let mut base = [0isize; N];
        for d in (0..nd).rev() {
            let sz = self.outer_shape[d];
            idx[d] = rem % sz;
            rem /= sz;
            for k in 0..N {
                base[k] += idx[d] as isize * self.outer_strides[d][k];
            }
        }
        let mut j = e0 % inner;
        let mut e = e0;
        // Full rows waiting to be visited tile by tile: (row offsets, position rel. to e0).
        let mut group: Vec<([isize; N], usize)> = Vec::new();
        while e < e1 {
            let n = (inner - j).min(e1 - e);
            if self.tiled && j == 0 && n == inner {
                group.push((base, e - e0));
                if group.len() == TILE_ROWS {
                    self.flush_tiles(&group, f);
                    group.clear();
                }
            } else {
                let mut offs = base;
                for k in 0..N {
                    offs[k] += j as isize * self.inner_strides[k];
                }
                f(offs, e - e0, n);
            }
            e += n;
            j = 0;
            for d in (0..nd).rev() {
                idx[d] += 1;
                for k in 0..N {
                    base[k] += self.outer_strides[d][k];
                }
                if idx[d] < self.outer_shape[d] {
                    break;
                }
                for k in 0..N {
                    base[k] -= self.outer_strides[d][k] * self.outer_shape[d] as isize;
                }
                idx[d] = 0;
            }
        }
        self.flush_tiles(&group, f);
    }

    /// Visits a group of full rows column-tile by column-tile.
    fn flush_tiles(&self, group: &[([isize; N], usize)], f: &mut dyn FnMut([isize; N], usize, usize)) {
        let mut jc = 0;
        while jc < self.inner && !group.is_empty() {
            let c = TILE_COLS.min(self.inner - jc);
            for &(b, rel) in group {
                let mut offs = b;
                for k in 0..N {
                    offs[k] += jc as isize * self.inner_strides[k];
                }
                f(offs, rel + jc, c);
            }
            jc += c;
        }
    }

    /// Runs `kern(offsets, out_row)` over every inner row of `out` (contiguous, of the plan's
    /// shape), splitting across threads when `out` is large.
    fn run<T: Send, F>(&self, out: &mut [T], kern: F)
    where
        F: Fn([isize; N], &mut [T]) + Sync + Send,
    {
        self.run_dyn(out, &kern)
    }

    /// [`Plan::run`] with the kernel type-erased (one instantiation per element type).
    fn run_dyn<T: Send>(&self, out: &mut [T], kern: &(dyn Fn([isize; N], &mut [T]) + Sync)) {
        threads::par_chunks_mut_dyn(out, MIN_CHUNK, &|start, chunk: &mut [T]| {
            let len = chunk.len();
            self.run_range(start, start + len, &mut |offs, rel, n| kern(offs, &mut chunk[rel..rel + n]));
        });
    }
}

/// Runs `f` on `out`'s elements as one contiguous slice; a non-standard-layout `out` goes
/// through a temporary.
fn with_out_slice<T: Element>(out: &mut ArrayD<T>, f: impl FnOnce(&mut [T])) -> Result<()> {
    if let Some(s) = out.as_slice_mut() {
        f(s);
        return Ok(());
    }
    let shape = out.shape().to_vec();
    let mut tmp = try_alloc::<T>(out.len(), &shape)?;
    f(&mut tmp);
    for (o, v) in out.iter_mut().zip(tmp) {
        *o = v;
    }
    Ok(())
}

fn broadcast_view<'a, T: Element>(op: &'static str, v: &'a ArrayViewD<'_, T>, shape: &[usize]) -> Result<ArrayViewD<'a, T>> {
    v.broadcast(IxDyn(shape)).ok_or_else(|| {
        shape_err(op, format!("cannot broadcast {} to {}", fmt_shape(v.shape()), fmt_shape(shape)))
    })
}

/// # Safety
/// `p` must be valid for reading `n` elements.
#[inline(always)]
unsafe fn slice_at<'a, T>(p: *const T, n: usize) -> &'a [T] {
    std::slice::from_raw_parts(p, n)
}

// =========================================================================================
// Simple maps, compiled twice (baseline and AVX2) and chosen at run time.
// =========================================================================================

#[inline(always)]
fn map1_body<S: Copy, D, F: Fn(S) -> D>(x: &[S], out: &mut [D], f: &F) {
    for (o, &v) in out.iter_mut().zip(x.iter()) {
        *o = f(v);
    }
}

#[inline(always)]
fn map2_body<S: Copy, D, F: Fn(S, S) -> D>(a: &[S], b: &[S], out: &mut [D], f: &F) {
    let n = out.len().min(a.len()).min(b.len());
    let (a, b, out) = (&a[..n], &b[..n], &mut out[..n]);
    for i in 0..n {
        out[i] = f(a[i], b[i]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn map1_avx2<S: Copy, D, F: Fn(S) -> D>(x: &[S], out: &mut [D], f: &F) {
    map1_body(x, out, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn map2_avx2<S: Copy, D, F: Fn(S, S) -> D>(a: &[S], b: &[S], out: &mut [D], f: &F) {
    map2_body(a, b, out, f)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn use_avx2() -> bool {
    matches!(simd::level(), SimdLevel::Avx2Fma | SimdLevel::Avx512)
}

/// `out[i] = f(x[i])` over the common prefix.
#[inline]
fn map1<S: Copy, D, F: Fn(S) -> D>(x: &[S], out: &mut [D], f: F) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked by `simd::level`).
        unsafe { map1_avx2(x, out, &f) };
        return;
    }
    map1_body(x, out, &f)
}

/// `out[i] = f(a[i], b[i])` over the common prefix.
#[inline]
fn map2<S: Copy, D, F: Fn(S, S) -> D>(a: &[S], b: &[S], out: &mut [D], f: F) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked by `simd::level`).
        unsafe { map2_avx2(a, b, out, &f) };
        return;
    }
    map2_body(a, b, out, &f)
}

// =========================================================================================
// Unary.
// =========================================================================================

/// Extra float functions the elementwise kernels need beyond [`Float`].
trait EwFloat: Float + VMath {
    fn log2(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
}

macro_rules! impl_ew_float {
    ($t:ty) => {
        impl EwFloat for $t {
            #[inline(always)]
            fn log2(self) -> Self {
                <$t>::log2(self)
            }
            #[inline(always)]
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            #[inline(always)]
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            #[inline(always)]
            fn floor(self) -> Self {
                <$t>::floor(self)
            }
            #[inline(always)]
            fn ceil(self) -> Self {
                <$t>::ceil(self)
            }
        }
    };
}
impl_ew_float!(f32);
impl_ew_float!(f64);

/// Applies a slice kernel to a contiguous or strided view, writing a contiguous output.
fn unary_t<T, K>(x: &ArrayViewD<'_, T>, out: &mut ArrayD<T>, kern: K) -> Result<()>
where
    T: Element,
    K: Fn(&[T], &mut [T]) + Sync + Send,
{
    with_out_slice(out, |o| {
        if let Some(xs) = x.as_slice() {
            threads::par_chunks_mut(o, MIN_CHUNK, |start, chunk| {
                let n = chunk.len();
                kern(&xs[start..start + n], chunk)
            });
        } else {
            let plan = Plan::new(x.shape(), [x.strides()]);
            let px = Ptr(x.as_ptr());
            let s = plan.inner_strides[0];
            plan.run(o, |offs, dst| {
                // SAFETY: the plan's offsets and strides stay inside `x` (they come from its
                // own shape and strides), for exactly dst.len() elements along the row.
                unsafe { unary_row(px.get().offset(offs[0]), s, dst, &kern) }
            });
        }
    })
}

/// One strided row through a slice kernel.
///
/// # Safety
/// `p.offset(i * s)` must be readable for `i < dst.len()`.
unsafe fn unary_row<T: Element, K: Fn(&[T], &mut [T])>(p: *const T, s: isize, dst: &mut [T], kern: &K) {
    let n = dst.len();
    if n == 0 {
        return;
    }
    if s == 1 {
        kern(slice_at(p, n), dst);
    } else if s == 0 {
        let v = [*p];
        let mut r = [*p];
        kern(&v, &mut r);
        dst.fill(r[0]);
    } else {
        const B: usize = 256;
        let mut buf = [T::default(); B];
        let mut i = 0;
        while i < n {
            let m = (n - i).min(B);
            for (t, slot) in buf[..m].iter_mut().enumerate() {
                *slot = *p.offset((i + t) as isize * s);
            }
            kern(&buf[..m], &mut dst[i..i + m]);
            i += m;
        }
    }
}

/// Block size for composite ops (several passes over L1-resident blocks).
const BLK: usize = 512;

#[inline]
fn softplus_block<T: EwFloat>(x: &[T], out: &mut [T]) {
    T::vapply(VFunc::Exp, x, out);
    T::vapply_inplace(VFunc::Log1p, out);
    let th = T::from_f64(20.0);
    for (o, &v) in out.iter_mut().zip(x) {
        if v > th {
            *o = v;
        }
    }
}

fn softplus_slice<T: EwFloat>(x: &[T], out: &mut [T]) {
    for (xc, oc) in x.chunks(BLK).zip(out.chunks_mut(BLK)) {
        softplus_block(xc, oc);
    }
}

fn mish_slice<T: EwFloat>(x: &[T], out: &mut [T]) {
    let ninf = T::neg_infinity();
    for (xc, oc) in x.chunks(BLK).zip(out.chunks_mut(BLK)) {
        softplus_block(xc, oc);
        T::vapply_inplace(VFunc::Tanh, oc);
        for (o, &v) in oc.iter_mut().zip(xc) {
            *o = if v == ninf { T::zero() } else { v * *o };
        }
    }
}

/// d/dx [x·tanh(sp(x))] = tanh(sp) + x·(1 − tanh²(sp))·σ(x).
fn mish_grad_slice<T: EwFloat>(x: &[T], out: &mut [T]) {
    let (one, zero) = (T::one(), T::zero());
    let (inf, ninf) = (T::infinity(), T::neg_infinity());
    let mut sig = [zero; BLK];
    for (xc, oc) in x.chunks(BLK).zip(out.chunks_mut(BLK)) {
        let s = &mut sig[..xc.len()];
        T::vapply(VFunc::Sigmoid, xc, s);
        softplus_block(xc, oc);
        T::vapply_inplace(VFunc::Tanh, oc);
        for ((o, &v), &sg) in oc.iter_mut().zip(xc).zip(s.iter()) {
            let t = *o;
            *o = if v == inf {
                one
            } else if v == ninf {
                zero
            } else {
                t + v * (one - t * t) * sg
            };
        }
    }
}

fn unary_float_slice<T: EwFloat>(op: UnaryOp, x: &[T], out: &mut [T]) {
    let (zero, one) = (T::zero(), T::one());
    match op {
        UnaryOp::Neg => map1(x, out, |v: T| -v),
        UnaryOp::Abs => map1(x, out, |v: T| v.abs()),
        UnaryOp::Sign => map1(x, out, move |v: T| {
            if v > zero {
                one
            } else if v < zero {
                -one
            } else {
                v
            }
        }),
        UnaryOp::Exp => T::vapply(VFunc::Exp, x, out),
        UnaryOp::Log => T::vapply(VFunc::Ln, x, out),
        UnaryOp::Log1p => T::vapply(VFunc::Log1p, x, out),
        UnaryOp::Expm1 => T::vapply(VFunc::Expm1, x, out),
        UnaryOp::Tanh => T::vapply(VFunc::Tanh, x, out),
        UnaryOp::Sigmoid => T::vapply(VFunc::Sigmoid, x, out),
        UnaryOp::Log2 => map1(x, out, |v: T| v.log2()),
        UnaryOp::Sqrt => map1(x, out, |v: T| v.sqrt()),
        UnaryOp::Square => map1(x, out, |v: T| v * v),
        UnaryOp::Cube => map1(x, out, |v: T| v * v * v),
        UnaryOp::Inverse => map1(x, out, move |v: T| one / v),
        UnaryOp::InverseSqrt => map1(x, out, move |v: T| one / v.sqrt()),
        UnaryOp::Sin => map1(x, out, |v: T| v.sin()),
        UnaryOp::Cos => map1(x, out, |v: T| v.cos()),
        UnaryOp::Floor => map1(x, out, |v: T| v.floor()),
        UnaryOp::Ceil => map1(x, out, |v: T| v.ceil()),
        UnaryOp::Relu => map1(x, out, move |v: T| if v < zero { zero } else { v }),
        UnaryOp::Softplus => softplus_slice(x, out),
        UnaryOp::Mish => mish_slice(x, out),
        UnaryOp::MishGrad => mish_grad_slice(x, out),
        UnaryOp::LeakyRelu(alpha) => {
            let a = T::from_f64(alpha);
            map1(x, out, move |v: T| if v > zero { v } else { a * v })
        }
        UnaryOp::Clip(lo, hi) => {
            let (lo, hi) = (T::from_f64(lo), T::from_f64(hi));
            // NumPy's clip is minimum(maximum(x, lo), hi): hi wins when lo > hi; NaN stays NaN.
            map1(x, out, move |v: T| {
                let m = if v < lo { lo } else { v };
                if m > hi {
                    hi
                } else {
                    m
                }
            })
        }
        UnaryOp::Step => map1(x, out, move |v: T| if v > zero { one } else { zero }),
        UnaryOp::InRange(lo, hi) => {
            let (lo, hi) = (T::from_f64(lo), T::from_f64(hi));
            map1(x, out, move |v: T| if v >= lo && v <= hi { one } else { zero })
        }
        UnaryOp::LeakyStep(alpha) => {
            let a = T::from_f64(alpha);
            map1(x, out, move |v: T| if v > zero { one } else { a })
        }
    }
}

/// Wrapping integer arithmetic for i32/i64 kernels.
trait IntOps: Element + Ord {
    fn wadd(self, b: Self) -> Self;
    fn wsub(self, b: Self) -> Self;
    fn wmul(self, b: Self) -> Self;
    fn wneg(self) -> Self;
    fn wabs(self) -> Self;
    fn sign(self) -> Self;
    /// Wrapping power for a non-negative exponent.
    fn wpow(self, e: Self) -> Self;
    /// Floor division; 0 when dividing by zero (NumPy).
    fn floordiv(self, b: Self) -> Self;
}

macro_rules! impl_int_ops {
    ($t:ty) => {
        impl IntOps for $t {
            #[inline(always)]
            fn wadd(self, b: Self) -> Self {
                self.wrapping_add(b)
            }
            #[inline(always)]
            fn wsub(self, b: Self) -> Self {
                self.wrapping_sub(b)
            }
            #[inline(always)]
            fn wmul(self, b: Self) -> Self {
                self.wrapping_mul(b)
            }
            #[inline(always)]
            fn wneg(self) -> Self {
                self.wrapping_neg()
            }
            #[inline(always)]
            fn wabs(self) -> Self {
                self.wrapping_abs()
            }
            #[inline(always)]
            fn sign(self) -> Self {
                self.signum()
            }
            #[inline]
            fn wpow(self, e: Self) -> Self {
                let mut e = e.max(0) as u64;
                let mut base = self;
                let mut acc: $t = 1;
                while e > 0 {
                    if e & 1 == 1 {
                        acc = acc.wrapping_mul(base);
                    }
                    base = base.wrapping_mul(base);
                    e >>= 1;
                }
                acc
            }
            #[inline(always)]
            fn floordiv(self, b: Self) -> Self {
                if b == 0 {
                    return 0;
                }
                let q = self.wrapping_div(b);
                let r = self.wrapping_rem(b);
                if r != 0 && ((r < 0) != (b < 0)) {
                    q.wrapping_sub(1)
                } else {
                    q
                }
            }
        }
    };
}
impl_int_ops!(i32);
impl_int_ops!(i64);

fn unary_int_slice<T: IntOps>(op: UnaryOp, x: &[T], out: &mut [T]) {
    let zero = T::zero();
    match op {
        UnaryOp::Neg => map1(x, out, |v: T| v.wneg()),
        UnaryOp::Abs => map1(x, out, |v: T| v.wabs()),
        UnaryOp::Sign => map1(x, out, |v: T| v.sign()),
        UnaryOp::Square => map1(x, out, |v: T| v.wmul(v)),
        UnaryOp::Cube => map1(x, out, |v: T| v.wmul(v).wmul(v)),
        UnaryOp::Relu => map1(x, out, move |v: T| if v < zero { zero } else { v }),
        // Rejected by `UnaryOp::supports` before we get here; copy to stay total.
        _ => map1(x, out, |v: T| v),
    }
}

// =========================================================================================
// Binary.
// =========================================================================================

/// The broadcasting binary loop with a scalar function `f`.
fn binary_t<T, F>(name: &'static str, a: &ArrayViewD<'_, T>, b: &ArrayViewD<'_, T>, out: &mut ArrayD<T>, f: F) -> Result<()>
where
    T: Element,
    F: Fn(T, T) -> T + Copy + Sync + Send,
{
    let row = move |pa: *const T, sa: isize, pb: *const T, sb: isize, dst: &mut [T]| {
        // SAFETY: `binary_loop` only passes pointers/strides valid for dst.len() elements.
        unsafe { binary_row(pa, sa, pb, sb, dst, f) }
    };
    binary_loop(name, a, b, out, &row)
}

/// A binary row kernel: `(a, a_stride, b, b_stride, out_row)`.
type BinaryRow<'f, T> = dyn Fn(*const T, isize, *const T, isize, &mut [T]) + Sync + 'f;

/// The op-independent part of [`binary_t`] (broadcasting, planning, threading), instantiated
/// once per element type; `row` is called with valid pointers and strides for each row.
fn binary_loop<T: Element>(
    name: &'static str,
    a: &ArrayViewD<'_, T>,
    b: &ArrayViewD<'_, T>,
    out: &mut ArrayD<T>,
    row: &BinaryRow<'_, T>,
) -> Result<()> {
    let shape = out.shape().to_vec();
    let a = broadcast_view(name, a, &shape)?;
    let b = broadcast_view(name, b, &shape)?;
    with_out_slice(out, |o| {
        let plan = Plan::new(&shape, [a.strides(), b.strides()]);
        let (pa, pb) = (Ptr(a.as_ptr()), Ptr(b.as_ptr()));
        let [sa, sb] = plan.inner_strides;
        plan.run_dyn(o, &|offs: [isize; 2], dst: &mut [T]| {
            // Offsets/strides come from the broadcast views of the output's shape, so every
            // element `row` reads lies inside `a` / `b`. `offset` stays in bounds likewise.
            let (xa, xb) = unsafe { (pa.get().offset(offs[0]), pb.get().offset(offs[1])) };
            row(xa, sa, xb, sb, dst)
        });
    })
}

/// One inner row of a binary op, specialized on the operand strides.
///
/// # Safety
/// `pa.offset(i * sa)` and `pb.offset(i * sb)` must be readable for `i < dst.len()`.
#[inline]
unsafe fn binary_row<T: Element, F: Fn(T, T) -> T>(pa: *const T, sa: isize, pb: *const T, sb: isize, dst: &mut [T], f: F) {
    let n = dst.len();
    if n == 0 {
        return;
    }
    match (sa, sb) {
        (1, 1) => map2(slice_at(pa, n), slice_at(pb, n), dst, f),
        (0, 1) => {
            let a = *pa;
            map1(slice_at(pb, n), dst, move |y| f(a, y))
        }
        (1, 0) => {
            let b = *pb;
            map1(slice_at(pa, n), dst, move |x| f(x, b))
        }
        (0, 0) => dst.fill(f(*pa, *pb)),
        _ => {
            for (i, o) in dst.iter_mut().enumerate() {
                let i = i as isize;
                *o = f(*pa.offset(i * sa), *pb.offset(i * sb));
            }
        }
    }
}

#[inline(always)]
fn b2t<T: Element>(c: bool) -> T {
    if c {
        T::one()
    } else {
        T::zero()
    }
}

fn binary_float<T: EwFloat>(op: BinaryOp, a: &ArrayViewD<'_, T>, b: &ArrayViewD<'_, T>, o: &mut ArrayD<T>) -> Result<()> {
    let n = op.name();
    match op {
        BinaryOp::Add => binary_t(n, a, b, o, |x: T, y: T| x + y),
        BinaryOp::Sub => binary_t(n, a, b, o, |x: T, y: T| x - y),
        BinaryOp::Mul => binary_t(n, a, b, o, |x: T, y: T| x * y),
        BinaryOp::Div => binary_t(n, a, b, o, |x: T, y: T| x / y),
        BinaryOp::Pow => binary_t(n, a, b, o, |x: T, y: T| x.powf(y)),
        BinaryOp::FloorDiv => binary_t(n, a, b, o, |x: T, y: T| T::from_f64(floor_divide_f64(x.to_f64(), y.to_f64()))),
        BinaryOp::Maximum => binary_t(n, a, b, o, |x: T, y: T| if x > y || x.is_nan() { x } else { y }),
        BinaryOp::Minimum => binary_t(n, a, b, o, |x: T, y: T| if x < y || x.is_nan() { x } else { y }),
        BinaryOp::Lt => binary_t(n, a, b, o, |x: T, y: T| b2t(x < y)),
        BinaryOp::Le => binary_t(n, a, b, o, |x: T, y: T| b2t(x <= y)),
        BinaryOp::Gt => binary_t(n, a, b, o, |x: T, y: T| b2t(x > y)),
        BinaryOp::Ge => binary_t(n, a, b, o, |x: T, y: T| b2t(x >= y)),
        BinaryOp::Eq => binary_t(n, a, b, o, |x: T, y: T| b2t(x == y)),
        BinaryOp::Ne => binary_t(n, a, b, o, |x: T, y: T| b2t(x != y)),
    }
}

fn binary_int<T: IntOps>(op: BinaryOp, a: &ArrayViewD<'_, T>, b: &ArrayViewD<'_, T>, o: &mut ArrayD<T>) -> Result<()> {
    let n = op.name();
    match op {
        BinaryOp::Add => binary_t(n, a, b, o, |x: T, y: T| x.wadd(y)),
        BinaryOp::Sub => binary_t(n, a, b, o, |x: T, y: T| x.wsub(y)),
        BinaryOp::Mul => binary_t(n, a, b, o, |x: T, y: T| x.wmul(y)),
        BinaryOp::Div => Err(CoreError::DType {
            op: n,
            dtype: T::DTYPE,
            detail: "integer true division: cast the operands to a float dtype first".into(),
        }),
        BinaryOp::Pow => {
            let zero = T::zero();
            if b.iter().any(|&y| y < zero) {
                return Err(CoreError::DType {
                    op: n,
                    dtype: T::DTYPE,
                    detail: "integers to negative integer powers are not allowed".into(),
                });
            }
            binary_t(n, a, b, o, |x: T, y: T| x.wpow(y))
        }
        BinaryOp::FloorDiv => binary_t(n, a, b, o, |x: T, y: T| x.floordiv(y)),
        BinaryOp::Maximum => binary_t(n, a, b, o, |x: T, y: T| if x > y { x } else { y }),
        BinaryOp::Minimum => binary_t(n, a, b, o, |x: T, y: T| if x < y { x } else { y }),
        BinaryOp::Lt => binary_t(n, a, b, o, |x: T, y: T| b2t(x < y)),
        BinaryOp::Le => binary_t(n, a, b, o, |x: T, y: T| b2t(x <= y)),
        BinaryOp::Gt => binary_t(n, a, b, o, |x: T, y: T| b2t(x > y)),
        BinaryOp::Ge => binary_t(n, a, b, o, |x: T, y: T| b2t(x >= y)),
        BinaryOp::Eq => binary_t(n, a, b, o, |x: T, y: T| b2t(x == y)),
        BinaryOp::Ne => binary_t(n, a, b, o, |x: T, y: T| b2t(x != y)),
    }
}

fn binary_bool(op: BinaryOp, a: &ArrayViewD<'_, bool>, b: &ArrayViewD<'_, bool>, o: &mut ArrayD<bool>) -> Result<()> {
    let n = op.name();
    match op {
        BinaryOp::Add | BinaryOp::Maximum => binary_t(n, a, b, o, |x: bool, y: bool| x | y),
        BinaryOp::Mul | BinaryOp::Minimum => binary_t(n, a, b, o, |x: bool, y: bool| x & y),
        BinaryOp::Lt => binary_t(n, a, b, o, |x: bool, y: bool| !x & y),
        BinaryOp::Le => binary_t(n, a, b, o, |x: bool, y: bool| !x | y),
        BinaryOp::Gt => binary_t(n, a, b, o, |x: bool, y: bool| x & !y),
        BinaryOp::Ge => binary_t(n, a, b, o, |x: bool, y: bool| x | !y),
        BinaryOp::Eq => binary_t(n, a, b, o, |x: bool, y: bool| x == y),
        BinaryOp::Ne => binary_t(n, a, b, o, |x: bool, y: bool| x != y),
        BinaryOp::Sub | BinaryOp::Div | BinaryOp::Pow | BinaryOp::FloorDiv => Err(CoreError::DType {
            op: n,
            dtype: DType::Bool,
            detail: format!("{n} is not defined for bool"),
        }),
    }
}

// =========================================================================================
// where, cast, copy.
// =========================================================================================

fn where_t<C: Element, T: Element>(
    cond: &ArrayViewD<'_, C>,
    a: &ArrayViewD<'_, T>,
    b: &ArrayViewD<'_, T>,
    out: &mut ArrayD<T>,
) -> Result<()> {
    let name = "where";
    let shape = out.shape().to_vec();
    let c = broadcast_view(name, cond, &shape)?;
    let a = broadcast_view(name, a, &shape)?;
    let b = broadcast_view(name, b, &shape)?;
    with_out_slice(out, |o| {
        let plan = Plan::new(&shape, [c.strides(), a.strides(), b.strides()]);
        let (pc, pa, pb) = (Ptr(c.as_ptr()), Ptr(a.as_ptr()), Ptr(b.as_ptr()));
        let [sc, sa, sb] = plan.inner_strides;
        let zero = C::zero();
        plan.run(o, |offs, dst| {
            let n = dst.len();
            // SAFETY: offsets/strides come from views of the output's shape.
            unsafe {
                let (pc, pa, pb) = (pc.get().offset(offs[0]), pa.get().offset(offs[1]), pb.get().offset(offs[2]));
                if sc == 1 && sa == 1 && sb == 1 {
                    let (cs, xs, ys) = (slice_at(pc, n), slice_at(pa, n), slice_at(pb, n));
                    for i in 0..n {
                        dst[i] = if cs[i] != zero { xs[i] } else { ys[i] };
                    }
                } else {
                    for (i, d) in dst.iter_mut().enumerate() {
                        let i = i as isize;
                        *d = if *pc.offset(i * sc) != zero { *pa.offset(i * sa) } else { *pb.offset(i * sb) };
                    }
                }
            }
        });
    })
}

/// Element conversion with NumPy `astype` semantics (Rust `as`: truncation toward zero,
/// saturation, NaN → 0, integer wrap-around; to bool is `!= 0`).
trait CastFrom<S>: Sized {
    fn cast_from(s: S) -> Self;
}

macro_rules! impl_cast_num {
    ($($s:ty),*; $d:ty) => {$(
        impl CastFrom<$s> for $d {
            #[inline(always)]
            fn cast_from(s: $s) -> Self { s as $d }
        }
    )*};
}
impl_cast_num!(f32, f64, i32, i64; f32);
impl_cast_num!(f32, f64, i32, i64; f64);
impl_cast_num!(f32, f64, i32, i64; i32);
impl_cast_num!(f32, f64, i32, i64; i64);

macro_rules! impl_cast_bool {
    ($($t:ty),*) => {$(
        impl CastFrom<bool> for $t {
            #[inline(always)]
            fn cast_from(s: bool) -> Self { s as u8 as $t }
        }
        impl CastFrom<$t> for bool {
            #[inline(always)]
            #[allow(clippy::float_cmp)]
            fn cast_from(s: $t) -> Self { s != (0 as $t) }
        }
    )*};
}
impl_cast_bool!(f32, f64, i32, i64);
impl CastFrom<bool> for bool {
    #[inline(always)]
    fn cast_from(s: bool) -> Self {
        s
    }
}

fn cast_t<S: Element, D: Element + CastFrom<S>>(x: &ArrayViewD<'_, S>, out: &mut ArrayD<D>) -> Result<()> {
    with_out_slice(out, |o| {
        let plan = Plan::new(x.shape(), [x.strides()]);
        let px = Ptr(x.as_ptr());
        let s = plan.inner_strides[0];
        plan.run(o, |offs, dst| {
            let n = dst.len();
            // SAFETY: offsets/strides come from `x`'s own shape and strides.
            unsafe {
                let p = px.get().offset(offs[0]);
                match s {
                    1 => map1(slice_at(p, n), dst, D::cast_from),
                    0 => dst.fill(D::cast_from(*p)),
                    _ => {
                        for (i, d) in dst.iter_mut().enumerate() {
                            *d = D::cast_from(*p.offset(i as isize * s));
                        }
                    }
                }
            }
        });
    })
}

fn copy_t<T: Element>(x: &ArrayViewD<'_, T>, out: &mut ArrayD<T>) -> Result<()> {
    with_out_slice(out, |o| {
        let plan = Plan::new(x.shape(), [x.strides()]);
        let px = Ptr(x.as_ptr());
        let s = plan.inner_strides[0];
        plan.run(o, |offs, dst| {
            let n = dst.len();
            // SAFETY: offsets/strides come from `x`'s own shape and strides.
            unsafe {
                let p = px.get().offset(offs[0]);
                match s {
                    1 => dst.copy_from_slice(slice_at(p, n)),
                    0 => dst.fill(*p),
                    _ => {
                        for (i, d) in dst.iter_mut().enumerate() {
                            *d = *p.offset(i as isize * s);
                        }
                    }
                }
            }
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_merges_contiguous_and_broadcast_axes() {
        // (2,3,4) contiguous against a (1,1,4)-broadcast row: all axes merge for the first
        // operand only where the second allows.
        let p = Plan::<2>::new(&[2, 3, 4], [&[12, 4, 1], &[0, 0, 1]]);
        assert_eq!(p.inner, 4);
        assert_eq!(p.outer_shape, vec![6]);
        let p = Plan::<1>::new(&[2, 3, 4], [&[12, 4, 1]]);
        assert_eq!((p.inner, p.outer_shape.len()), (24, 0));
        let p = Plan::<1>::new(&[], [&[]]);
        assert_eq!((p.inner, p.inner_strides), (1, [0]));
        let p = Plan::<2>::new(&[5, 1, 7], [&[7, 99, 1], &[0, 3, 0]]);
        assert_eq!((p.inner, p.outer_shape.len(), p.inner_strides), (35, 0, [1, 0]));
    }

    #[test]
    fn run_range_visits_every_row_piece() {
        let p = Plan::<1>::new(&[3, 5], [&[1, 3]]); // a transposed (5,3) array
        let mut seen = vec![];
        p.run_range(2, 13, &mut |offs, rel, n| seen.push((offs[0], rel, n)));
        // rows of 5 with stride 3; row r starts at offset r.
        assert_eq!(seen, vec![(6, 0, 3), (1, 3, 5), (2, 8, 3)]);
    }

    #[test]
    fn tiled_traversal_covers_each_element_once() {
        // A transposed (300, 5, 70) operand against a contiguous one: rows of 300.
        let shape = [70usize, 5, 300];
        let t = [1isize, 70 * 300, 70];
        let c = [1500isize, 300, 1];
        let p = Plan::<2>::new(&shape, [&t, &c]);
        assert!(p.tiled);
        let total: usize = shape.iter().product();
        for (e0, e1) in [(0, total), (17, total - 33), (299, 301), (1000, 1000 + 64 * 300 + 5)] {
            let mut hits = vec![0u8; e1 - e0];
            p.run_range(e0, e1, &mut |offs, rel, n| {
                for i in 0..n {
                    hits[rel + i] += 1;
                    // The contiguous operand's offset is the flat output index.
                    assert_eq!(offs[1] as usize + i, e0 + rel + i);
                }
            });
            assert!(hits.iter().all(|&h| h == 1));
        }
    }
}
