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

mod fusion;
pub use fusion::Remat;

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
    /// Nodes the user can read that were fused away (no buffer): how to recompute each
    /// from values that survive the run (see [`CompileOptions::remat`]).
    pub remat: NodeMap<Recompute>,
}

/// A fused-away node's value, recomputed on demand: `expr` over `inputs`.
#[derive(Clone, Debug)]
pub struct Recompute {
    /// The node's elementwise subtree.
    pub expr: std::sync::Arc<crate::fused::FusedExpr>,
    /// Where its operands live after a run (kept buffers or stored values).
    pub inputs: Vec<Slot>,
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
    /// Fuse operands that broadcast to the tree's shape (a bias row, a per-channel
    /// constant), not only full-size operands and single elements; needs fusion on.
    pub fuse_broadcasts: bool,
    /// Whole-graph programs (no `outputs`) may fuse away elementwise nodes the user built
    /// (which otherwise keep a buffer each so `node.value` works); their values are then
    /// recomputed on demand from [`Program::remat`]. Needs fusion on.
    pub remat: bool,
}

fn fusion_enabled(opts: &CompileOptions) -> bool {
    !opts.no_fuse && !opts.keep_all && std::env::var("GORGON_FUSE").map(|v| v != "0").unwrap_or(true)
}

/// Soft nodes have at least this many elements: below it, separate instructions take the
/// VM's small-operand fast path (a few ns each) and fusing saves nothing.
pub const SOFT_MIN_ELEMENTS: usize = 16 * 1024;

/// User-built elementwise nodes of a whole-graph program that may be fused away and
/// recomputed: large (see [`SOFT_MIN_ELEMENTS`]), not watched, not gradients or update
/// sources, and reading only leaves, constants and other user-built nodes (whose buffers
/// survive the run).
fn soft_nodes(g: &Graph, op_nodes: &[NodeId], opts: &CompileOptions, updates: &[(NodeId, NodeId)]) -> HashSet<NodeId> {
    let grads: HashSet<NodeId> = g.grad_of.values().copied().collect();
    let user = |i: NodeId| !matches!(g.node(i).kind, NodeKind::Op(_)) || !g.node(i).is_grad;
    op_nodes
        .iter()
        .copied()
        .filter(|&n| {
            let node = g.node(n);
            !node.is_grad
                && node.shape.iter().product::<usize>() >= SOFT_MIN_ELEMENTS
                && g.op_of(n).is_some_and(Op::is_elementwise)
                && !opts.keep.contains(&n)
                && !grads.contains(&n)
                && !updates.iter().any(|&(_, v)| v == n)
                && node.inputs.iter().all(|&i| user(i))
        })
        .collect()
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
    let on = fusion_enabled(opts);
    let soft = if on && opts.remat && opts.outputs.is_none() { soft_nodes(g, &op_nodes, opts, &updates) } else { HashSet::new() };
    let plan = fusion::plan(g, &op_nodes, &keep, &soft, fusion::Fusion { on, reductions: opts.fuse_reductions, broadcasts: opts.fuse_broadcasts });
    let vinstrs = plan.instrs;
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
    for (n, r) in plan.remat {
        let slots: Option<Vec<Slot>> = r
            .inputs
            .iter()
            .map(|&i| match g.node(i).kind {
                NodeKind::Op(_) => prog.node_buf.get(&i).map(|&b| Slot::Buf(b)),
                _ => Some(Slot::Stored(i)),
            })
            .collect();
        // Operands are kept nodes by construction; were one not, the node has no value.
        if let Some(inputs) = slots {
            prog.remat.insert(n, Recompute { expr: r.expr, inputs });
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
