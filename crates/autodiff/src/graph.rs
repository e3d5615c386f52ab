//! The expression graph: an arena of nodes (leaves, constants, op nodes) with type/shape
//! inference at build time, hash-consing of identical subexpressions, constant folding and
//! (optionally) numerical-stabilization rewrites. Leaf and constant values live here; op
//! values come from the last machine that ran the graph ([`ResultSource`]).

use crate::error::{Error, Result};
use crate::op::Op;
use gorgon_core::error::fmt_shape;
use gorgon_core::{DType, Tensor, TensorView};
use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// Index of a node in its graph's arena.
pub type NodeId = usize;

/// What a node is.
#[derive(Clone, Debug)]
pub enum NodeKind {
    /// An input or variable: holds a value bound by `let`, an initializer, a solver or `load`.
    Leaf,
    /// A constant (its value never changes).
    Constant,
    /// The result of an operation on other nodes.
    Op(Op),
}

/// One node of the graph.
#[derive(Clone, Debug)]
pub struct Node {
    /// What the node is.
    pub kind: NodeKind,
    /// Operand node ids (empty for leaves and constants).
    pub inputs: Vec<NodeId>,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// User-given or generated name.
    pub name: Option<String>,
    /// `file.py:LINE` of the user code that built the node.
    pub location: Option<String>,
    /// True for nodes made by differentiation.
    pub is_grad: bool,
}

impl Node {
    /// The name, or a generated `op#id` label.
    pub fn label(&self, id: NodeId) -> String {
        match (&self.name, &self.kind) {
            (Some(n), _) => n.clone(),
            (None, NodeKind::Op(op)) => format!("{}#{}", op.name(), id),
            (None, NodeKind::Constant) => format!("const#{id}"),
            (None, NodeKind::Leaf) => format!("input#{id}"),
        }
    }
    /// `name (2, 3) float32` for error messages.
    pub fn describe(&self, id: NodeId) -> String {
        format!("{} {} {}", self.label(id), fmt_shape(&self.shape), self.dtype)
    }
}

/// A value bound to a leaf whose memory belongs to someone else (e.g. a NumPy array the
/// bridge keeps alive). Read-only; it must be C-contiguous.
pub trait ExternalTensor: Send + Sync {
    /// A view of the data.
    fn view(&self) -> TensorView<'_>;
}

/// A leaf's or constant's value.
#[derive(Clone)]
pub enum Value {
    /// Owned by the graph.
    Owned(Tensor),
    /// Borrowed from outside without a copy.
    External(Arc<dyn ExternalTensor>),
}

impl Value {
    /// A view of the value.
    pub fn view(&self) -> TensorView<'_> {
        match self {
            Value::Owned(t) => t.view(),
            Value::External(e) => e.view(),
        }
    }
    /// Makes the value owned (copying external data once) and returns it mutably.
    pub fn make_owned(&mut self) -> &mut Tensor {
        if let Value::External(e) = self {
            *self = Value::Owned(e.view().to_owned());
        }
        match self {
            Value::Owned(t) => t,
            Value::External(_) => unreachable!("converted above"),
        }
    }
}

/// Where op-node values come from after a run (implemented by machines).
pub trait ResultSource: Send + Sync {
    /// A copy of the node's value from the last run, if this source computed it.
    fn value_of(&self, node: NodeId) -> Option<Result<Tensor>>;
    /// Calls `f` with a view of the node's value without copying (None: not computed here).
    fn visit(&self, node: NodeId, f: &mut dyn FnMut(&TensorView<'_>) -> Result<()>) -> Option<Result<()>>;
    /// Overwrites the node's value from the last run (same shape and dtype), e.g. a gradient
    /// averaged across processes between `run_all` and a solver step.
    fn overwrite(&self, node: NodeId, value: &TensorView<'_>) -> Option<Result<()>>;
    /// The newer value of a leaf that this machine updated in its own memory (a solver
    /// step on a GPU), for [`Graph::mark_newer_on`]; `None` when it holds none.
    fn leaf_value(&self, _node: NodeId) -> Option<Result<Tensor>> {
        None
    }
    /// Applies one solver step to `params` where their values and gradients live (a GPU
    /// machine updates its device copies and marks the leaves with
    /// [`Graph::mark_newer_on`]). `None`: this source cannot, and the host path runs.
    fn device_step(
        &self,
        _rule: &crate::solver::Rule,
        _prep: &gorgon_core::kernels::optim::GradPrep,
        _t: u64,
        _params: &[NodeId],
        _states: &mut [crate::solver::StateBufs<'_>],
    ) -> Option<Result<()>> {
        None
    }
}

/// The expression graph.
pub struct Graph {
    nodes: Vec<Node>,
    values: Vec<Option<Value>>,
    /// Per-node value version: bumped whenever a stored value is bound or handed out
    /// mutably, so device machines re-upload only what changed (see [`Graph::value_version`]).
    versions: Vec<u64>,
    dedup: HashMap<(String, Vec<NodeId>), NodeId>,
    /// Whether stabilization rewrites are applied as nodes are built.
    pub stabilize: bool,
    /// The gradient node most recently made for each node by [`crate::grad::grad`].
    pub grad_of: HashMap<NodeId, NodeId>,
    /// `(target leaf, value node)`: after a run, the value is copied into the leaf.
    pub updates: Vec<(NodeId, NodeId)>,
    results: Option<Weak<dyn ResultSource>>,
    /// Leaves whose current value lives in a machine's memory (updated there by a solver
    /// step); the stored host value is older until [`crate::vm::sync_leaves`] fetches it.
    newer: HashMap<NodeId, Weak<dyn ResultSource>>,
    id: u64,
}

static GRAPH_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Default for Graph {
    fn default() -> Self {
        Self::new(true)
    }
}

impl Graph {
    /// An empty graph.
    ///
    /// ```
    /// use gorgon_autodiff::{Graph, attrs::Attrs};
    /// use gorgon_core::DType;
    /// let mut g = Graph::new(true);
    /// let x = g.leaf(DType::F64, &[], Some("x".into()), None).unwrap();
    /// let y = g.leaf(DType::F64, &[], Some("y".into()), None).unwrap();
    /// let z = g.apply_named("add", &[x, y], &Attrs::new(), None).unwrap();
    /// assert_eq!(g.node(z).shape, Vec::<usize>::new());
    /// ```
    pub fn new(stabilize: bool) -> Graph {
        Graph {
            nodes: Vec::new(),
            values: Vec::new(),
            versions: Vec::new(),
            dedup: HashMap::new(),
            stabilize,
            grad_of: HashMap::new(),
            updates: Vec::new(),
            results: None,
            newer: HashMap::new(),
            id: GRAPH_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// A process-unique id of this graph.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A node by id (ids come from this graph; an unknown id panics — the bridge validates).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// A node by id, or a GraphError.
    pub fn try_node(&self, id: NodeId) -> Result<&Node> {
        self.nodes.get(id).ok_or_else(|| Error::Graph(format!("node id {id} does not belong to this graph")))
    }

    /// All nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Renames a node.
    pub fn set_name(&mut self, id: NodeId, name: String) -> Result<()> {
        self.try_node(id)?;
        self.nodes[id].name = Some(name);
        Ok(())
    }

    fn push(&mut self, node: Node, value: Option<Value>) -> NodeId {
        self.nodes.push(node);
        self.versions.push(value.is_some() as u64);
        self.values.push(value);
        self.nodes.len() - 1
    }

    /// A new input/variable node of the given dtype and shape.
    pub fn leaf(&mut self, dtype: DType, shape: &[usize], name: Option<String>, location: Option<String>) -> Result<NodeId> {
        gorgon_core::tensor::checked_numel(shape)?;
        Ok(self.push(Node { kind: NodeKind::Leaf, inputs: vec![], dtype, shape: shape.to_vec(), name, location, is_grad: false }, None))
    }

    /// A constant node. Small constants with equal contents are shared.
    pub fn constant(&mut self, value: Tensor, name: Option<String>, location: Option<String>) -> NodeId {
        let key = if value.len() <= 16 && name.is_none() {
            Some((format!("const:{}:{:?}:{:?}", value.dtype(), value.shape(), value.to_vec_f64().iter().map(|v| v.to_bits()).collect::<Vec<_>>()), vec![]))
        } else {
            None
        };
        if let Some(k) = &key {
            if let Some(&id) = self.dedup.get(k) {
                return id;
            }
        }
        let node = Node { kind: NodeKind::Constant, inputs: vec![], dtype: value.dtype(), shape: value.shape().to_vec(), name, location, is_grad: false };
        let id = self.push(node, Some(Value::Owned(value)));
        if let Some(k) = key {
            self.dedup.insert(k, id);
        }
        id
    }

    /// A scalar constant of a dtype.
    pub fn scalar(&mut self, dtype: DType, v: f64) -> NodeId {
        self.constant(Tensor::scalar(dtype, v), None, None)
    }

    /// True when the node is a constant equal to `v` everywhere.
    pub fn is_const_value(&self, id: NodeId, v: f64) -> bool {
        matches!(self.nodes[id].kind, NodeKind::Constant)
            && self.values[id].as_ref().map(|val| val.view().to_owned().to_vec_f64().iter().all(|x| *x == v)).unwrap_or(false)
    }

    /// The op of a node, if it is an op node.
    pub fn op_of(&self, id: NodeId) -> Option<&Op> {
        match &self.nodes[id].kind {
            NodeKind::Op(op) => Some(op),
            _ => None,
        }
    }

    /// Parses an op by name and builds it (see [`Op::parse`]).
    pub fn apply_named(&mut self, name: &str, inputs: &[NodeId], attrs: &crate::attrs::Attrs, location: Option<String>) -> Result<NodeId> {
        for &i in inputs {
            self.try_node(i)?;
        }
        let shapes: Vec<&[usize]> = inputs.iter().map(|&i| self.nodes[i].shape.as_slice()).collect();
        let op = Op::parse(name, attrs, &shapes).map_err(|e| self.annotate(e, name, inputs, location.as_deref()))?;
        self.apply(op, inputs, location)
    }

    /// Adds operand descriptions and the location to an error.
    pub fn annotate(&self, e: Error, op: &str, inputs: &[NodeId], location: Option<&str>) -> Error {
        let operands: Vec<String> = inputs.iter().filter(|&&i| i < self.nodes.len()).map(|&i| self.nodes[i].describe(i)).collect();
        let mut msg = String::new();
        if !operands.is_empty() {
            msg.push_str(&format!(" [op {op}; operands: {}]", operands.join(", ")));
        }
        if let Some(l) = location {
            msg.push_str(&format!(" (built at {l})"));
        }
        let add = |m: String| if m.starts_with(op) { format!("{m}{msg}") } else { format!("{op}: {m}{msg}") };
        match e {
            Error::Shape(m) => Error::Shape(add(m)),
            Error::DType(m) => Error::DType(add(m)),
            Error::Graph(m) => Error::Graph(add(m)),
            other => other,
        }
    }

    /// Builds an op node: infers dtype/shape (errors name op, operands and location),
    /// applies stabilization rewrites, folds constants and reuses an identical node.
    pub fn apply(&mut self, op: Op, inputs: &[NodeId], location: Option<String>) -> Result<NodeId> {
        for &i in inputs {
            self.try_node(i)?;
        }
        let ins: Vec<(DType, &[usize])> = inputs.iter().map(|&i| (self.nodes[i].dtype, self.nodes[i].shape.as_slice())).collect();
        let (dtype, shape) = op.infer(&ins).map_err(|e| self.annotate(e, &op.name(), inputs, location.as_deref()))?;
        gorgon_core::tensor::checked_numel(&shape).map_err(Error::from)?;
        if self.stabilize {
            if let Some(id) = crate::stabilize::rewrite(self, &op, inputs, location.clone())? {
                return Ok(id);
            }
        }
        let key = (format!("{op:?}"), inputs.to_vec());
        if !op.is_random() {
            if let Some(&id) = self.dedup.get(&key) {
                return Ok(id);
            }
        }
        let foldable = !op.is_random()
            && !matches!(op, Op::Custom(_) | Op::CustomGrad { .. })
            && !inputs.is_empty()
            && inputs.iter().all(|&i| matches!(self.nodes[i].kind, NodeKind::Constant))
            && shape.iter().product::<usize>() <= 1 << 16;
        if foldable {
            let mut out = Tensor::try_zeros(dtype, &shape)?;
            let views: Vec<TensorView> = inputs.iter().map(|&i| self.values[i].as_ref().expect("constants hold values").view()).collect();
            if op.forward(&views, &mut out).is_ok() {
                drop(views);
                let id = self.constant(out, None, location);
                return Ok(id);
            }
        }
        let node = Node { kind: NodeKind::Op(op.clone()), inputs: inputs.to_vec(), dtype, shape, name: None, location, is_grad: false };
        let id = self.push(node, None);
        if !op.is_random() {
            self.dedup.insert(key, id);
        }
        Ok(id)
    }

    /// Marks a node as made by differentiation.
    pub fn mark_grad(&mut self, id: NodeId) {
        if matches!(self.nodes[id].kind, NodeKind::Op(_)) {
            self.nodes[id].is_grad = true;
        }
    }

    /// Binds a value to a leaf (`let`). Shape must match; dtype must equal the node's.
    pub fn let_value(&mut self, id: NodeId, value: Value) -> Result<()> {
        let node = self.try_node(id)?;
        if !matches!(node.kind, NodeKind::Leaf) {
            return Err(Error::Graph(format!("let: {} is not an input or variable node (it is {}); only leaves can be bound", node.label(id), kind_name(&node.kind))));
        }
        let (dt, sh) = { let v = value.view(); (v.dtype(), v.shape().to_vec()) };
        // Element-wise, not `!=`: slice equality calls memcmp, and glibc's AVX-512 memcmp on the
        // dangling pointer of an empty Vec (every 0-d shape) costs ~0.4 µs (masked-load assist).
        if sh.len() != node.shape.len() || sh.iter().zip(&node.shape).any(|(a, b)| a != b) {
            return Err(Error::Shape(format!("let: value of shape {} does not fit node {} of shape {}", fmt_shape(&sh), node.label(id), fmt_shape(&node.shape))));
        }
        if dt != node.dtype {
            return Err(Error::DType(format!("let: value of dtype {} does not fit node {} of dtype {}", dt, node.label(id), node.dtype)));
        }
        self.values[id] = Some(value);
        self.versions[id] = self.versions[id].wrapping_add(1);
        if !self.newer.is_empty() {
            self.newer.remove(&id);
        }
        Ok(())
    }

    /// For rebinding a 0-d leaf in place: the leaf's current owned value, counted as a new
    /// binding as [`Graph::let_value`] counts one (version bumped, a newer copy held by a
    /// machine forgotten), for the caller to overwrite with the new element (of the leaf's
    /// dtype). `None`, with nothing changed, when `id` is not a 0-d leaf holding an owned
    /// value (bind with `let_value` then). Saves an allocation per `let` of a scalar.
    ///
    /// ```
    /// use gorgon_autodiff::{Graph, graph::Value};
    /// use gorgon_core::{DType, Tensor};
    /// let mut g = Graph::new(true);
    /// let x = g.leaf(DType::F64, &[], None, None).unwrap();
    /// assert!(g.rebind_scalar(x).is_none()); // no value yet
    /// g.let_value(x, Value::Owned(Tensor::scalar(DType::F64, 1.0))).unwrap();
    /// if let Some(Tensor::F64(a)) = g.rebind_scalar(x) {
    ///     a.fill(2.5);
    /// }
    /// assert_eq!(g.value(x).unwrap().to_vec_f64(), vec![2.5]);
    /// ```
    pub fn rebind_scalar(&mut self, id: NodeId) -> Option<&mut Tensor> {
        let node = self.nodes.get(id)?;
        if !matches!(node.kind, NodeKind::Leaf) || !node.shape.is_empty() {
            return None;
        }
        match self.values[id].as_mut()? {
            Value::Owned(t) => {
                self.versions[id] = self.versions[id].wrapping_add(1);
                if !self.newer.is_empty() {
                    self.newer.remove(&id);
                }
                Some(t)
            }
            Value::External(_) => None,
        }
    }

    /// Records that machine `src` now holds a newer value of leaf `id` than the graph (it
    /// updated its own copy); returns the leaf's new version, which that machine keeps as
    /// the version of its copy. Other machines see the new version and, before uploading,
    /// fetch the value through [`crate::vm::sync_leaves`].
    pub fn mark_newer_on(&mut self, id: NodeId, src: Weak<dyn ResultSource>) -> u64 {
        self.versions[id] = self.versions[id].wrapping_add(1);
        self.newer.insert(id, src);
        self.versions[id]
    }

    /// True when some machine holds a newer value of a leaf than the graph.
    pub fn has_newer(&self) -> bool {
        !self.newer.is_empty()
    }

    /// The machine holding a newer value of leaf `id`, if any (it may be gone).
    pub fn newer_on(&self, id: NodeId) -> Option<&Weak<dyn ResultSource>> {
        self.newer.get(&id)
    }

    /// The leaves whose newer value lives in a machine, with that machine.
    pub fn newer_leaves(&self) -> Vec<(NodeId, Weak<dyn ResultSource>)> {
        self.newer.iter().map(|(&k, v)| (k, v.clone())).collect()
    }

    /// Stores a leaf's value fetched from the machine that held it newer, if the leaf is
    /// still at `version` (nothing re-bound it meanwhile). The version does not change:
    /// machine copies at that version are already current.
    pub fn install_fetched(&mut self, id: NodeId, value: Tensor, version: u64) {
        if self.versions.get(id) == Some(&version) && self.newer.remove(&id).is_some() {
            self.values[id] = Some(Value::Owned(value));
        }
    }

    /// Forgets that a leaf's newer value lives elsewhere (its machine is gone).
    pub fn clear_newer(&mut self, id: NodeId) {
        self.newer.remove(&id);
    }

    /// The stored value of a leaf or constant.
    pub fn stored_value(&self, id: NodeId) -> Option<&Value> {
        self.values.get(id).and_then(|v| v.as_ref())
    }

    /// Mutable stored value of a leaf (made owned first), for solvers and updates.
    pub fn stored_value_mut(&mut self, id: NodeId) -> Option<&mut Tensor> {
        let v = self.values.get_mut(id).and_then(|v| v.as_mut())?;
        // The caller may write through the reference: count it as a new value.
        self.versions[id] = self.versions[id].wrapping_add(1);
        Some(v.make_owned())
    }

    /// A counter that changes every time the stored value of `id` is bound (`let`) or handed
    /// out mutably ([`Graph::stored_value_mut`], e.g. by a solver step); 0 for a node that never
    /// had a value. Device machines compare it with the version they uploaded last, so an
    /// unchanged leaf is not copied again. (Writes into an external buffer behind the graph's
    /// back, e.g. a NumPy array mutated in place after `let`, are not seen.)
    ///
    /// ```
    /// use gorgon_autodiff::{Graph, graph::Value};
    /// use gorgon_core::{DType, Tensor};
    /// let mut g = Graph::new(true);
    /// let x = g.leaf(DType::F64, &[], None, None).unwrap();
    /// assert_eq!(g.value_version(x), 0);
    /// g.let_value(x, Value::Owned(Tensor::scalar(DType::F64, 1.0))).unwrap();
    /// let v1 = g.value_version(x);
    /// g.stored_value_mut(x).unwrap();
    /// assert_ne!(g.value_version(x), v1);
    /// ```
    pub fn value_version(&self, id: NodeId) -> u64 {
        self.versions.get(id).copied().unwrap_or(0)
    }

    /// Registers the machine whose results `value()` reads for op nodes.
    pub fn set_results(&mut self, src: Weak<dyn ResultSource>) {
        self.results = Some(src);
    }

    /// True when the registered result source (see [`Graph::set_results`]) is the object at
    /// `src` (compared by address, as `Weak::as_ptr` gives it).
    pub fn results_are(&self, src: *const ()) -> bool {
        self.results.as_ref().is_some_and(|w| std::ptr::addr_eq(w.as_ptr(), src))
    }

    /// The machine whose results `value()` reads, if it is still alive.
    pub fn result_source(&self) -> Option<Arc<dyn ResultSource>> {
        self.results.as_ref().and_then(|w| w.upgrade())
    }

    /// A copy of a leaf's or constant's stored value. Op-node values live in machines: use
    /// [`crate::vm::node_value`], which asks the machine after releasing the graph lock (a
    /// graph method must never wait on a machine while the caller holds the graph lock).
    /// After a solver step on a GPU machine a leaf's newer value lives in that machine
    /// ([`Graph::has_newer`]); `node_value` fetches it, this method returns the graph's copy.
    pub fn value(&self, id: NodeId) -> Result<Tensor> {
        self.try_node(id)?;
        match self.stored_value(id) {
            Some(v) => Ok(v.view().to_owned()),
            None => Err(self.missing_value(id)),
        }
    }

    /// The error for a node that has no value (names the node and what to do).
    pub fn missing_value(&self, id: NodeId) -> Error {
        let Ok(node) = self.try_node(id) else { return Error::Graph(format!("node id {id} does not belong to this graph")) };
        match node.kind {
            NodeKind::Op(_) => Error::Graph(format!("node {} has no value: run a machine that computes it first", node.label(id))),
            _ => Error::Graph(format!("node {} has no value: bind one with let (or give it init=)", node.label(id))),
        }
    }

    /// Registers a post-run update: copy `value`'s value into leaf `target`.
    pub fn add_update(&mut self, target: NodeId, value: NodeId) -> Result<()> {
        let (t, v) = (self.try_node(target)?, self.try_node(value)?);
        if !matches!(t.kind, NodeKind::Leaf) {
            return Err(Error::Graph(format!("add_update: target {} is not a leaf", t.label(target))));
        }
        if t.shape != v.shape || t.dtype != v.dtype {
            return Err(Error::Shape(format!("add_update: {} and {} differ in shape or dtype", t.describe(target), v.describe(value))));
        }
        self.updates.retain(|(tt, _)| *tt != target);
        self.updates.push((target, value));
        Ok(())
    }

    /// Graphviz DOT text: op names, shapes and dtypes; gradient nodes drawn dashed in red.
    pub fn to_dot(&self) -> String {
        let mut s = String::from("digraph gorgon {\n  rankdir=BT;\n  node [fontname=\"Helvetica\", fontsize=10];\n");
        for (id, n) in self.nodes.iter().enumerate() {
            let what = match &n.kind {
                NodeKind::Leaf => "input".to_string(),
                NodeKind::Constant => "const".to_string(),
                NodeKind::Op(op) => op.name(),
            };
            let shape = match n.kind { NodeKind::Op(_) => "box", NodeKind::Leaf => "ellipse", NodeKind::Constant => "diamond" };
            let style = if n.is_grad { ", style=dashed, color=red, fontcolor=red" } else { "" };
            let label = format!("{}\\n{}\\n{} {}", n.label(id), what, fmt_shape(&n.shape), n.dtype).replace('"', "'");
            s.push_str(&format!("  n{id} [label=\"{label}\", shape={shape}{style}];\n"));
            for &i in &n.inputs {
                s.push_str(&format!("  n{i} -> n{id};\n"));
            }
        }
        s.push_str("}\n");
        s
    }
}

/// "a leaf", "a constant", "an op node (add)".
pub fn kind_name(k: &NodeKind) -> String {
    match k {
        NodeKind::Leaf => "a leaf".into(),
        NodeKind::Constant => "a constant".into(),
        NodeKind::Op(op) => format!("an op node ({})", op.name()),
    }
}
