//! Fusion planning: which elementwise nodes merge into one [`Op::Fused`] loop, which sums
//! and means absorb the tree that feeds them ([`Op::FusedReduce`]), and how the values of
//! fused-away nodes the user may still ask for are recomputed ([`Remat`]).
//!
//! A node joins the group of its sole consumer when both are elementwise float ops of the
//! same shape whose operands are full-size, single elements or (with
//! [`Fusion::broadcasts`]) arrays that broadcast to it. A node whose value must survive the
//! run is never absorbed, except *soft* nodes: user-built nodes of a whole-graph machine,
//! whose values are recomputed from the group's operands when read ([`Remat`]).

use crate::fused::reduce::RowFold;
use crate::fused::{FusedExpr, Step};
use crate::graph::{Graph, NodeId, NodeKind};
use crate::op::Op;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What the planner may fuse.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Fusion {
    /// Elementwise trees at all.
    pub on: bool,
    /// Sums and means over trailing axes with the tree that feeds them.
    pub reductions: bool,
    /// Operands that broadcast to the tree's shape (not only full-size or single elements).
    pub broadcasts: bool,
}

/// How to recompute a fused-away node's value: `expr` over the values of `inputs` (nodes
/// whose values survive the run: kept op nodes and leaves).
#[derive(Clone, Debug)]
pub struct Remat {
    /// The node's subtree of its group.
    pub expr: Arc<FusedExpr>,
    /// The subtree's operands.
    pub inputs: Vec<NodeId>,
}

/// The plan: instructions `(node, op, operand nodes)` in order, and the recomputation of
/// every soft node that has no instruction of its own.
pub(super) struct Plan {
    pub instrs: Vec<(NodeId, Op, Vec<NodeId>)>,
    pub remat: Vec<(NodeId, Remat)>,
}

/// True when `s` broadcasts to `to` (NumPy rules, `s` no longer than `to`).
fn broadcasts_to(s: &[usize], to: &[usize]) -> bool {
    s.len() <= to.len() && s.iter().rev().zip(to.iter().rev()).all(|(&a, &b)| a == b || a == 1)
}

/// An elementwise float node whose operands all have its dtype and its shape, one element,
/// or (with `broadcasts`) a shape that broadcasts to its own.
fn conformant(g: &Graph, n: NodeId, broadcasts: bool) -> bool {
    let node = g.node(n);
    let NodeKind::Op(op) = &node.kind else { return false };
    if !op.is_elementwise() || !node.dtype.is_float() {
        return false;
    }
    let numel: usize = node.shape.iter().product();
    numel > 1
        && node.inputs.iter().all(|&i| {
            let inp = g.node(i);
            inp.dtype == node.dtype
                && (inp.shape == node.shape
                    || inp.shape.iter().product::<usize>() == 1
                    || (broadcasts && node.shape.len() <= crate::fused::bcast::MAX_DIMS && broadcasts_to(&inp.shape, &node.shape)))
        })
}

/// Plans the instructions of `op_nodes` (in order). `keep`: nodes whose values must survive
/// the run; `soft`: those of them that may be fused away and recomputed.
pub(super) fn plan(g: &Graph, op_nodes: &[NodeId], keep: &HashSet<NodeId>, soft: &HashSet<NodeId>, f: Fusion) -> Plan {
    let in_plan: HashSet<NodeId> = op_nodes.iter().copied().collect();
    let mut consumers: HashMap<NodeId, HashSet<NodeId>> = HashMap::new();
    for &n in op_nodes {
        for &i in &g.node(n).inputs {
            consumers.entry(i).or_default().insert(n);
        }
    }
    let pinned = |n: &NodeId| keep.contains(n) && !soft.contains(n);
    let mut root_of: HashMap<NodeId, NodeId> = HashMap::new();
    if f.on {
        for &n in op_nodes.iter().rev() {
            if !conformant(g, n, f.broadcasts) {
                continue;
            }
            let sole = consumers.get(&n).filter(|c| c.len() == 1).and_then(|c| c.iter().next().copied());
            let absorbed = match sole {
                Some(c) if !pinned(&n) && in_plan.contains(&c) && g.node(c).shape == g.node(n).shape => root_of.get(&c).copied(),
                _ => None,
            };
            root_of.insert(n, absorbed.unwrap_or(n));
        }
    }
    let mut members: HashMap<NodeId, usize> = HashMap::new();
    for (&n, &r) in &root_of {
        if n != r {
            *members.entry(r).or_default() += 1;
        }
    }
    let mut reductions = if f.on && f.reductions { fusable_reductions(g, op_nodes, &pinned, &consumers, &root_of) } else { HashMap::new() };
    let swallowed: HashSet<NodeId> = reductions.values().map(|r| r.root).collect();
    let mut instrs = Vec::with_capacity(op_nodes.len());
    for &n in op_nodes {
        let node = g.node(n);
        let NodeKind::Op(op) = &node.kind else { continue };
        if swallowed.contains(&n) {
            continue;
        }
        if let Some(r) = reductions.remove(&n) {
            instrs.push((n, Op::FusedReduce { expr: r.expr, fold: r.fold, row_len: r.row_len }, r.inputs));
            continue;
        }
        match root_of.get(&n) {
            Some(&r) if r != n => continue,
            Some(_) if members.get(&n).copied().unwrap_or(0) > 0 => {
                let (expr, ext) = group_expr(g, n, n, &root_of);
                instrs.push((n, Op::Fused(expr), ext));
            }
            _ => instrs.push((n, op.clone(), node.inputs.clone())),
        }
    }
    // Soft nodes without an instruction: members of a group, or roots a reduction swallowed.
    let mut remat = Vec::new();
    for &n in op_nodes {
        let Some(&r) = root_of.get(&n) else { continue };
        if soft.contains(&n) && (r != n || swallowed.contains(&n)) {
            let (expr, inputs) = group_expr(g, n, r, &root_of);
            remat.push((n, Remat { expr, inputs }));
        }
    }
    Plan { instrs, remat }
}

/// A sum or mean that absorbs the elementwise group feeding it.
struct Reduction {
    /// The group's root (the reduction's operand).
    root: NodeId,
    fold: RowFold,
    /// Elements of the group per output element.
    row_len: usize,
    /// The group's expression and operands.
    expr: Arc<FusedExpr>,
    inputs: Vec<NodeId>,
}

/// The fusable reductions, by reduction node. The group must be the reduction's sole
/// input, read by nothing else and not pinned, the reduced axes the trailing ones (so each
/// output element folds one contiguous row), and its operands full-size or single elements.
fn fusable_reductions(
    g: &Graph,
    op_nodes: &[NodeId],
    pinned: &dyn Fn(&NodeId) -> bool,
    consumers: &HashMap<NodeId, HashSet<NodeId>>,
    root_of: &HashMap<NodeId, NodeId>,
) -> HashMap<NodeId, Reduction> {
    use gorgon_core::kernels::reduce::ReduceOp;
    let mut found = HashMap::new();
    for &n in op_nodes {
        let Some(Op::Reduce { op, axes, .. }) = g.op_of(n) else { continue };
        let fold = match op {
            ReduceOp::Sum => RowFold::Sum,
            ReduceOp::Mean => RowFold::Mean,
            _ => continue,
        };
        let &[i] = g.node(n).inputs.as_slice() else { continue };
        let sole = consumers.get(&i).is_some_and(|c| c.len() == 1);
        if !sole || pinned(&i) || root_of.get(&i) != Some(&i) || g.node(i).dtype != g.node(n).dtype {
            continue;
        }
        let shape = &g.node(i).shape;
        let (expr, ext) = group_expr(g, i, i, root_of);
        if !ext.iter().all(|&e| g.node(e).shape == *shape || g.node(e).shape.iter().product::<usize>() == 1) {
            continue;
        }
        let mut ax = axes.clone();
        ax.sort_unstable();
        ax.dedup();
        let first = shape.len().saturating_sub(ax.len());
        if ax.is_empty() || ax.iter().enumerate().any(|(k, &a)| a != first + k) {
            continue;
        }
        found.insert(n, Reduction { root: i, fold, row_len: shape[first..].iter().product(), expr, inputs: ext });
    }
    found
}

/// The expression of `n`'s subtree within group `root`, and its operands (nodes outside the
/// group) in input order.
fn group_expr(g: &Graph, n: NodeId, root: NodeId, root_of: &HashMap<NodeId, NodeId>) -> (Arc<FusedExpr>, Vec<NodeId>) {
    let (mut steps, mut ext, mut memo) = (Vec::new(), Vec::new(), HashMap::new());
    build_steps(g, n, n, root, root_of, &mut steps, &mut ext, &mut memo);
    (Arc::new(FusedExpr { steps }), ext)
}

/// Appends the steps of `n` (inside group `root` when it is `top` or belongs to `root`'s
/// group; an operand otherwise) and returns its step index.
#[allow(clippy::too_many_arguments)]
fn build_steps(
    g: &Graph,
    n: NodeId,
    top: NodeId,
    root: NodeId,
    root_of: &HashMap<NodeId, NodeId>,
    steps: &mut Vec<Step>,
    ext: &mut Vec<NodeId>,
    memo: &mut HashMap<NodeId, usize>,
) -> usize {
    if let Some(&s) = memo.get(&n) {
        return s;
    }
    let inside = n == top || n == root || root_of.get(&n) == Some(&root);
    let step = if !inside {
        let k = ext.iter().position(|&e| e == n).unwrap_or_else(|| {
            ext.push(n);
            ext.len() - 1
        });
        Step::Input(k)
    } else {
        let ins: Vec<usize> = g.node(n).inputs.iter().map(|&i| build_steps(g, i, top, root, root_of, steps, ext, memo)).collect();
        match g.op_of(n) {
            Some(Op::Unary(u)) => Step::Unary(*u, ins[0]),
            Some(Op::Binary(b)) => Step::Binary(*b, ins[0], ins[1]),
            Some(Op::Where) => Step::Where(ins[0], ins[1], ins[2]),
            _ => unreachable!("only elementwise ops are fused"),
        }
    };
    steps.push(step);
    memo.insert(n, steps.len() - 1);
    steps.len() - 1
}

#[cfg(test)]
mod tests {
    use super::broadcasts_to;

    #[test]
    fn broadcast_rule() {
        assert!(broadcasts_to(&[3], &[2, 3]));
        assert!(broadcasts_to(&[1, 4, 1, 1], &[2, 4, 3, 5]));
        assert!(broadcasts_to(&[], &[2]));
        assert!(!broadcasts_to(&[2], &[2, 3]));
        assert!(!broadcasts_to(&[1, 2, 3], &[2, 3]));
    }
}
