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
    pub node_buf: HashMap<NodeId, usize>,
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
        self.buffers.iter().map(|b| b.shape.iter().product::<usize>() * b.dtype.size_of()).sum()
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
    let grads: HashSet<NodeId> = g.grad_of.values().copied().collect();
    let mut keep: HashSet<NodeId> = opts.keep.iter().copied().collect();
    keep.extend(roots.iter().copied());
    keep.extend(grads.iter().copied());
    for &n in &order {
        if !g.node(n).is_grad {
            keep.insert(n);
        }
    }
    // Liveness: index of the last instruction reading each node.
    let mut last_use: HashMap<NodeId, usize> = HashMap::new();
    let op_nodes: Vec<NodeId> = order.iter().copied().filter(|&n| matches!(g.node(n).kind, NodeKind::Op(_))).collect();
    for (i, &n) in op_nodes.iter().enumerate() {
        for &inp in &g.node(n).inputs {
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
    for (i, &n) in op_nodes.iter().enumerate() {
        let node = g.node(n);
        let NodeKind::Op(op) = &node.kind else { unreachable!() };
        let spec = BufSpec { dtype: node.dtype, shape: node.shape.clone() };
        let out = match free.get_mut(&spec).and_then(|v| v.pop()) {
            Some(b) => b,
            None => {
                prog.buffers.push(spec.clone());
                prog.buffers.len() - 1
            }
        };
        let inputs: Vec<Slot> = node
            .inputs
            .iter()
            .map(|&inp| match g.node(inp).kind {
                NodeKind::Op(_) => Slot::Buf(prog.node_buf[&inp]),
                _ => Slot::Stored(inp),
            })
            .collect();
        prog.instrs.push(Instr { node: n, op: op.clone(), inputs, out });
        prog.node_buf.insert(n, out);
        // Free operands whose last reader was this instruction.
        if !opts.keep_all {
            let mut seen = HashSet::new();
            for &inp in &node.inputs {
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
