//! Symbolic reverse-mode differentiation. [`grad`] walks the graph backwards from a scalar
//! cost and adds gradient nodes to the same graph; every op's rule ([`vjp`]) is written in
//! graph ops, so gradients of gradients work wherever the rule's ops are differentiable.

use crate::build::*;
use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId, NodeKind};
use crate::op::Op;
use gorgon_core::kernels::elementwise::{BinaryOp as B, UnaryOp as U};
use gorgon_core::kernels::reduce::ReduceOp;
use std::collections::{HashMap, HashSet};

/// Gradients of the scalar float `cost` w.r.t. each of `wrt`, as new nodes of the graph.
/// A `wrt` that the cost does not depend on is an error unless `allow_unused` (then zeros).
///
/// ```
/// use gorgon_autodiff::{Graph, attrs::Attrs, grad::grad};
/// use gorgon_core::DType;
/// let mut g = Graph::new(true);
/// let x = g.leaf(DType::F64, &[], Some("x".into()), None).unwrap();
/// let y = g.apply_named("mul", &[x, x], &Attrs::new(), None).unwrap();
/// let dx = grad(&mut g, y, &[x], false).unwrap();
/// assert_eq!(dx.len(), 1);
/// ```
pub fn grad(g: &mut Graph, cost: NodeId, wrt: &[NodeId], allow_unused: bool) -> Result<Vec<NodeId>> {
    let c = g.try_node(cost)?.clone();
    if !c.shape.is_empty() && c.shape.iter().product::<usize>() != 1 {
        return Err(Error::Shape(format!("grad: cost {} must be a scalar (shape ()), got shape {}", c.label(cost), gorgon_core::error::fmt_shape(&c.shape))));
    }
    if !c.dtype.is_float() {
        return Err(Error::DType(format!("grad: cost {} must be float32 or float64, got {}", c.label(cost), c.dtype)));
    }
    for &w in wrt {
        g.try_node(w)?;
    }
    let first_new = g.len();
    // Topological order of the cost's ancestors (iterative DFS).
    let order = ancestors_topo(g, cost);
    let in_cone: HashSet<NodeId> = order.iter().copied().collect();
    // Nodes through which some wrt influences the cost.
    let wrt_set: HashSet<NodeId> = wrt.iter().copied().collect();
    let mut relevant: HashSet<NodeId> = HashSet::new();
    for &n in &order {
        if wrt_set.contains(&n) || g.node(n).inputs.iter().any(|i| relevant.contains(i)) {
            relevant.insert(n);
        }
    }
    let mut acc: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    let seed = {
        let one = scalar_like(g, cost, 1.0);
        reshape(g, one, &c.shape)?
    };
    acc.insert(cost, vec![seed]);
    let mut total: HashMap<NodeId, NodeId> = HashMap::new();
    for &n in order.iter().rev() {
        if !relevant.contains(&n) {
            continue;
        }
        let Some(parts) = acc.remove(&n) else { continue };
        let gsum = sum_parts(g, parts)?;
        total.insert(n, gsum);
        let node = g.node(n).clone();
        let NodeKind::Op(op) = &node.kind else { continue };
        let needs: Vec<bool> = node.inputs.iter().map(|i| relevant.contains(i)).collect();
        if !needs.iter().any(|&b| b) {
            continue;
        }
        let grads = vjp(g, n, op, &node.inputs, gsum, &needs).map_err(|e| e.context(format!("while differentiating {}", node.describe(n))))?;
        for (k, gi) in grads.into_iter().enumerate() {
            if let (Some(gi), true) = (gi, needs[k]) {
                acc.entry(node.inputs[k]).or_default().push(gi);
            }
        }
    }
    let mut out = Vec::with_capacity(wrt.len());
    for &w in wrt {
        let gw = match total.get(&w) {
            Some(&gw) => gw,
            None if allow_unused => zeros_like(g, w)?,
            None => {
                let why = if in_cone.contains(&w) { "only through non-differentiable ops" } else { "not at all" };
                return Err(Error::Graph(format!(
                    "grad: cost {} depends on {} {} (pass allow_unused=True to get zeros)",
                    c.label(cost),
                    g.node(w).label(w),
                    why
                )));
            }
        };
        // The gradient node must have the wrt's shape and dtype.
        let gw = reshape(g, gw, &g.node(w).shape.clone())?;
        out.push(gw);
    }
    for id in first_new..g.len() {
        g.mark_grad(id);
    }
    for (&w, &gw) in wrt.iter().zip(&out) {
        g.grad_of.insert(w, gw);
    }
    Ok(out)
}

/// Ancestors of `root` (inclusive) in a deterministic topological order.
pub fn ancestors_topo(g: &Graph, root: NodeId) -> Vec<NodeId> {
    topo_from(g, &[root])
}

/// Ancestors of all `roots` (inclusive) in a deterministic topological order (inputs first,
/// ties broken by the order operands are listed).
pub fn topo_from(g: &Graph, roots: &[NodeId]) -> Vec<NodeId> {
    let mut state = vec![0u8; g.len()];
    let mut order = Vec::new();
    let mut stack: Vec<(NodeId, usize)> = Vec::new();
    for &r in roots {
        if state[r] != 0 {
            continue;
        }
        stack.push((r, 0));
        state[r] = 1;
        while let Some((n, k)) = stack.pop() {
            let inputs = &g.node(n).inputs;
            if k < inputs.len() {
                stack.push((n, k + 1));
                let c = inputs[k];
                if state[c] == 0 {
                    state[c] = 1;
                    stack.push((c, 0));
                }
            } else {
                state[n] = 2;
                order.push(n);
            }
        }
    }
    order
}

fn sum_parts(g: &mut Graph, parts: Vec<NodeId>) -> Result<NodeId> {
    let mut it = parts.into_iter();
    let mut s = it.next().expect("at least one part");
    for p in it {
        s = add(g, s, p)?;
    }
    Ok(s)
}

fn not_twice(op: &Op) -> Error {
    Error::Graph(format!("{} is not differentiable (no gradient rule for its own gradient op)", op.name()))
}

/// The vector-Jacobian product of one op: the gradient for each input (None = none).
pub fn vjp(g: &mut Graph, y: NodeId, op: &Op, xs: &[NodeId], gy: NodeId, needs: &[bool]) -> Result<Vec<Option<NodeId>>> {
    let x = xs[0];
    let one = |r: Result<NodeId>| r.map(|v| vec![Some(v)]);
    match op {
        Op::Unary(u) => {
            let d = match u {
                U::Neg => neg(g, gy),
                U::Abs => { let s = un(g, U::Sign, x)?; mul(g, gy, s) }
                U::Sign | U::Floor | U::Ceil | U::Step | U::InRange(..) | U::LeakyStep(_) => zeros_like(g, x),
                U::Exp => mul(g, gy, y),
                U::Log => div(g, gy, x),
                U::Log1p => { let o = scalar_like(g, x, 1.0); let d = add(g, x, o)?; div(g, gy, d) }
                U::Expm1 => { let o = scalar_like(g, x, 1.0); let e = add(g, y, o)?; mul(g, gy, e) }
                U::Log2 => { let d = scale(g, x, std::f64::consts::LN_2)?; div(g, gy, d) }
                U::Sqrt => { let d = scale(g, y, 2.0)?; div(g, gy, d) }
                U::Square => { let d = scale(g, x, 2.0)?; mul(g, gy, d) }
                U::Cube => { let s = un(g, U::Square, x)?; let d = scale(g, s, 3.0)?; mul(g, gy, d) }
                U::Inverse => { let s = un(g, U::Square, y)?; let m = mul(g, gy, s)?; neg(g, m) }
                U::InverseSqrt => { let c = un(g, U::Cube, y)?; let d = scale(g, c, -0.5)?; mul(g, gy, d) }
                U::Sin => { let c = un(g, U::Cos, x)?; mul(g, gy, c) }
                U::Cos => { let s = un(g, U::Sin, x)?; let m = mul(g, gy, s)?; neg(g, m) }
                U::Tanh => { let s = un(g, U::Square, y)?; let o = scalar_like(g, y, 1.0); let d = sub(g, o, s)?; mul(g, gy, d) }
                U::Sigmoid => { let o = scalar_like(g, y, 1.0); let om = sub(g, o, y)?; let d = mul(g, y, om)?; mul(g, gy, d) }
                U::Softplus => { let s = un(g, U::Sigmoid, x)?; mul(g, gy, s) }
                // step(relu(x)) = step(x): reading the output lets the forward pass fuse
                // whatever feeds the relu (its input is then read by nothing else).
                U::Relu => { let s = un(g, U::Step, y)?; mul(g, gy, s) }
                U::LeakyRelu(a) => { let s = un(g, U::LeakyStep(*a), x)?; mul(g, gy, s) }
                U::Clip(lo, hi) => { let s = un(g, U::InRange(*lo, *hi), x)?; mul(g, gy, s) }
                U::Mish => { let s = un(g, U::MishGrad, x)?; mul(g, gy, s) }
                U::MishGrad => return Err(not_twice(op)),
            };
            one(d)
        }
        Op::Binary(b) => {
            let (a, bb) = (xs[0], xs[1]);
            let (sa, sb) = (g.node(a).shape.clone(), g.node(bb).shape.clone());
            let (ga, gb): (Option<NodeId>, Option<NodeId>) = match b {
                B::Add => (Some(gy), Some(gy)),
                B::Sub => (Some(gy), if needs[1] { Some(neg(g, gy)?) } else { None }),
                B::Mul => (
                    if needs[0] { Some(mul(g, gy, bb)?) } else { None },
                    if needs[1] { Some(mul(g, gy, a)?) } else { None },
                ),
                B::Div => (
                    if needs[0] { Some(div(g, gy, bb)?) } else { None },
                    if needs[1] { let t = mul(g, gy, y)?; let q = div(g, t, bb)?; Some(neg(g, q)?) } else { None },
                ),
                // As PyTorch: d(a^b)/da = b·a^(b−1), taken as 0 where b == 0; d(a^b)/db =
                // a^b·ln a, taken as 0 where a == 0 and b ≥ 0 (no 0·∞ NaNs at a zero base).
                // The masked-out branch is computed at a safe base (1), so the derivatives of
                // these gradients (second derivatives) carry no 0·∞ either.
                B::Pow => {
                    let zero = scalar_like(g, bb, 0.0);
                    let one_a = scalar_like(g, a, 1.0);
                    let loc = g.node(y).location.clone();
                    (
                        if needs[0] {
                            let o = scalar_like(g, bb, 1.0);
                            let bm1 = sub(g, bb, o)?;
                            let b0 = bin(g, B::Eq, bb, zero)?;
                            let a_safe = g.apply(Op::Where, &[b0, one_a, a], loc.clone())?;
                            let p = bin(g, B::Pow, a_safe, bm1)?;
                            let t = mul(g, bb, p)?;
                            let t = g.apply(Op::Where, &[b0, zero, t], loc.clone())?;
                            Some(mul(g, gy, t)?)
                        } else { None },
                        if needs[1] {
                            let a0 = bin(g, B::Eq, a, zero)?;
                            let bpos = bin(g, B::Ge, bb, zero)?;
                            let mask = mul(g, a0, bpos)?;
                            let a_safe = g.apply(Op::Where, &[mask, one_a, a], loc.clone())?;
                            let l = un(g, U::Log, a_safe)?;
                            let t = mul(g, y, l)?;
                            let t = g.apply(Op::Where, &[mask, zero, t], loc)?;
                            Some(mul(g, gy, t)?)
                        } else { None },
                    )
                }
                B::Maximum | B::Minimum => {
                    let cmp = if *b == B::Maximum { B::Gt } else { B::Lt };
                    let strict = bin(g, cmp, a, bb)?;
                    let eq = bin(g, B::Eq, a, bb)?;
                    let half = scale(g, eq, 0.5)?;
                    let ma = add(g, strict, half)?;
                    let o = scalar_like(g, ma, 1.0);
                    let mb = sub(g, o, ma)?;
                    (Some(mul(g, gy, ma)?), Some(mul(g, gy, mb)?))
                }
                B::FloorDiv | B::Lt | B::Le | B::Gt | B::Ge | B::Eq | B::Ne => (Some(zeros_like(g, y)?), Some(zeros_like(g, y)?)),
            };
            let ga = match ga { Some(v) if needs[0] => Some(sum_to_shape(g, v, &sa)?), _ => None };
            let gb = match gb { Some(v) if needs[1] => Some(sum_to_shape(g, v, &sb)?), _ => None };
            Ok(vec![ga, gb])
        }
        Op::Where => {
            let (c, a, b) = (xs[0], xs[1], xs[2]);
            let z = scalar_like(g, gy, 0.0);
            let loc = g.node(y).location.clone();
            let ga = if needs[1] { let w = g.apply(Op::Where, &[c, gy, z], loc.clone())?; let s = g.node(a).shape.clone(); Some(sum_to_shape(g, w, &s)?) } else { None };
            let gb = if needs[2] { let w = g.apply(Op::Where, &[c, z, gy], loc)?; let s = g.node(b).shape.clone(); Some(sum_to_shape(g, w, &s)?) } else { None };
            Ok(vec![None, ga, gb])
        }
        Op::Cast(_) => {
            let d = g.node(x).dtype;
            if !d.is_float() {
                return Ok(vec![None]);
            }
            let loc = g.node(y).location.clone();
            one(g.apply(Op::Cast(d), &[gy], loc))
        }
        Op::Reduce { op: r, axes, keepdims } => {
            let xs_shape = g.node(x).shape.clone();
            let keep_shape = gorgon_core::shape::reduced_shape(&xs_shape, axes, true);
            let gk = reshape(g, gy, &keep_shape)?;
            let gb = broadcast_to(g, gk, &xs_shape)?;
            let _ = keepdims;
            let d = match r {
                ReduceOp::Sum => Ok(gb),
                ReduceOp::Mean => {
                    let n: usize = axes.iter().map(|&a| xs_shape[a]).product();
                    scale(g, gb, 1.0 / n.max(1) as f64)
                }
                ReduceOp::Max | ReduceOp::Min => {
                    let yk = reshape(g, y, &keep_shape)?;
                    let mask = bin(g, B::Eq, x, yk)?;
                    let cnt = sum(g, mask, axes.clone(), true)?;
                    let share = div(g, mask, cnt)?;
                    mul(g, gb, share)
                }
                ReduceOp::Prod => {
                    // d prod / d x_i = product of the other factors, computed without dividing by
                    // zero: with no zero factor it is prod/x_i; with exactly one zero, only that
                    // position gets the product of the non-zero factors; with two or more, zero.
                    let zero = scalar_like(g, x, 0.0);
                    let one = scalar_like(g, x, 1.0);
                    let loc = g.node(y).location.clone();
                    let is0 = bin(g, B::Eq, x, zero)?;
                    let nzeros = sum(g, is0, axes.clone(), true)?;
                    let safe = g.apply(Op::Where, &[is0, one, x], loc.clone())?;
                    let pnz = g.apply(Op::Reduce { op: ReduceOp::Prod, axes: axes.clone(), keepdims: true }, &[safe], loc.clone())?;
                    let no_zero = bin(g, B::Eq, nzeros, zero)?;
                    let one_zero = bin(g, B::Eq, nzeros, one)?;
                    let q = div(g, pnz, safe)?;
                    let at_nonzero = g.apply(Op::Where, &[no_zero, q, zero], loc.clone())?;
                    let at_zero = g.apply(Op::Where, &[one_zero, pnz, zero], loc.clone())?;
                    let d = g.apply(Op::Where, &[is0, at_zero, at_nonzero], loc)?;
                    mul(g, gb, d)
                }
                ReduceOp::LogSumExp => {
                    let yk = reshape(g, y, &keep_shape)?;
                    let d = sub(g, x, yk)?;
                    let e = un(g, U::Exp, d)?;
                    mul(g, gb, e)
                }
            };
            one(d)
        }
        Op::ArgReduce { .. } | Op::OneHot { .. } | Op::DropoutMask { .. } => Ok(vec![None; xs.len()]),
        Op::MatMul { ta, tb } => {
            let (a, b) = (xs[0], xs[1]);
            let (sa, sb) = (g.node(a).shape.clone(), g.node(b).shape.clone());
            let da = if needs[0] {
                let d = if !*ta { matmul(g, gy, b, false, !*tb)? } else { matmul(g, b, gy, *tb, true)? };
                Some(sum_to_shape(g, d, &sa)?)
            } else { None };
            let db = if needs[1] {
                let d = if !*tb { matmul(g, a, gy, !*ta, false)? } else { matmul(g, gy, a, true, *ta)? };
                Some(sum_to_shape(g, d, &sb)?)
            } else { None };
            Ok(vec![da, db])
        }
        Op::Reshape(_) => { let s = g.node(x).shape.clone(); one(reshape(g, gy, &s)) }
        Op::Transpose(axes) => {
            let mut inv = vec![0; axes.len()];
            for (i, &a) in axes.iter().enumerate() { inv[a] = i; }
            one(transpose(g, gy, inv))
        }
        Op::Slice(spec) => {
            let s = g.node(x).shape.clone();
            let loc = g.node(y).location.clone();
            one(g.apply(Op::SliceGrad { spec: spec.clone(), input_shape: s }, &[gy], loc))
        }
        Op::SliceGrad { spec, .. } => { let loc = g.node(y).location.clone(); one(g.apply(Op::Slice(spec.clone()), &[gy], loc)) }
        Op::BroadcastTo(_) => { let s = g.node(x).shape.clone(); one(sum_to_shape(g, gy, &s)) }
        Op::Concat(axis) => {
            let gs = g.node(gy).shape.clone();
            let mut start = 0isize;
            let mut out = Vec::new();
            for (k, &xi) in xs.iter().enumerate() {
                let len = g.node(xi).shape[*axis] as isize;
                if needs[k] {
                    let spec: Vec<(isize, isize, isize)> = gs.iter().enumerate().map(|(i, &d)| if i == *axis { (start, start + len, 1) } else { (0, d as isize, 1) }).collect();
                    let loc = g.node(y).location.clone();
                    out.push(Some(g.apply(Op::Slice(spec), &[gy], loc)?));
                } else {
                    out.push(None);
                }
                start += len;
            }
            Ok(out)
        }
        Op::Take(axis) => {
            let size = g.node(x).shape[*axis];
            let loc = g.node(y).location.clone();
            Ok(vec![Some(g.apply(Op::ScatterAdd { axis: *axis, size }, &[gy, xs[1]], loc)?), None])
        }
        Op::ScatterAdd { axis, .. } => { let loc = g.node(y).location.clone(); Ok(vec![Some(g.apply(Op::Take(*axis), &[gy, xs[1]], loc)?), None]) }
        Op::Softmax { axis, log } => {
            let d = if *log {
                let s = sum(g, gy, vec![*axis], true)?;
                let e = un(g, U::Exp, y)?;
                let t = mul(g, e, s)?;
                sub(g, gy, t)?
            } else {
                let gyy = mul(g, gy, y)?;
                let s = sum(g, gyy, vec![*axis], true)?;
                let t = sub(g, gy, s)?;
                mul(g, y, t)?
            };
            Ok(vec![Some(d)])
        }
        Op::SoftmaxGrad { .. } => Err(not_twice(op)),
        Op::Conv2d(p) => {
            let (xx, w) = (xs[0], xs[1]);
            let loc = g.node(y).location.clone();
            let dx = if needs[0] { let s = g.node(xx).shape.clone(); Some(g.apply(Op::Conv2dGradInput { p: *p, input_shape: s }, &[gy, w], loc.clone())?) } else { None };
            let dw = if needs[1] { let s = g.node(w).shape.clone(); Some(g.apply(Op::Conv2dGradWeight { p: *p, weight_shape: s }, &[xx, gy], loc)?) } else { None };
            Ok(vec![dx, dw])
        }
        Op::MaxPool2d(geom) => { let loc = g.node(y).location.clone(); one(g.apply(Op::MaxPool2dGrad(*geom), &[x, gy], loc)) }
        Op::AvgPool2d(geom) => {
            let s = g.node(x).shape.clone();
            let loc = g.node(y).location.clone();
            one(g.apply(Op::AvgPool2dGrad { g: *geom, input_shape: s }, &[gy], loc))
        }
        Op::AvgPool2dGrad { g: geom, .. } => { let loc = g.node(y).location.clone(); one(g.apply(Op::AvgPool2d(*geom), &[gy], loc)) }
        Op::Conv2dGradInput { .. } | Op::Conv2dGradWeight { .. } | Op::MaxPool2dGrad(_) | Op::CustomGrad { .. } | Op::Fused(_) | Op::FusedReduce { .. } => Err(not_twice(op)),
        Op::Custom(c) => {
            if !c.0.has_backward() {
                return Err(Error::Graph(format!("custom op {} has no backward; pass backward= to custom_op to differentiate through it", c.0.name())));
            }
            let mut ins = vec![gy];
            ins.extend_from_slice(xs);
            let loc = g.node(y).location.clone();
            let mut out = Vec::new();
            for k in 0..xs.len() {
                out.push(if needs[k] { Some(g.apply(Op::CustomGrad { op: c.clone(), index: k }, &ins, loc.clone())?) } else { None });
            }
            Ok(out)
        }
    }
}
