//! The `Graph` pyclass: a thin handle on a [`SharedGraph`]. One native call per build step;
//! node ids are validated here (negative or unknown ids raise GraphError). Must not contain
//! graph logic: everything is delegated to `gorgon_autodiff`.

use crate::convert::{self, callbacks_exist, read_graph, write_graph};
use crate::custom::PyCustomOp;
use crate::errors::{guard, new_err, IntoPyResult, Kind};
use gorgon_autodiff::graph::{NodeKind, Value};
use gorgon_autodiff::op::Op;
use gorgon_autodiff::vm::{self, SharedGraph};
use gorgon_autodiff::Graph;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use std::sync::{Arc, RwLock};

/// An expression graph (see `gorgon_rs.Graph` for the user-facing class).
#[pyclass(frozen, name = "Graph", module = "gorgon_rs._native")]
pub struct PyGraph {
    /// The shared arena (machines hold clones of the Arc).
    pub g: SharedGraph,
    stabilize: bool,
}

fn kind_str(n: &gorgon_autodiff::graph::Node) -> String {
    match &n.kind {
        NodeKind::Leaf => "leaf".into(),
        NodeKind::Constant => "constant".into(),
        NodeKind::Op(op) if n.is_grad => format!("grad:{}", op.name()),
        NodeKind::Op(op) => format!("op:{}", op.name()),
    }
}

impl PyGraph {
    /// Binds a value, returning false when the Python layer must convert it first.
    pub fn let_impl(&self, py: Python<'_>, id: usize, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        let mut g = write_graph(py, &self.g)?;
        let n = g.try_node(id).py()?;
        if !matches!(n.kind, NodeKind::Leaf) {
            return Err(new_err(
                Kind::Graph,
                format!(
                    "let: {} is not an input or variable node (it is {}); only leaves can be bound{}",
                    n.describe(id),
                    gorgon_autodiff::graph::kind_name(&n.kind),
                    n.location.as_ref().map(|l| format!(" (built at {l})")).unwrap_or_default()
                ),
            ));
        }
        let Some(v) = convert::fast_input(value, n.dtype, &n.shape)? else { return Ok(false) };
        v.bind(&mut g, id).py()?;
        Ok(true)
    }

    /// A node's value as a new NumPy array. The graph lock is released before a machine is
    /// asked (lock order: machine state, then graph); with Python callbacks around, the whole
    /// read happens with the GIL released.
    pub fn value_impl<'py>(&self, py: Python<'py>, id: usize) -> PyResult<Bound<'py, PyAny>> {
        let mut g = read_graph(py, &self.g)?;
        // A leaf a GPU machine updated in its memory (solver step) is fetched first.
        if g.has_newer() {
            drop(g);
            let sg = &self.g;
            py.detach(|| vm::sync_leaves(sg, Some(&[id]), None)).py()?;
            g = read_graph(py, &self.g)?;
        }
        if callbacks_exist() {
            drop(g);
            let sg = &self.g;
            let t = py.detach(|| vm::node_value(sg, id)).py()?;
            return Ok(convert::tensor_to_py(py, t));
        }
        let src = {
            g.try_node(id).py()?;
            if let Some(v) = g.stored_value(id) {
                return Ok(convert::view_to_py(py, &v.view()));
            }
            let src = g.result_source();
            drop(g);
            src
        };
        if let Some(src) = src {
            let mut out = None;
            if let Some(r) = src.visit(id, &mut |v| {
                out = Some(convert::view_to_py(py, v));
                Ok(())
            }) {
                r.py()?;
                if let Some(o) = out {
                    return Ok(o);
                }
            }
        }
        Err(crate::errors::to_pyerr(read_graph(py, &self.g)?.missing_value(id)))
    }
}

/// `(id, name, shape, dtype)` of a node, as `apply_node` returns them.
type NodeFacts<'py> = (usize, Option<String>, Bound<'py, PyTuple>, Bound<'py, PyString>);

#[pymethods]
impl PyGraph {
    #[new]
    #[pyo3(signature = (stabilize = true))]
    fn new(stabilize: bool) -> PyResult<Self> {
        guard(|| Ok(PyGraph { g: Arc::new(RwLock::new(Graph::new(stabilize))), stabilize }))
    }

    /// Whether stabilization rewrites are applied.
    #[getter]
    fn stabilize(&self) -> bool {
        self.stabilize
    }

    /// A process-unique id of the graph.
    #[getter]
    fn id(&self, py: Python<'_>) -> PyResult<u64> {
        guard(|| Ok(read_graph(py, &self.g)?.id()))
    }

    /// An input/variable node.
    #[pyo3(signature = (dtype, shape, name = None, location = None))]
    fn leaf(&self, py: Python<'_>, dtype: &str, shape: Vec<i64>, name: Option<String>, location: Option<String>) -> PyResult<usize> {
        guard(|| {
            let d = convert::parse_dtype(dtype)?;
            let s = convert::shape_from(&shape)?;
            write_graph(py, &self.g)?.leaf(d, &s, name, location).py()
        })
    }

    /// A constant node holding a copy of `value` (dtype kept).
    #[pyo3(signature = (value, name = None, location = None))]
    fn constant(&self, py: Python<'_>, value: &Bound<'_, PyAny>, name: Option<String>, location: Option<String>) -> PyResult<usize> {
        guard(|| {
            let t = convert::tensor_from_any(py, value, "constant")?;
            Ok(write_graph(py, &self.g)?.constant(t, name, location))
        })
    }

    /// Builds (or finds) an op node; shape/dtype checked now.
    #[pyo3(signature = (op, inputs, attrs = None, location = None))]
    fn apply(&self, py: Python<'_>, op: &str, inputs: Vec<i64>, attrs: Option<&Bound<'_, PyDict>>, location: Option<String>) -> PyResult<usize> {
        guard(|| {
            let ins = convert::node_ids(&inputs)?;
            let a = convert::attrs_from_py(attrs)?;
            write_graph(py, &self.g)?.apply_named(op, &ins, &a, location).py()
        })
    }

    /// `apply`, also returning what the Python layer needs to make the node's object, in the
    /// same call: `(id, name, shape, dtype)`. `inputs` is a list (read item by item, cheaper
    /// than a general sequence).
    #[pyo3(signature = (op, inputs, attrs = None, location = None))]
    fn apply_node<'py>(
        &self,
        py: Python<'py>,
        op: &str,
        inputs: &Bound<'_, PyList>,
        attrs: Option<&Bound<'_, PyDict>>,
        location: Option<String>,
    ) -> PyResult<NodeFacts<'py>> {
        guard(|| {
            let ins = inputs.iter().map(|i| convert::node_id(i.extract::<i64>()?)).collect::<PyResult<Vec<usize>>>()?;
            let a = convert::attrs_from_py(attrs)?;
            let (id, name, shape, dtype) = {
                let mut g = write_graph(py, &self.g)?;
                let id = g.apply_named(op, &ins, &a, location).py()?;
                let n = g.node(id);
                (id, n.name.clone(), convert::shape_tuple(py, &n.shape)?, n.dtype)
            };
            Ok((id, name, shape, convert::dtype_pystr(py, dtype)))
        })
    }

    /// Builds a node of a Python custom op.
    #[pyo3(signature = (op, inputs, location = None))]
    fn apply_custom(&self, py: Python<'_>, op: &Bound<'_, PyCustomOp>, inputs: Vec<i64>, location: Option<String>) -> PyResult<usize> {
        guard(|| {
            let ins = convert::node_ids(&inputs)?;
            let op = Op::Custom(op.get().op_ref());
            let mut g = write_graph(py, &self.g)?;
            for &i in &ins {
                g.try_node(i).py()?;
            }
            g.apply(op, &ins, location).py()
        })
    }

    /// (name, shape, dtype, kind) with kind "leaf", "constant", "op:<name>" or "grad:<name>".
    fn node_info<'py>(&self, py: Python<'py>, id: i64) -> PyResult<(Option<String>, Bound<'py, PyTuple>, &'static str, String)> {
        guard(|| {
            let id = convert::node_id(id)?;
            let g = read_graph(py, &self.g)?;
            let n = g.try_node(id).py()?;
            Ok((n.name.clone(), convert::shape_tuple(py, &n.shape)?, convert::dtype_name(n.dtype), kind_str(n)))
        })
    }

    /// The label used in messages (the name, or `op#id`).
    fn label(&self, py: Python<'_>, id: i64) -> PyResult<String> {
        guard(|| {
            let id = convert::node_id(id)?;
            let g = read_graph(py, &self.g)?;
            Ok(g.try_node(id).py()?.label(id))
        })
    }

    /// The location (`file.py:LINE`) where the node was built, if known.
    fn location(&self, py: Python<'_>, id: i64) -> PyResult<Option<String>> {
        guard(|| {
            let id = convert::node_id(id)?;
            let g = read_graph(py, &self.g)?;
            Ok(g.try_node(id).py()?.location.clone())
        })
    }

    /// Operand ids of a node.
    fn inputs(&self, py: Python<'_>, id: i64) -> PyResult<Vec<usize>> {
        guard(|| {
            let id = convert::node_id(id)?;
            let g = read_graph(py, &self.g)?;
            Ok(g.try_node(id).py()?.inputs.clone())
        })
    }

    /// Renames a node.
    fn set_name(&self, py: Python<'_>, id: i64, name: String) -> PyResult<()> {
        guard(|| {
            let id = convert::node_id(id)?;
            write_graph(py, &self.g)?.set_name(id, name).py()
        })
    }

    /// Binds a value to a leaf. Returns False (binding nothing) when the value needs a
    /// conversion the Python layer does (anything but an exact-dtype NumPy array, or a Python
    /// scalar for a 0-d node); a C-contiguous array of the node's dtype is kept without a copy.
    fn r#let(&self, py: Python<'_>, id: i64, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        guard(|| {
            let id = convert::node_id(id)?;
            self.let_impl(py, id, value)
        })
    }

    /// True when the node currently has a value (stored, or from the last run).
    fn has_value(&self, py: Python<'_>, id: i64) -> PyResult<bool> {
        guard(|| {
            let id = convert::node_id(id)?;
            let g = &self.g;
            py.detach(|| -> gorgon_autodiff::Result<bool> {
                let src = {
                    let g = vm::read(g)?;
                    g.try_node(id)?;
                    if g.stored_value(id).is_some() {
                        return Ok(true);
                    }
                    g.result_source()
                };
                Ok(src.map(|s| s.visit(id, &mut |_| Ok(())).is_some()).unwrap_or(false))
            })
            .py()
        })
    }

    /// A new NumPy array with the node's current value.
    fn value<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let id = convert::node_id(id)?;
            self.value_impl(py, id)
        })
    }

    /// The data pointer of a leaf's or constant's stored value (0 when it has none). Lets
    /// tests prove that `let` kept a NumPy array without copying it.
    fn value_ptr(&self, py: Python<'_>, id: i64) -> PyResult<usize> {
        guard(|| {
            let id = convert::node_id(id)?;
            let g = read_graph(py, &self.g)?;
            g.try_node(id).py()?;
            Ok(match g.stored_value(id) {
                Some(v @ Value::External(_)) | Some(v @ Value::Owned(_)) => convert::view_ptr(&v.view()),
                None => 0,
            })
        })
    }

    /// d(cost)/d(node) from the last run that computed it, else None.
    fn grad_value<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Option<Bound<'py, PyAny>>> {
        guard(|| {
            let id = convert::node_id(id)?;
            let g = &self.g;
            let t = py.detach(|| vm::grad_node_value(g, id)).py()?;
            Ok(t.map(|t| convert::tensor_to_py(py, t)))
        })
    }

    /// Replaces the gradient of `id` computed by the last run (e.g. with an all-reduced one),
    /// so solvers see the new values. `value` must have the gradient's shape and dtype.
    fn set_grad(&self, py: Python<'_>, id: i64, value: &Bound<'_, PyAny>) -> PyResult<()> {
        guard(|| {
            let id = convert::node_id(id)?;
            let t = convert::tensor_from_any(py, value, "set_grad")?;
            let g = &self.g;
            py.detach(|| -> gorgon_autodiff::Result<()> {
                let (gid, src, label) = {
                    let gr = vm::read(g)?;
                    let n = gr.try_node(id)?;
                    let Some(&gid) = gr.grad_of.get(&id) else {
                        return Err(gorgon_autodiff::Error::Graph(format!("set_grad: {} has no gradient node", n.label(id))));
                    };
                    (gid, gr.result_source(), n.describe(id))
                };
                match src.and_then(|s| s.overwrite(gid, &t.view())) {
                    Some(r) => r,
                    None => Err(gorgon_autodiff::Error::Graph(format!("set_grad: the gradient of {label} has not been computed by a live machine"))),
                }
            })
            .py()
        })
    }

    /// Symbolic reverse mode: new nodes in this graph.
    #[pyo3(signature = (cost, wrt, allow_unused = false))]
    fn grad(&self, py: Python<'_>, cost: i64, wrt: Vec<i64>, allow_unused: bool) -> PyResult<Vec<usize>> {
        guard(|| {
            let cost = convert::node_id(cost)?;
            let wrt = convert::node_ids(&wrt)?;
            let mut g = write_graph(py, &self.g)?;
            gorgon_autodiff::grad::grad(&mut g, cost, &wrt, allow_unused).py()
        })
    }

    /// After every run of a machine that contains `value`, copy its value into leaf `target`.
    fn add_update(&self, py: Python<'_>, target: i64, value: i64) -> PyResult<()> {
        guard(|| {
            let (t, v) = (convert::node_id(target)?, convert::node_id(value)?);
            write_graph(py, &self.g)?.add_update(t, v).py()
        })
    }

    /// Graphviz DOT text.
    fn to_dot(&self, py: Python<'_>) -> PyResult<String> {
        guard(|| Ok(read_graph(py, &self.g)?.to_dot()))
    }

    /// Number of nodes.
    fn num_nodes(&self, py: Python<'_>) -> PyResult<usize> {
        guard(|| Ok(read_graph(py, &self.g)?.len()))
    }

    /// True when both handles refer to the same graph.
    fn same(&self, other: &Bound<'_, PyGraph>) -> bool {
        Arc::ptr_eq(&self.g, &other.get().g)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        guard(|| {
            let n = read_graph(py, &self.g)?.len();
            Ok(format!("<gorgon_rs._native.Graph with {n} nodes, stabilize={}>", if self.stabilize { "True" } else { "False" }))
        })
    }
}

/// Raises GraphError unless the id names a node of `g`.
pub fn check_node(py: Python<'_>, g: &SharedGraph, id: usize) -> PyResult<()> {
    read_graph(py, g)?.try_node(id).map(|_| ()).map_err(|_| new_err(Kind::Graph, format!("node id {id} does not belong to this graph")))
}
