//! Dtype and shape rules of every [`Op`]: what `Op::infer` returns. Pure functions of the
//! input dtypes and shapes; the graph adds operand names and source locations to errors.

use crate::error::{Error, Result};
use crate::op::Op;
use gorgon_core::error::fmt_shape;
use gorgon_core::kernels::elementwise::{BinaryOp, UnaryOp};
use gorgon_core::kernels::reduce::ReduceOp;
use gorgon_core::shape::{broadcast_shapes, reduced_shape};
use gorgon_core::DType;

fn shape_err(op: &Op, msg: impl std::fmt::Display) -> Error {
    Error::Shape(format!("{}: {}", op.name(), msg))
}
fn dtype_err(op: &Op, msg: impl std::fmt::Display) -> Error {
    Error::DType(format!("{}: {}", op.name(), msg))
}

fn arity(op: &Op, ins: &[(DType, &[usize])], n: usize) -> Result<()> {
    if ins.len() != n {
        return Err(Error::Graph(format!("{}: expected {} operands, got {}", op.name(), n, ins.len())));
    }
    Ok(())
}

fn same_dtype(op: &Op, ins: &[(DType, &[usize])]) -> Result<DType> {
    let d = ins[0].0;
    if let Some(other) = ins.iter().find(|(x, _)| *x != d) {
        return Err(dtype_err(op, format!("operands have different dtypes {} and {} (no implicit promotion; use cast)", d, other.0)));
    }
    Ok(d)
}

fn float_only(op: &Op, d: DType) -> Result<()> {
    if !d.is_float() {
        return Err(dtype_err(op, format!("needs a float32 or float64 operand, got {d}")));
    }
    Ok(())
}

fn bcast(op: &Op, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    broadcast_shapes(a, b).map_err(|_| shape_err(op, format!("operands could not be broadcast together with shapes {} {}", fmt_shape(a), fmt_shape(b))))
}

fn four_d(op: &Op, what: &str, s: &[usize]) -> Result<()> {
    if s.len() != 4 {
        return Err(shape_err(op, format!("{what} must be 4-D (N, C, H, W), got shape {}", fmt_shape(s))));
    }
    Ok(())
}

/// See [`Op::infer`].
pub fn infer(op: &Op, ins: &[(DType, &[usize])]) -> Result<(DType, Vec<usize>)> {
    match op {
        Op::Unary(u) => {
            arity(op, ins, 1)?;
            let d = ins[0].0;
            let int_ok = matches!(u, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Square | UnaryOp::Cube | UnaryOp::Relu);
            if d == DType::Bool || (!int_ok && !d.is_float()) {
                return Err(dtype_err(op, format!("not defined for dtype {d}")));
            }
            Ok((d, ins[0].1.to_vec()))
        }
        Op::Binary(b) => {
            arity(op, ins, 2)?;
            let d = same_dtype(op, ins)?;
            if matches!(b, BinaryOp::Div) && !d.is_float() {
                return Err(dtype_err(op, format!("true division needs float operands, got {d}")));
            }
            if d == DType::Bool && !matches!(b, BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Maximum | BinaryOp::Minimum) {
                return Err(dtype_err(op, "not defined for bool operands"));
            }
            Ok((d, bcast(op, ins[0].1, ins[1].1)?))
        }
        Op::Where => {
            arity(op, ins, 3)?;
            if ins[1].0 != ins[2].0 {
                return Err(dtype_err(op, format!("branches have different dtypes {} and {}", ins[1].0, ins[2].0)));
            }
            let s = bcast(op, ins[0].1, ins[1].1)?;
            Ok((ins[1].0, bcast(op, &s, ins[2].1)?))
        }
        Op::Cast(d) => {
            arity(op, ins, 1)?;
            Ok((*d, ins[0].1.to_vec()))
        }
        Op::Reduce { op: r, axes, keepdims } => {
            arity(op, ins, 1)?;
            let (d, s) = ins[0];
            if matches!(r, ReduceOp::Mean | ReduceOp::LogSumExp) {
                float_only(op, d)?;
            } else if d == DType::Bool {
                return Err(dtype_err(op, "not defined for bool; cast first"));
            }
            if matches!(r, ReduceOp::Max | ReduceOp::Min | ReduceOp::LogSumExp) {
                if let Some(&ax) = axes.iter().find(|&&ax| s[ax] == 0) {
                    return Err(shape_err(op, format!("zero-size reduction along axis {} of shape {} has no identity", ax, fmt_shape(s))));
                }
            }
            Ok((d, reduced_shape(s, axes, *keepdims)))
        }
        Op::ArgReduce { axis, keepdims, .. } => {
            arity(op, ins, 1)?;
            let s = ins[0].1;
            let empty = match axis { Some(a) => s[*a] == 0, None => s.iter().product::<usize>() == 0 };
            if empty {
                return Err(shape_err(op, format!("attempt to get {} of an empty sequence (shape {})", op.name(), fmt_shape(s))));
            }
            let shape = match axis {
                Some(a) => reduced_shape(s, &[*a], *keepdims),
                None => if *keepdims { vec![1; s.len()] } else { vec![] },
            };
            Ok((DType::I64, shape))
        }
        Op::MatMul { ta, tb } => {
            arity(op, ins, 2)?;
            let d = same_dtype(op, ins)?;
            if d == DType::Bool {
                return Err(dtype_err(op, "not defined for bool"));
            }
            let (a, b) = (ins[0].1, ins[1].1);
            if a.len() < 2 || b.len() < 2 {
                return Err(shape_err(op, format!("operands must be at least 2-D here, got {} and {}", fmt_shape(a), fmt_shape(b))));
            }
            let (m, k1) = if *ta { (a[a.len() - 1], a[a.len() - 2]) } else { (a[a.len() - 2], a[a.len() - 1]) };
            let (k2, n) = if *tb { (b[b.len() - 1], b[b.len() - 2]) } else { (b[b.len() - 2], b[b.len() - 1]) };
            if k1 != k2 {
                return Err(shape_err(op, format!("shapes {} and {} not aligned: {} (dim {}) != {} (dim {})", fmt_shape(a), fmt_shape(b), k1, a.len() - 1, k2, b.len() - 2)));
            }
            let mut batch = bcast(op, &a[..a.len() - 2], &b[..b.len() - 2])?;
            batch.push(m);
            batch.push(n);
            Ok((d, batch))
        }
        Op::Reshape(shape) => {
            arity(op, ins, 1)?;
            if shape.iter().product::<usize>() != ins[0].1.iter().product::<usize>() {
                return Err(shape_err(op, format!("cannot reshape {} into {}", fmt_shape(ins[0].1), fmt_shape(shape))));
            }
            Ok((ins[0].0, shape.clone()))
        }
        Op::Transpose(axes) => {
            arity(op, ins, 1)?;
            let s = ins[0].1;
            let mut seen = vec![false; s.len()];
            if axes.len() != s.len() || axes.iter().any(|&a| a >= s.len() || std::mem::replace(&mut seen[a], true)) {
                return Err(shape_err(op, format!("axes {:?} don't match array of shape {}", axes, fmt_shape(s))));
            }
            Ok((ins[0].0, axes.iter().map(|&a| s[a]).collect()))
        }
        Op::Slice(spec) => {
            arity(op, ins, 1)?;
            let s = ins[0].1;
            if spec.len() != s.len() {
                return Err(shape_err(op, format!("{} indices for a {}-D array", spec.len(), s.len())));
            }
            let mut out = Vec::with_capacity(s.len());
            for (ax, &(start, stop, step)) in spec.iter().enumerate() {
                let n = s[ax] as isize;
                if step == 0 {
                    return Err(shape_err(op, "slice step cannot be zero"));
                }
                let ok = if step > 0 { start >= 0 && start <= n && stop <= n && stop >= 0 } else { start >= -1 && start < n.max(0) + 0 && stop >= -1 };
                if !ok && !(step < 0 && start == -1) {
                    return Err(shape_err(op, format!("slice ({start}, {stop}, {step}) out of range for axis {ax} of shape {}", fmt_shape(s))));
                }
                let len = if step > 0 {
                    if stop > start { (stop - start + step - 1) / step } else { 0 }
                } else if start > stop {
                    (start - stop + (-step) - 1) / (-step)
                } else {
                    0
                };
                out.push(len.max(0) as usize);
            }
            Ok((ins[0].0, out))
        }
        Op::SliceGrad { input_shape, .. } => {
            arity(op, ins, 1)?;
            Ok((ins[0].0, input_shape.clone()))
        }
        Op::BroadcastTo(shape) => {
            arity(op, ins, 1)?;
            let s = bcast(op, ins[0].1, shape)?;
            if &s != shape {
                return Err(shape_err(op, format!("cannot broadcast {} to {}", fmt_shape(ins[0].1), fmt_shape(shape))));
            }
            Ok((ins[0].0, s))
        }
        Op::Concat(axis) => {
            if ins.is_empty() {
                return Err(Error::Graph("concat: need at least one array".into()));
            }
            let d = same_dtype(op, ins)?;
            let first = ins[0].1;
            if first.is_empty() {
                return Err(shape_err(op, "zero-dimensional arrays cannot be concatenated"));
            }
            let mut out = first.to_vec();
            out[*axis] = 0;
            for (_, s) in ins {
                let ok = s.len() == first.len() && s.iter().zip(first).enumerate().all(|(i, (a, b))| i == *axis || a == b);
                if !ok {
                    return Err(shape_err(op, format!("all input dimensions except axis {} must match: {} vs {}", axis, fmt_shape(first), fmt_shape(s))));
                }
                out[*axis] += s[*axis];
            }
            Ok((d, out))
        }
        Op::Take(axis) => {
            arity(op, ins, 2)?;
            if !ins[1].0.is_int() {
                return Err(dtype_err(op, format!("indices must be int32 or int64, got {}", ins[1].0)));
            }
            let s = ins[0].1;
            if s[*axis] == 0 && ins[1].1.iter().product::<usize>() > 0 {
                return Err(shape_err(op, format!("cannot take from an empty axis {} of shape {}", axis, fmt_shape(s))));
            }
            let mut out = s[..*axis].to_vec();
            out.extend_from_slice(ins[1].1);
            out.extend_from_slice(&s[axis + 1..]);
            Ok((ins[0].0, out))
        }
        Op::ScatterAdd { axis, size } => {
            arity(op, ins, 2)?;
            let g = ins[0].1;
            let ni = ins[1].1.len();
            let mut out = g[..*axis].to_vec();
            out.push(*size);
            out.extend_from_slice(&g[axis + ni..]);
            Ok((ins[0].0, out))
        }
        Op::OneHot { n, dtype } => {
            arity(op, ins, 1)?;
            if !ins[0].0.is_int() {
                return Err(dtype_err(op, format!("indices must be int32 or int64, got {}", ins[0].0)));
            }
            let mut out = ins[0].1.to_vec();
            out.push(*n);
            Ok((*dtype, out))
        }
        Op::Softmax { .. } => {
            arity(op, ins, 1)?;
            float_only(op, ins[0].0)?;
            Ok((ins[0].0, ins[0].1.to_vec()))
        }
        Op::SoftmaxGrad { .. } => {
            arity(op, ins, 2)?;
            Ok((ins[0].0, ins[0].1.to_vec()))
        }
        Op::Conv2d(p) => {
            arity(op, ins, 2)?;
            let d = same_dtype(op, ins)?;
            float_only(op, d)?;
            let (x, w) = (ins[0].1, ins[1].1);
            four_d(op, "input", x)?;
            if w.len() != 4 {
                return Err(shape_err(op, format!("weight must be 4-D (O, I, kH, kW), got shape {}", fmt_shape(w))));
            }
            if x[1] != w[1] {
                return Err(shape_err(op, format!("input has {} channels but weight {} expects {}", x[1], fmt_shape(w), w[1])));
            }
            let (oh, ow) = p.out_hw((x[2], x[3]), (w[2], w[3])).ok_or_else(|| shape_err(op, format!("kernel {}x{} (dilation {:?}) larger than padded input {} with padding {:?}", w[2], w[3], p.dilation, fmt_shape(x), p.padding)))?;
            if p.stride.0 == 0 || p.stride.1 == 0 || p.dilation.0 == 0 || p.dilation.1 == 0 {
                return Err(shape_err(op, "stride and dilation must be positive"));
            }
            Ok((d, vec![x[0], w[0], oh, ow]))
        }
        Op::Conv2dGradInput { input_shape, .. } => Ok((ins[0].0, input_shape.clone())),
        Op::Conv2dGradWeight { weight_shape, .. } => Ok((ins[0].0, weight_shape.clone())),
        Op::MaxPool2d(g) | Op::AvgPool2d(g) => {
            arity(op, ins, 1)?;
            float_only(op, ins[0].0)?;
            let x = ins[0].1;
            four_d(op, "input", x)?;
            if g.p.padding.0 * 2 > g.kernel.0 || g.p.padding.1 * 2 > g.kernel.1 {
                return Err(shape_err(op, format!("padding {:?} should be at most half of kernel {:?}", g.p.padding, g.kernel)));
            }
            if g.kernel.0 == 0 || g.kernel.1 == 0 || g.p.stride.0 == 0 || g.p.stride.1 == 0 {
                return Err(shape_err(op, "kernel and stride must be positive"));
            }
            let (oh, ow) = g.p.out_hw((x[2], x[3]), g.kernel).ok_or_else(|| shape_err(op, format!("kernel {:?} larger than padded input {}", g.kernel, fmt_shape(x))))?;
            Ok((ins[0].0, vec![x[0], x[1], oh, ow]))
        }
        Op::MaxPool2dGrad(_) => Ok((ins[0].0, ins[0].1.to_vec())),
        Op::AvgPool2dGrad { input_shape, .. } => Ok((ins[0].0, input_shape.clone())),
        Op::DropoutMask { .. } => {
            arity(op, ins, 1)?;
            float_only(op, ins[0].0)?;
            Ok((ins[0].0, ins[0].1.to_vec()))
        }
        Op::Custom(c) => {
            if ins.is_empty() {
                return Err(Error::Graph(format!("custom op {}: needs at least one input", c.0.name())));
            }
            let shapes: Vec<Vec<usize>> = ins.iter().map(|(_, s)| s.to_vec()).collect();
            Ok((ins[0].0, c.0.infer_shape(&shapes)?))
        }
        Op::Fused(_) | Op::FusedReduce { .. } => Err(Error::Graph("fused ops are made by the compiler, not built".into())),
        Op::CustomGrad { index, .. } => Ok((ins[1 + index].0, ins[1 + index].1.to_vec())),
    }
}
