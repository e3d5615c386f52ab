//! Small typed builders over [`Graph::apply`] used by gradient rules and rewrites
//! (`add`, `mul`, `sum_to_shape`, ...). Owns no state; every function returns a node id.

use crate::error::Result;
use crate::graph::{Graph, NodeId};
use crate::op::Op;
use gorgon_core::kernels::elementwise::{BinaryOp, UnaryOp};
use gorgon_core::kernels::reduce::ReduceOp;

/// `op(x)`.
pub fn un(g: &mut Graph, u: UnaryOp, x: NodeId) -> Result<NodeId> {
    let loc = g.node(x).location.clone();
    g.apply(Op::Unary(u), &[x], loc)
}

/// `op(a, b)`.
pub fn bin(g: &mut Graph, b: BinaryOp, x: NodeId, y: NodeId) -> Result<NodeId> {
    let loc = g.node(x).location.clone();
    g.apply(Op::Binary(b), &[x, y], loc)
}

/// `a + b`.
pub fn add(g: &mut Graph, a: NodeId, b: NodeId) -> Result<NodeId> {
    bin(g, BinaryOp::Add, a, b)
}
/// `a − b`.
pub fn sub(g: &mut Graph, a: NodeId, b: NodeId) -> Result<NodeId> {
    bin(g, BinaryOp::Sub, a, b)
}
/// `a · b`.
pub fn mul(g: &mut Graph, a: NodeId, b: NodeId) -> Result<NodeId> {
    bin(g, BinaryOp::Mul, a, b)
}
/// `a / b`.
pub fn div(g: &mut Graph, a: NodeId, b: NodeId) -> Result<NodeId> {
    bin(g, BinaryOp::Div, a, b)
}
/// `−a`.
pub fn neg(g: &mut Graph, a: NodeId) -> Result<NodeId> {
    un(g, UnaryOp::Neg, a)
}

/// A scalar constant with `like`'s dtype.
pub fn scalar_like(g: &mut Graph, like: NodeId, v: f64) -> NodeId {
    let d = g.node(like).dtype;
    g.scalar(d, v)
}

/// `a · v` for a scalar `v` (skips the multiply when `v == 1`).
pub fn scale(g: &mut Graph, a: NodeId, v: f64) -> Result<NodeId> {
    if v == 1.0 {
        return Ok(a);
    }
    let c = scalar_like(g, a, v);
    mul(g, a, c)
}

/// Sum over `axes` (sorted) with keepdims.
pub fn sum(g: &mut Graph, x: NodeId, axes: Vec<usize>, keepdims: bool) -> Result<NodeId> {
    let loc = g.node(x).location.clone();
    g.apply(Op::Reduce { op: ReduceOp::Sum, axes, keepdims }, &[x], loc)
}

/// Reshape (no-op when the shape already matches).
pub fn reshape(g: &mut Graph, x: NodeId, shape: &[usize]) -> Result<NodeId> {
    if g.node(x).shape == shape {
        return Ok(x);
    }
    let loc = g.node(x).location.clone();
    g.apply(Op::Reshape(shape.to_vec()), &[x], loc)
}

/// Broadcast to `shape` (no-op when equal).
pub fn broadcast_to(g: &mut Graph, x: NodeId, shape: &[usize]) -> Result<NodeId> {
    if g.node(x).shape == shape {
        return Ok(x);
    }
    let loc = g.node(x).location.clone();
    g.apply(Op::BroadcastTo(shape.to_vec()), &[x], loc)
}

/// Transpose by `axes`.
pub fn transpose(g: &mut Graph, x: NodeId, axes: Vec<usize>) -> Result<NodeId> {
    if axes.iter().enumerate().all(|(i, &a)| i == a) {
        return Ok(x);
    }
    let loc = g.node(x).location.clone();
    g.apply(Op::Transpose(axes), &[x], loc)
}

/// Matrix product with transpose flags.
pub fn matmul(g: &mut Graph, a: NodeId, b: NodeId, ta: bool, tb: bool) -> Result<NodeId> {
    let loc = g.node(a).location.clone();
    g.apply(Op::MatMul { ta, tb }, &[a, b], loc)
}

/// Sums a broadcast gradient back down to `shape` (the adjoint of broadcasting).
pub fn sum_to_shape(g: &mut Graph, grad: NodeId, shape: &[usize]) -> Result<NodeId> {
    let gs = g.node(grad).shape.clone();
    if gs == shape {
        return Ok(grad);
    }
    let lead = gs.len() - shape.len().min(gs.len());
    let mut axes: Vec<usize> = (0..lead).collect();
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 && gs[lead + i] != 1 {
            axes.push(lead + i);
        }
    }
    let s = if axes.is_empty() { grad } else { sum(g, grad, axes, false)? };
    reshape(g, s, shape)
}

/// Zeros with `like`'s shape and dtype (a broadcast scalar constant, folded).
pub fn zeros_like(g: &mut Graph, like: NodeId) -> Result<NodeId> {
    let shape = g.node(like).shape.clone();
    let z = scalar_like(g, like, 0.0);
    broadcast_to(g, z, &shape)
}
