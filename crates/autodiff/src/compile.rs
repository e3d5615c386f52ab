//! Compilation: deterministic topological sort → liveness analysis → buffer plan → a flat,
//! printable [`Program`]. Buffers of nodes the user can see are kept for the whole run (so
//! `node.value` works afterwards); buffers of internal nodes (gradient intermediates) are
//! reused once their last reader has run.

use crate::error::{Error, Result};
use crate::grad::topo_from;
use crate::graph::{Graph, NodeId, NodeKind};
use crate::op::Op;
use gorgon_core::error::fmt_shape;
use gorgon_core::DType;
use std::collections::{HashMap, HashSet};

/// A map keyed by node id with a multiplicative hash: node ids are small dense integers, and
/// reading a result (`node.value`, a function's outputs) looks one up per call, where
/// SipHash (the std default) costs more than the rest of the lookup.
pub type NodeMap<V> = HashMap<NodeId, V, std::hash::BuildHasherDefault<NodeIdHasher>>;

/// The hasher of [`NodeMap`]: Fibonacci hashing of the id (a bijection on the low bits, and
/// well-mixed high bits for hashbrown's control bytes). Not for untrusted keys.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeIdHasher(u64);

impl std::hash::Hasher for NodeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Where an instruction reads an operand from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// A program buffer.
    Buf(usize),
    /// The stored value of a leaf or constant node.
    Stored(NodeId),
}

/// One instruction: `out = op(inputs)`.
#[derive(Clone, Debug)]
pub struct Instr {
    /// The node this instruction computes.
    pub node: NodeId,
    /// The operation.
    pub op: Op,
    /// Operand slots.
    pub inputs: Vec<Slot>,
    /// Output buffer.
    pub out: usize,
}

/// A buffer's element type and shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BufSpec {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
}

/// A compiled program.
#[derive(Clone, Debug, Default)]
pub struct Program {
    /// Instructions in execution order.
    pub instrs: Vec<Instr>,
    /// Buffers to allocate once.
    pub buffers: Vec<BufSpec>,
    /// Op nodes whose value is available in a buffer after a run.
    pub node_buf: NodeMap<usize>,
    /// Leaves the program reads (each must be bound before a run).
    pub leaves: Vec<NodeId>,
    /// Post-run updates `(target leaf, source)`.
    pub updates: Vec<(NodeId, Slot)>,
    /// Text labels of nodes, for printing and errors.
    pub labels: HashMap<NodeId, String>,
}

impl Program {
    /// Total bytes of planned buffers.
    pub fn buffer_bytes(&self) -> usize {
        self.buffers.iter().map(|b| b.shape.iter().fold(b.dtype.size_of(), |acc, &d| acc.saturating_mul(d))).fold(0usize, |a, b| a.saturating_add(b))
    }

    /// One line per instruction, e.g. `[0] z = add(x, y) :: () float64 -> buf0`.
    pub fn listing(&self) -> Vec<String> {
        let name = |s: &Slot| match s {
            Slot::Buf(b) => format!("buf{b}"),
            Slot::Stored(n) => self.labels.get(n).cloned().unwrap_or_else(|| format!("#{n}")),
        };
        self.instrs
            .iter()
            .enumerate()
            .map(|(i, ins)| {
                let spec = &self.buffers[ins.out];
                format!(
                    "[{i}] {} = {}({}) :: {} {} -> buf{}",
                    self.labels.get(&ins.node).cloned().unwrap_or_default(),
                    ins.op.name(),
                    ins.inputs.iter().map(name).collect::<Vec<_>>().join(", "),
                    fmt_shape(&spec.shape),
                    spec.dtype,
                    ins.out
                )
            })
            .collect()
    }
}

/// What to compile.
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// Only these nodes and their ancestors (None: the whole graph).
    pub outputs: Option<Vec<NodeId>>,
    /// Nodes whose buffers must survive the run even if internal.
    pub keep: Vec<NodeId>,
    /// Keep every node's buffer (no reuse), as the eager machine does.
    pub keep_all: bool,
    /// Fuse trees of elementwise ops into single block-wise loops (default on; the
    /// environment variable `GORGON_FUSE=0` turns it off).
    pub no_fuse: bool,
    /// Also fuse a sum or mean over trailing axes with the elementwise tree that feeds it
    /// (`sum(x * x)` in one pass, see [`crate::fused::reduce`]); needs fusion on. Backends
    /// without a fused-reduction kernel leave it off.
    pub fuse_reductions: bool,
}

fn fusion_enabled(opts: &CompileOptions) -> bool {
    !opts.no_fuse && !opts.keep_all && std::env::var("GORGON_FUSE").map(|v| v != "0").unwrap_or(true)
}

/// An elementwise float node whose operands all have its dtype and either its shape or one element.
fn conformant(g: &Graph, n: NodeId) -> bool {
    let node = g.node(n);
    let NodeKind::Op(op) = &node.kind else { return false };
    if !op.is_elementwise() || !node.dtype.is_float() {
        return false;
    }
    let numel: usize = node.shape.iter().product();
    numel > 1
        && node.inputs.iter().all(|&i| {
            let inp = g.node(i);
            inp.dtype == node.dtype && (inp.shape == node.shape || inp.shape.iter().product::<usize>() == 1)
        })
}

/// Instructions before buffer planning: (node, op, operand nodes), with fusion applied.
fn plan_instrs(g: &Graph, op_nodes: &[NodeId], keep: &HashSet<NodeId>, fuse: bool, fuse_reductions: bool) -> Vec<(NodeId, Op, Vec<NodeId>)> {
    let in_plan: HashSet<NodeId> = op_nodes.iter().copied().collect();
    let mut consumers: HashMap<NodeId, HashSet<NodeId>> = HashMap::new();
    for &n in op_nodes {
        for &i in &g.node(n).inputs {
            consumers.entry(i).or_default().insert(n);
        }
    }
    let mut root_of: HashMap<NodeId, NodeId> = HashMap::new();
    if fuse {
        for &n in op_nodes.iter().rev() {
            if !conformant(g, n) {
                continue;
            }
            let sole = consumers.get(&n).filter(|c| c.len() == 1).and_then(|c| c.iter().next().copied());
            let absorbed = match sole {
                Some(c) if !keep.contains(&n) && in_plan.contains(&c) && g.node(c).shape == g.node(n).shape => root_of.get(&c).copied(),
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
    let reductions = if fuse && fuse_reductions { fusable_reductions(g, op_nodes, keep, &consumers, &root_of) } else { HashMap::new() };
    let swallowed: HashSet<NodeId> = reductions.values().map(|&(i, ..)| i).collect();
    let mut out = Vec::with_capacity(op_nodes.len());
    for &n in op_nodes {
        let node = g.node(n);
        let NodeKind::Op(op) = &node.kind else { continue };
        if swallowed.contains(&n) {
            continue;
        }
        if let Some(&(i, fold, row_len)) = reductions.get(&n) {
            let (mut steps, mut ext, mut memo) = (Vec::new(), Vec::new(), HashMap::new());
            build_steps(g, i, i, &root_of, &mut steps, &mut ext, &mut memo);
            let expr = std::sync::Arc::new(crate::fused::FusedExpr { steps });
            out.push((n, Op::FusedReduce { expr, fold, row_len }, ext));
            continue;
        }
        match root_of.get(&n) {
            Some(&r) if r != n => continue,
            Some(_) if members.get(&n).copied().unwrap_or(0) > 0 => {
                let mut steps = Vec::new();
                let mut ext: Vec<NodeId> = Vec::new();
                let mut memo: HashMap<NodeId, usize> = HashMap::new();
                build_steps(g, n, n, &root_of, &mut steps, &mut ext, &mut memo);
                out.push((n, Op::Fused(std::sync::Arc::new(crate::fused::FusedExpr { steps })), ext));
            }
            _ => out.push((n, op.clone(), node.inputs.clone())),
        }
    }
    out
}

/// Sums and means that absorb the elementwise group feeding them: reduction node →
/// (the group's root, the fold, elements per row). The group must be the reduction's sole
/// input, read by nothing else and not kept, and the reduced axes must be the trailing ones
/// (so each output element folds one contiguous row).
fn fusable_reductions(
    g: &Graph,
    op_nodes: &[NodeId],
    keep: &HashSet<NodeId>,
    consumers: &HashMap<NodeId, HashSet<NodeId>>,
    root_of: &HashMap<NodeId, NodeId>,
) -> HashMap<NodeId, (NodeId, crate::fused::reduce::RowFold, usize)> {
    use crate::fused::reduce::RowFold;
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
        if !sole || keep.contains(&i) || root_of.get(&i) != Some(&i) || g.node(i).dtype != g.node(n).dtype {
            continue;
        }
        let shape = &g.node(i).shape;
        let mut ax = axes.clone();
        ax.sort_unstable();
        ax.dedup();
        let first = shape.len().saturating_sub(ax.len());
        if ax.is_empty() || ax.iter().enumerate().any(|(k, &a)| a != first + k) {
            continue;
        }
        found.insert(n, (i, fold, shape[first..].iter().product()));
    }
    found
}

fn build_steps(
    g: &Graph,
    n: NodeId,
    root: NodeId,
    root_of: &HashMap<NodeId, NodeId>,
    steps: &mut Vec<crate::fused::Step>,
    ext: &mut Vec<NodeId>,
    memo: &mut HashMap<NodeId, usize>,
) -> usize {
    use crate::fused::Step;
    if let Some(&s) = memo.get(&n) {
        return s;
    }
    let inside = n == root || root_of.get(&n) == Some(&root);
    let step = if !inside {
        let k = ext.iter().position(|&e| e == n).unwrap_or_else(|| {
            ext.push(n);
            ext.len() - 1
        });
        Step::Input(k)
    } else {
        let ins: Vec<usize> = g.node(n).inputs.iter().map(|&i| build_steps(g, i, root, root_of, steps, ext, memo)).collect();
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

/// Compiles `g` into a program.
pub fn compile(g: &Graph, opts: &CompileOptions) -> Result<Program> {
    let mut roots: Vec<NodeId> = match &opts.outputs {
        Some(o) => {
            for &n in o {
                g.try_node(n)?;
            }
            o.clone()
        }
        None => (0..g.len()).collect(),
    };
    let updates: Vec<(NodeId, NodeId)> = g.updates.iter().copied().filter(|(_, v)| opts.outputs.is_none() || roots.contains(v)).collect();
    roots.extend(updates.iter().map(|(_, v)| *v));
    let order = topo_from(g, &roots);
    // Buffers that survive the run: the requested outputs (or, for a whole-graph machine,
    // every node the user built plus every sink), gradients, watched nodes, update sources.
    let mut keep: HashSet<NodeId> = opts.keep.iter().copied().collect();
    keep.extend(g.grad_of.values().copied());
    keep.extend(updates.iter().map(|(_, v)| *v));
    match &opts.outputs {
        Some(o) => keep.extend(o.iter().copied()),
        None => {
            let mut used = vec![false; g.len()];
            for &n in &order {
                for &i in &g.node(n).inputs {
                    used[i] = true;
                }
            }
            keep.extend(order.iter().copied().filter(|&n| !g.node(n).is_grad || !used[n]));
        }
    }
    let op_nodes: Vec<NodeId> = order.iter().copied().filter(|&n| matches!(g.node(n).kind, NodeKind::Op(_))).collect();
    let vinstrs = plan_instrs(g, &op_nodes, &keep, fusion_enabled(opts), opts.fuse_reductions);
    // Liveness: index of the last instruction reading each node.
    let mut last_use: HashMap<NodeId, usize> = HashMap::new();
    for (i, (_, _, ins)) in vinstrs.iter().enumerate() {
        for &inp in ins {
            last_use.insert(inp, i);
        }
    }
    let mut prog = Program::default();
    let mut free: HashMap<BufSpec, Vec<usize>> = HashMap::new();
    for &n in &order {
        let node = g.node(n);
        prog.labels.insert(n, node.label(n));
        if matches!(node.kind, NodeKind::Leaf) {
            prog.leaves.push(n);
        }
    }
    for (i, (n, op, ins)) in vinstrs.into_iter().enumerate() {
        let node = g.node(n);
        let spec = BufSpec { dtype: node.dtype, shape: node.shape.clone() };
        let out = match free.get_mut(&spec).and_then(|v| v.pop()) {
            Some(b) => b,
            None => {
                prog.buffers.push(spec.clone());
                prog.buffers.len() - 1
            }
        };
        let inputs: Vec<Slot> = ins
            .iter()
            .map(|&inp| match g.node(inp).kind {
                NodeKind::Op(_) => Slot::Buf(prog.node_buf[&inp]),
                _ => Slot::Stored(inp),
            })
            .collect();
        prog.instrs.push(Instr { node: n, op, inputs, out });
        prog.node_buf.insert(n, out);
        // Free operands whose last reader was this instruction.
        if !opts.keep_all {
            let mut seen = HashSet::new();
            for &inp in &ins {
                if !seen.insert(inp) || keep.contains(&inp) || last_use.get(&inp) != Some(&i) {
                    continue;
                }
                if let NodeKind::Op(_) = g.node(inp).kind {
                    let b = prog.node_buf.remove(&inp).expect("operand has a buffer");
                    free.entry(prog.buffers[b].clone()).or_default().push(b);
                }
            }
        }
    }
    for (t, v) in updates {
        let slot = match g.node(v).kind {
            NodeKind::Op(_) => Slot::Buf(*prog.node_buf.get(&v).ok_or_else(|| Error::Internal("update source has no buffer".into()))?),
            _ => Slot::Stored(v),
        };
        prog.updates.push((t, slot));
    }
    Ok(prog)
}
