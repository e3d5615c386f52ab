//! The operation set: one enum ([`Op`]) that states, for every op, its name, how it is parsed
//! from the bridge's `(name, attrs)` form, its dtype/shape rule ([`Op::infer`]) and its CPU
//! forward kernel ([`Op::forward`]). Gradient rules live in [`crate::grad`], written in graph
//! ops. This module must not know about graphs or machines.

use crate::attrs::{Attr, Attrs};
use crate::error::{Error, Result};
use gorgon_core::error::fmt_shape;
use gorgon_core::kernels::conv::Conv2dParams;
use gorgon_core::kernels::elementwise::{self as ew, BinaryOp, UnaryOp};
use gorgon_core::kernels::reduce::{self as red, ReduceOp};
use gorgon_core::kernels::{conv, index, matmul, pool, softmax};
use gorgon_core::shape::{normalize_axes, normalize_axis};
use gorgon_core::{DType, Element, Tensor, TensorView};
use std::sync::Arc;

/// A user-defined op (the bridge implements it with Python callbacks).
pub trait CustomOp: Send + Sync {
    /// Display name.
    fn name(&self) -> &str;
    /// Output shape for the given input shapes.
    fn infer_shape(&self, shapes: &[Vec<usize>]) -> Result<Vec<usize>>;
    /// Forward: returns the output (shape/dtype are checked against the inferred ones).
    fn forward(&self, inputs: &[TensorView]) -> Result<Tensor>;
    /// Whether [`CustomOp::backward`] exists.
    fn has_backward(&self) -> bool;
    /// Gradient w.r.t. input `index` given the output gradient.
    fn backward(&self, grad: &TensorView, inputs: &[TensorView], index: usize) -> Result<Tensor>;
}

/// A shared handle to a custom op; compared and hashed by identity.
#[derive(Clone)]
pub struct CustomRef(pub Arc<dyn CustomOp>);

impl std::fmt::Debug for CustomRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{:p}", self.0.name(), Arc::as_ptr(&self.0) as *const u8)
    }
}
impl PartialEq for CustomRef {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.0, &o.0)
    }
}

/// Pooling geometry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoolGeom {
    /// Window (kh, kw).
    pub kernel: (usize, usize),
    /// Stride and padding (dilation is 1).
    pub p: Conv2dParams,
}

/// Every operation a graph node can perform.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Elementwise unary math.
    Unary(UnaryOp),
    /// Elementwise binary math with broadcasting.
    Binary(BinaryOp),
    /// `where(cond, a, b)` with broadcasting.
    Where,
    /// Dtype conversion.
    Cast(DType),
    /// A reduction over sorted axes.
    Reduce {
        /// Which reduction.
        op: ReduceOp,
        /// Sorted, unique axes.
        axes: Vec<usize>,
        /// Keep reduced axes as size 1.
        keepdims: bool,
    },
    /// argmax / argmin (int64, not differentiable).
    ArgReduce {
        /// argmax when true.
        is_max: bool,
        /// Axis, or the flattened array.
        axis: Option<usize>,
        /// Keep the axis as size 1.
        keepdims: bool,
    },
    /// Batched matrix product of ≥2-D operands, optionally transposing the last two axes.
    MatMul {
        /// Transpose the first operand's last two axes.
        ta: bool,
        /// Transpose the second operand's last two axes.
        tb: bool,
    },
    /// Same elements, new shape.
    Reshape(Vec<usize>),
    /// Axis permutation.
    Transpose(Vec<usize>),
    /// Basic slicing with normalized `(start, stop, step)` per axis.
    Slice(Vec<(isize, isize, isize)>),
    /// Adjoint of [`Op::Slice`]: the gradient placed into zeros of `input_shape`.
    SliceGrad {
        /// The slice.
        spec: Vec<(isize, isize, isize)>,
        /// The sliced input's shape.
        input_shape: Vec<usize>,
    },
    /// Broadcast to a shape (materialized).
    BroadcastTo(Vec<usize>),
    /// Concatenation along an axis.
    Concat(usize),
    /// Gather along an axis (inputs: x, indices).
    Take(usize),
    /// Adjoint of take (inputs: grad, indices) into a dimension of `size`.
    ScatterAdd {
        /// Axis.
        axis: usize,
        /// Size of that axis in the original input.
        size: usize,
    },
    /// One-hot encoding of integer indices.
    OneHot {
        /// Number of classes.
        n: usize,
        /// Output dtype.
        dtype: DType,
    },
    /// softmax or log_softmax along an axis.
    Softmax {
        /// Axis.
        axis: usize,
        /// log_softmax when true.
        log: bool,
    },
    /// Backward of softmax/log_softmax (inputs: y, grad).
    SoftmaxGrad {
        /// Axis.
        axis: usize,
        /// log_softmax when true.
        log: bool,
    },
    /// 2-D convolution NCHW × OIHW.
    Conv2d(Conv2dParams),
    /// Gradient of conv2d w.r.t. its input (inputs: grad, w).
    Conv2dGradInput {
        /// Geometry.
        p: Conv2dParams,
        /// (N, C, H, W) of the input.
        input_shape: Vec<usize>,
    },
    /// Gradient of conv2d w.r.t. its weight (inputs: x, grad).
    Conv2dGradWeight {
        /// Geometry.
        p: Conv2dParams,
        /// (O, C, kH, kW).
        weight_shape: Vec<usize>,
    },
    /// Max pooling.
    MaxPool2d(PoolGeom),
    /// Gradient of max pooling (inputs: x, grad).
    MaxPool2dGrad(PoolGeom),
    /// Average pooling.
    AvgPool2d(PoolGeom),
    /// Gradient of average pooling (input: grad) into `input_shape`.
    AvgPool2dGrad {
        /// Geometry.
        g: PoolGeom,
        /// Input shape.
        input_shape: Vec<usize>,
    },
    /// A fresh inverted-dropout mask (0 or 1/(1−p)) with the input's shape, each run.
    DropoutMask {
        /// Drop probability.
        p: f64,
        /// Random stream id (fixed at build time from the global seed).
        stream: u64,
    },
    /// A user-defined op.
    Custom(CustomRef),
    /// A fused elementwise tree (made by the compiler, never built directly).
    Fused(Arc<crate::fused::FusedExpr>),
    /// A fused elementwise tree summed or averaged over rows of its trailing `row_len`
    /// elements in the same pass (made by the compiler, never built directly).
    FusedReduce {
        /// The elementwise tree.
        expr: Arc<crate::fused::FusedExpr>,
        /// Sum or mean.
        fold: crate::fused::reduce::RowFold,
        /// Elements of the tree per output element.
        row_len: usize,
    },
    /// Gradient of a custom op w.r.t. input `index` (inputs: grad, original inputs...).
    CustomGrad {
        /// The op.
        op: CustomRef,
        /// Which input.
        index: usize,
    },
}

fn unary_by_name(name: &str, a: &Attrs) -> Result<Option<UnaryOp>> {
    use UnaryOp::*;
    Ok(Some(match name {
        "neg" => Neg,
        "abs" => Abs,
        "sign" => Sign,
        "exp" => Exp,
        "log" => Log,
        "log1p" => Log1p,
        "expm1" => Expm1,
        "log2" => Log2,
        "sqrt" => Sqrt,
        "square" => Square,
        "cube" => Cube,
        "inverse" => Inverse,
        "inverse_sqrt" => InverseSqrt,
        "sin" => Sin,
        "cos" => Cos,
        "tanh" => Tanh,
        "sigmoid" => Sigmoid,
        "softplus" => Softplus,
        "relu" => Relu,
        "mish" => Mish,
        "floor" => Floor,
        "ceil" => Ceil,
        "leaky_relu" => LeakyRelu(a.float("alpha", 0.01)?),
        "clip" => Clip(a.float("lo", f64::NEG_INFINITY)?, a.float("hi", f64::INFINITY)?),
        "step" => Step,
        "in_range" => InRange(a.float("lo", f64::NEG_INFINITY)?, a.float("hi", f64::INFINITY)?),
        "leaky_step" => LeakyStep(a.float("alpha", 0.01)?),
        "mish_grad" => MishGrad,
        _ => return Ok(None),
    }))
}

fn binary_by_name(name: &str) -> Option<BinaryOp> {
    use BinaryOp::*;
    Some(match name {
        "add" => Add,
        "sub" => Sub,
        "mul" => Mul,
        "div" => Div,
        "pow" => Pow,
        "floordiv" => FloorDiv,
        "maximum" => Maximum,
        "minimum" => Minimum,
        "lt" => Lt,
        "le" => Le,
        "gt" => Gt,
        "ge" => Ge,
        "eq" => Eq,
        "ne" => Ne,
        _ => return None,
    })
}

fn reduce_by_name(name: &str) -> Option<ReduceOp> {
    Some(match name {
        "sum" => ReduceOp::Sum,
        "mean" => ReduceOp::Mean,
        "max" => ReduceOp::Max,
        "min" => ReduceOp::Min,
        "prod" => ReduceOp::Prod,
        "logsumexp" => ReduceOp::LogSumExp,
        _ => return None,
    })
}

/// The lower-case name of a unary op (inverse of the parse table).
pub fn unary_name(u: UnaryOp) -> &'static str {
    use UnaryOp::*;
    match u {
        Neg => "neg", Abs => "abs", Sign => "sign", Exp => "exp", Log => "log", Log1p => "log1p",
        Expm1 => "expm1", Log2 => "log2", Sqrt => "sqrt", Square => "square", Cube => "cube",
        Inverse => "inverse", InverseSqrt => "inverse_sqrt", Sin => "sin", Cos => "cos",
        Tanh => "tanh", Sigmoid => "sigmoid", Softplus => "softplus", Relu => "relu", Mish => "mish",
        Floor => "floor", Ceil => "ceil", LeakyRelu(_) => "leaky_relu", Clip(..) => "clip",
        Step => "step", InRange(..) => "in_range", LeakyStep(_) => "leaky_step", MishGrad => "mish_grad",
    }
}

fn binary_name(b: BinaryOp) -> &'static str {
    use BinaryOp::*;
    match b {
        Add => "add", Sub => "sub", Mul => "mul", Div => "div", Pow => "pow", FloorDiv => "floordiv",
        Maximum => "maximum", Minimum => "minimum", Lt => "lt", Le => "le", Gt => "gt", Ge => "ge",
        Eq => "eq", Ne => "ne",
    }
}

fn pair(a: &Attrs, key: &str, default: usize) -> Result<(usize, usize)> {
    match a.get(key) {
        None | Some(Attr::None) => Ok((default, default)),
        Some(Attr::Int(v)) if *v >= 0 => Ok((*v as usize, *v as usize)),
        Some(Attr::Ints(v)) if v.len() == 2 && v.iter().all(|x| *x >= 0) => Ok((v[0] as usize, v[1] as usize)),
        Some(other) => Err(Error::Graph(format!("attribute {key}: expected an int or an (h, w) pair of non-negative ints, got {other:?}"))),
    }
}

impl Op {
    /// Parses the bridge's `(name, attrs)` form. Axes in attrs may be negative; they are
    /// normalized against `ndim0` (the first input's rank).
    pub fn parse(name: &str, a: &Attrs, in_shapes: &[&[usize]]) -> Result<Op> {
        let nd0 = in_shapes.first().map(|s| s.len()).unwrap_or(0);
        let axis0 = |key: &str, default: isize| -> Result<usize> {
            let ax = a.int_or(key, default as i64)? as isize;
            normalize_axis(ax, nd0).map_err(Error::from)
        };
        if let Some(u) = unary_by_name(name, a)? {
            return Ok(Op::Unary(u));
        }
        if let Some(b) = binary_by_name(name) {
            return Ok(Op::Binary(b));
        }
        if let Some(r) = reduce_by_name(name) {
            let axes = a.opt_ints("axes")?;
            let axes: Option<Vec<isize>> = axes.map(|v| v.into_iter().map(|x| x as isize).collect());
            let axes = normalize_axes(axes.as_deref(), nd0)?;
            return Ok(Op::Reduce { op: r, axes, keepdims: a.bool_or("keepdims", false)? });
        }
        Ok(match name {
            "where" => Op::Where,
            "cast" => Op::Cast(a.dtype("dtype")?),
            "argmax" | "argmin" => {
                let axis = match a.get("axis") {
                    None | Some(Attr::None) => None,
                    Some(_) => Some(axis0("axis", 0)?),
                };
                Op::ArgReduce { is_max: name == "argmax", axis, keepdims: a.bool_or("keepdims", false)? }
            }
            "matmul" => Op::MatMul { ta: a.bool_or("ta", false)?, tb: a.bool_or("tb", false)? },
            "reshape" => {
                let want = a.ints("shape")?;
                Op::Reshape(resolve_reshape(in_shapes.first().copied().unwrap_or(&[]), &want)?)
            }
            "transpose" => {
                let axes = match a.opt_ints("axes")? {
                    None => (0..nd0).rev().collect(),
                    Some(v) => v.iter().map(|&x| normalize_axis(x as isize, nd0)).collect::<std::result::Result<Vec<_>, _>>()?,
                };
                Op::Transpose(axes)
            }
            "slice" => {
                let v = a.ints("spec")?;
                if v.len() != 3 * nd0 {
                    return Err(Error::Shape(format!("slice: expected {} (start, stop, step) triples, got {} numbers", nd0, v.len())));
                }
                Op::Slice(v.chunks(3).map(|c| (c[0] as isize, c[1] as isize, c[2] as isize)).collect())
            }
            "broadcast_to" => {
                let shape = a.ints("shape")?;
                if let Some(d) = shape.iter().find(|&&d| d < 0) {
                    return Err(Error::Shape(format!("broadcast_to: all elements of the shape must be non-negative, got {d} in {shape:?}")));
                }
                Op::BroadcastTo(shape.iter().map(|&x| x as usize).collect())
            }
            "concat" => Op::Concat(axis0("axis", 0)?),
            "take" => Op::Take(axis0("axis", 0)?),
            "one_hot" => {
                let n = a.int_or("n", 0)?;
                if n < 0 {
                    return Err(Error::Shape(format!("one_hot: the number of classes must be non-negative, got {n}")));
                }
                Op::OneHot { n: n as usize, dtype: a.dtype_or("dtype", DType::F32)? }
            }
            "softmax" | "log_softmax" => Op::Softmax { axis: axis0("axis", -1)?, log: name == "log_softmax" },
            "conv2d" => Op::Conv2d(Conv2dParams {
                stride: pair(a, "stride", 1)?,
                padding: pair(a, "padding", 0)?,
                dilation: pair(a, "dilation", 1)?,
            }),
            "max_pool2d" | "avg_pool2d" => {
                let kernel = pair(a, "kernel", 2)?;
                let stride = match a.get("stride") {
                    None | Some(Attr::None) => kernel,
                    _ => pair(a, "stride", 1)?,
                };
                let g = PoolGeom { kernel, p: Conv2dParams { stride, padding: pair(a, "padding", 0)?, dilation: (1, 1) } };
                if name == "max_pool2d" { Op::MaxPool2d(g) } else { Op::AvgPool2d(g) }
            }
            "dropout_mask" => {
                let p = a.float("p", 0.5)?;
                if !(0.0..1.0).contains(&p) {
                    return Err(Error::Graph(format!("dropout: p must be in [0, 1), got {p}")));
                }
                Op::DropoutMask { p, stream: crate::random::next_stream() }
            }
            _ => return Err(Error::Graph(format!("unknown op {name:?}"))),
        })
    }

    /// The op's display name.
    pub fn name(&self) -> String {
        match self {
            Op::Unary(u) => unary_name(*u).to_string(),
            Op::Binary(b) => binary_name(*b).to_string(),
            Op::Where => "where".into(),
            Op::Cast(d) => format!("cast<{d}>"),
            Op::Reduce { op, .. } => format!("{op:?}").to_lowercase(),
            Op::ArgReduce { is_max, .. } => if *is_max { "argmax" } else { "argmin" }.into(),
            Op::MatMul { .. } => "matmul".into(),
            Op::Reshape(_) => "reshape".into(),
            Op::Transpose(_) => "transpose".into(),
            Op::Slice(_) => "slice".into(),
            Op::SliceGrad { .. } => "slice_grad".into(),
            Op::BroadcastTo(_) => "broadcast_to".into(),
            Op::Concat(_) => "concat".into(),
            Op::Take(_) => "take".into(),
            Op::ScatterAdd { .. } => "scatter_add".into(),
            Op::OneHot { .. } => "one_hot".into(),
            Op::Softmax { log, .. } => if *log { "log_softmax" } else { "softmax" }.into(),
            Op::SoftmaxGrad { log, .. } => if *log { "log_softmax_grad" } else { "softmax_grad" }.into(),
            Op::Conv2d(_) => "conv2d".into(),
            Op::Conv2dGradInput { .. } => "conv2d_grad_input".into(),
            Op::Conv2dGradWeight { .. } => "conv2d_grad_weight".into(),
            Op::MaxPool2d(_) => "max_pool2d".into(),
            Op::MaxPool2dGrad(_) => "max_pool2d_grad".into(),
            Op::AvgPool2d(_) => "avg_pool2d".into(),
            Op::AvgPool2dGrad { .. } => "avg_pool2d_grad".into(),
            Op::DropoutMask { .. } => "dropout_mask".into(),
            Op::Custom(c) => c.0.name().to_string(),
            Op::Fused(e) => e.name(),
            Op::FusedReduce { expr, fold, .. } => format!("{}∘{}", format!("{fold:?}").to_lowercase(), expr.name()),
            Op::CustomGrad { op, index } => format!("{}_grad{}", op.0.name(), index),
        }
    }

    /// True for ops whose output is a pure elementwise function of broadcast inputs.
    pub fn is_elementwise(&self) -> bool {
        matches!(self, Op::Unary(_) | Op::Binary(_) | Op::Where)
    }

    /// True for ops that draw random numbers (never folded or deduplicated).
    pub fn is_random(&self) -> bool {
        matches!(self, Op::DropoutMask { .. })
    }

    /// Output dtype and shape from input dtypes and shapes. Errors say what is wrong; the
    /// graph adds the op, operand names and source location.
    pub fn infer(&self, ins: &[(DType, &[usize])]) -> Result<(DType, Vec<usize>)> {
        crate::infer::infer(self, ins)
    }

    /// Runs the CPU kernel: `out` is preallocated with the inferred dtype and shape.
    pub fn forward(&self, ins: &[TensorView], out: &mut Tensor) -> Result<()> {
        let r: gorgon_core::Result<()> = match self {
            Op::Unary(u) => ew::unary(*u, &ins[0], out),
            Op::Binary(b) => ew::binary(*b, &ins[0], &ins[1], out),
            Op::Where => ew::where_(&ins[0], &ins[1], &ins[2], out),
            Op::Cast(_) => ew::cast(&ins[0], out),
            Op::Reduce { op, axes, .. } => red::reduce(*op, &ins[0], axes, out),
            Op::ArgReduce { is_max, axis, .. } => red::arg_reduce(*is_max, &ins[0], *axis, out),
            Op::MatMul { ta, tb } => {
                let a = if *ta { swap_last2(&ins[0])? } else { ins[0].clone() };
                let b = if *tb { swap_last2(&ins[1])? } else { ins[1].clone() };
                matmul::matmul(&a, &b, out)
            }
            Op::Reshape(_) => return copy_reshape(&ins[0], out),
            Op::Transpose(axes) => ew::copy_into(&ins[0].permuted(axes)?, out),
            Op::Slice(spec) => ew::copy_into(&ins[0].slice(spec)?, out),
            Op::SliceGrad { spec, .. } => return slice_grad(&ins[0], spec, out),
            Op::BroadcastTo(shape) => ew::copy_into(&ins[0].broadcast_to(shape)?, out),
            Op::Concat(axis) => index::concat(ins, *axis, out),
            Op::Take(axis) => index::take(&ins[0], &ins[1], *axis, out),
            Op::ScatterAdd { axis, .. } => index::scatter_add(&ins[0], &ins[1], *axis, out),
            Op::OneHot { n, .. } => index::one_hot(&ins[0], *n, out),
            Op::Softmax { axis, log } => softmax::softmax(&ins[0], *axis, *log, out),
            Op::SoftmaxGrad { axis, log } => softmax::softmax_backward(&ins[0], &ins[1], *axis, *log, out),
            Op::Conv2d(p) => conv::conv2d(&ins[0], &ins[1], *p, out),
            Op::Conv2dGradInput { p, .. } => conv::conv2d_backward_input(&ins[0], &ins[1], *p, out),
            Op::Conv2dGradWeight { p, .. } => conv::conv2d_backward_weight(&ins[0], &ins[1], *p, out),
            Op::MaxPool2d(g) => pool::max_pool2d(&ins[0], g.kernel, g.p, out),
            Op::MaxPool2dGrad(g) => pool::max_pool2d_backward(&ins[0], &ins[1], g.kernel, g.p, out),
            Op::AvgPool2d(g) => pool::avg_pool2d(&ins[0], g.kernel, g.p, out),
            Op::AvgPool2dGrad { g, .. } => pool::avg_pool2d_backward(&ins[0], g.kernel, g.p, out),
            Op::DropoutMask { p, stream } => return crate::random::dropout_mask(*p, *stream, out),
            Op::Custom(c) => return custom_forward(c, ins, out),
            Op::Fused(e) => return crate::fused::eval(e, ins, out),
            Op::FusedReduce { expr, fold, row_len } => return crate::fused::reduce::eval(expr, *fold, *row_len, ins, out),
            Op::CustomGrad { op, index } => {
                let r = op.0.backward(&ins[0], &ins[1..], *index)?;
                return assign_checked(&op.0.name().to_string(), r, out);
            }
        };
        r.map_err(Error::from)
    }
}

/// Resolves a reshape target with at most one `-1` against an input shape.
pub fn resolve_reshape(input: &[usize], want: &[i64]) -> Result<Vec<usize>> {
    let n: usize = input.iter().product();
    let neg: Vec<usize> = want.iter().enumerate().filter(|(_, &d)| d < 0).map(|(i, _)| i).collect();
    let err = || Error::Shape(format!("reshape: cannot reshape array of shape {} (size {}) into shape {:?}", fmt_shape(input), n, want));
    if neg.len() > 1 || want.iter().any(|&d| d < -1) {
        return Err(err());
    }
    let known: usize = want.iter().filter(|&&d| d >= 0).map(|&d| d as usize).product();
    let mut out: Vec<usize> = want.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(&i) = neg.first() {
        if known == 0 || n % known != 0 {
            return Err(err());
        }
        out[i] = n / known;
    }
    if out.iter().product::<usize>() != n {
        return Err(err());
    }
    Ok(out)
}

fn swap_last2<'a>(v: &TensorView<'a>) -> Result<TensorView<'a>> {
    let nd = v.shape().len();
    let mut axes: Vec<usize> = (0..nd).collect();
    if nd >= 2 {
        axes.swap(nd - 1, nd - 2);
    }
    Ok(v.permuted(&axes)?)
}

fn copy_reshape(x: &TensorView, out: &mut Tensor) -> Result<()> {
    fn go<T: Element>(x: &TensorView, out: &mut Tensor) -> Option<()> {
        let xa = T::view_ref(x)?;
        let oa = T::tensor_mut(out)?;
        let os = oa.as_slice_mut()?;
        match xa.as_slice() {
            Some(s) if s.len() == os.len() => os.copy_from_slice(s),
            _ => {
                if xa.len() != os.len() {
                    return None;
                }
                for (o, v) in os.iter_mut().zip(xa.iter()) {
                    *o = *v;
                }
            }
        }
        Some(())
    }
    let ok = match x.dtype() {
        DType::F32 => go::<f32>(x, out),
        DType::F64 => go::<f64>(x, out),
        DType::I32 => go::<i32>(x, out),
        DType::I64 => go::<i64>(x, out),
        DType::Bool => go::<bool>(x, out),
    };
    ok.ok_or_else(|| Error::Internal(format!("reshape: buffer mismatch {} -> {}", fmt_shape(x.shape()), fmt_shape(out.shape()))))
}

fn slice_grad(g: &TensorView, spec: &[(isize, isize, isize)], out: &mut Tensor) -> Result<()> {
    fn go<T: Element>(g: &TensorView, spec: &[(isize, isize, isize)], out: &mut Tensor) -> Option<()> {
        let ga = T::view_ref(g)?;
        let oa = T::tensor_mut(out)?;
        oa.fill(T::zero());
        let mut v = oa.view_mut();
        for (ax, &(start, stop, step)) in spec.iter().enumerate() {
            let s = if step > 0 {
                ndarray::Slice::new(start, Some(stop.max(start)), step)
            } else {
                let hi = start + 1;
                ndarray::Slice::new((stop + 1).min(hi), Some(hi), step)
            };
            v.slice_axis_inplace(ndarray::Axis(ax), s);
        }
        if v.shape() != ga.shape() {
            return None;
        }
        v.assign(&ga);
        Some(())
    }
    let ok = match g.dtype() {
        DType::F32 => go::<f32>(g, spec, out),
        DType::F64 => go::<f64>(g, spec, out),
        DType::I32 => go::<i32>(g, spec, out),
        DType::I64 => go::<i64>(g, spec, out),
        DType::Bool => go::<bool>(g, spec, out),
    };
    ok.ok_or_else(|| Error::Internal("slice_grad: shape mismatch".into()))
}

fn assign_checked(name: &str, r: Tensor, out: &mut Tensor) -> Result<()> {
    if r.shape() != out.shape() {
        return Err(Error::Shape(format!(
            "custom op {name}: returned shape {} but shape_fn said {}",
            fmt_shape(r.shape()),
            fmt_shape(out.shape())
        )));
    }
    if r.dtype() != out.dtype() {
        let mut tmp = Tensor::try_zeros(out.dtype(), out.shape())?;
        ew::cast(&r.view(), &mut tmp)?;
        *out = tmp;
    } else {
        *out = r;
    }
    Ok(())
}

fn custom_forward(c: &CustomRef, ins: &[TensorView], out: &mut Tensor) -> Result<()> {
    let r = c.0.forward(ins)?;
    assign_checked(c.0.name(), r, out)
}
