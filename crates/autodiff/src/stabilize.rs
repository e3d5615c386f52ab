//! Numerical-stabilization rewrites, applied as nodes are built when the graph has
//! `stabilize = true`. Each rule recognizes a naive pattern about to be built and builds the
//! stable equivalent instead:
//!
//! | naive | stable |
//! |---|---|
//! | log(1+x), log(x+1) | log1p(x) |
//! | log(1−x) | log1p(−x) |
//! | exp(x)−1 | expm1(x) |
//! | log(sigmoid(x)) | −softplus(−x) |
//! | log(1−sigmoid(x)) | −softplus(x) |
//! | 1−sigmoid(x) | sigmoid(−x) |
//! | log1p(exp(x)) | softplus(x) |
//! | log1p(−sigmoid(x)) | −softplus(x) |
//! | log(softmax(x, a)) | log_softmax(x, a) |
//! | −(−x) | x |
//! | exp(x)/sum(exp(x), a, keepdims) | softmax(x, a) |
//! | log(sum(exp(x), axes)) | logsumexp(x, axes) |

use crate::error::Result;
use crate::graph::{Graph, NodeId};
use crate::op::Op;
use gorgon_core::kernels::elementwise::{BinaryOp as B, UnaryOp as U};
use gorgon_core::kernels::reduce::ReduceOp;

fn unary_input(g: &Graph, id: NodeId, u: U) -> Option<NodeId> {
    match g.op_of(id) {
        Some(Op::Unary(v)) if *v == u => Some(g.node(id).inputs[0]),
        _ => None,
    }
}

/// `x` when `id` is `1 + x` or `x + 1` (with a constant one).
fn one_plus(g: &Graph, id: NodeId) -> Option<NodeId> {
    if let Some(Op::Binary(B::Add)) = g.op_of(id) {
        let (a, b) = (g.node(id).inputs[0], g.node(id).inputs[1]);
        if g.is_const_value(a, 1.0) && g.node(b).shape == g.node(id).shape {
            return Some(b);
        }
        if g.is_const_value(b, 1.0) && g.node(a).shape == g.node(id).shape {
            return Some(a);
        }
    }
    None
}

/// `x` when `id` is `1 − x` (with a constant one).
fn one_minus(g: &Graph, id: NodeId) -> Option<NodeId> {
    if let Some(Op::Binary(B::Sub)) = g.op_of(id) {
        let (a, b) = (g.node(id).inputs[0], g.node(id).inputs[1]);
        if g.is_const_value(a, 1.0) && g.node(b).shape == g.node(id).shape {
            return Some(b);
        }
    }
    None
}

fn un(g: &mut Graph, u: U, x: NodeId, loc: &Option<String>) -> Result<NodeId> {
    g.apply(Op::Unary(u), &[x], loc.clone())
}

/// Returns the stable replacement for `op(inputs)` if a rule matches.
pub fn rewrite(g: &mut Graph, op: &Op, inputs: &[NodeId], loc: Option<String>) -> Result<Option<NodeId>> {
    match op {
        Op::Unary(U::Neg) => {
            // −(−x) → x
            if let Some(x) = unary_input(g, inputs[0], U::Neg) {
                return Ok(Some(x));
            }
        }
        Op::Unary(U::Log) => {
            let a = inputs[0];
            // log(1−sigmoid(x)) → −softplus(x)   (checked before log(1−x))
            if let Some(s) = one_minus(g, a) {
                if let Some(x) = unary_input(g, s, U::Sigmoid) {
                    let sp = un(g, U::Softplus, x, &loc)?;
                    return Ok(Some(un(g, U::Neg, sp, &loc)?));
                }
                // log(1−x) → log1p(−x)
                let nx = un(g, U::Neg, s, &loc)?;
                return Ok(Some(un(g, U::Log1p, nx, &loc)?));
            }
            // log(1+x) → log1p(x)
            if let Some(x) = one_plus(g, a) {
                return Ok(Some(un(g, U::Log1p, x, &loc)?));
            }
            // log(sigmoid(x)) → −softplus(−x)
            if let Some(x) = unary_input(g, a, U::Sigmoid) {
                let nx = un(g, U::Neg, x, &loc)?;
                let sp = un(g, U::Softplus, nx, &loc)?;
                return Ok(Some(un(g, U::Neg, sp, &loc)?));
            }
            // log(softmax(x)) → log_softmax(x)
            if let Some(Op::Softmax { axis, log: false }) = g.op_of(a).cloned() {
                let x = g.node(a).inputs[0];
                return Ok(Some(g.apply(Op::Softmax { axis, log: true }, &[x], loc)?));
            }
            // log(sum(exp(x))) → logsumexp(x)
            if let Some(Op::Reduce { op: ReduceOp::Sum, axes, keepdims }) = g.op_of(a).cloned() {
                let e = g.node(a).inputs[0];
                if let Some(x) = unary_input(g, e, U::Exp) {
                    return Ok(Some(g.apply(Op::Reduce { op: ReduceOp::LogSumExp, axes, keepdims }, &[x], loc)?));
                }
            }
        }
        Op::Unary(U::Log1p) => {
            let a = inputs[0];
            // log1p(exp(x)) → softplus(x)
            if let Some(x) = unary_input(g, a, U::Exp) {
                return Ok(Some(un(g, U::Softplus, x, &loc)?));
            }
            // log1p(−sigmoid(x)) → −softplus(x)
            if let Some(s) = unary_input(g, a, U::Neg) {
                if let Some(x) = unary_input(g, s, U::Sigmoid) {
                    let sp = un(g, U::Softplus, x, &loc)?;
                    return Ok(Some(un(g, U::Neg, sp, &loc)?));
                }
            }
        }
        Op::Binary(B::Sub) => {
            let (a, b) = (inputs[0], inputs[1]);
            // exp(x) − 1 → expm1(x)
            if g.is_const_value(b, 1.0) {
                if let Some(x) = unary_input(g, a, U::Exp) {
                    if g.node(x).shape == g.node(a).shape && g.node(b).shape.iter().product::<usize>() == 1 {
                        return Ok(Some(un(g, U::Expm1, x, &loc)?));
                    }
                }
            }
            // 1 − sigmoid(x) → sigmoid(−x)
            if g.is_const_value(a, 1.0) {
                if let Some(x) = unary_input(g, b, U::Sigmoid) {
                    if g.node(a).shape.iter().product::<usize>() == 1 {
                        let nx = un(g, U::Neg, x, &loc)?;
                        return Ok(Some(un(g, U::Sigmoid, nx, &loc)?));
                    }
                }
            }
        }
        Op::Binary(B::Div) => {
            // exp(x) / sum(exp(x), axis, keepdims) → softmax(x, axis)
            let (a, b) = (inputs[0], inputs[1]);
            if let (Some(x), Some(Op::Reduce { op: ReduceOp::Sum, axes, keepdims })) = (unary_input(g, a, U::Exp), g.op_of(b).cloned()) {
                if g.node(b).inputs[0] == a {
                    let nd = g.node(x).shape.len();
                    let axis = if axes.len() == 1 && (keepdims || axes[0] == nd - 1 && nd == 1) {
                        Some(axes[0])
                    } else if nd == 1 && axes == vec![0] {
                        Some(0)
                    } else {
                        None
                    };
                    if let Some(axis) = axis {
                        return Ok(Some(g.apply(Op::Softmax { axis, log: false }, &[x], loc)?));
                    }
                }
            }
        }
        _ => {}
    }
    Ok(None)
}
