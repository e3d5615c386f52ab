//! `NodeBase`: the native part of `gorgon_rs.Node` (the Python subclass adds the rest): a
//! node's graph and id, and the two per-call hot paths of the let/run/value cycle, `let`
//! and `value`, as C-level methods, so binding an input or reading a result costs no Python
//! frame. Both delegate to [`PyGraph`]; this module holds no graph logic.

use crate::convert;
use crate::errors::{guard, new_err, Kind};
use crate::graph::PyGraph;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// `gorgon_rs.graph._convert_for`, the Python layer's conversion of values `let` cannot bind
/// as they are (NumPy `same_kind` casting, nested lists, error messages).
static CONVERT_FOR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The native part of a graph node (see `gorgon_rs.Node`).
#[pyclass(subclass, frozen, name = "NodeBase", module = "gorgon_rs._native")]
pub struct PyNodeBase {
    graph: Py<PyGraph>,
    id: usize,
}

#[pymethods]
impl PyNodeBase {
    /// A handle on node `id` of `graph`. The id is checked by each method, as the graph's
    /// own methods check theirs (GraphError for an id the graph does not have).
    #[new]
    fn new(graph: Bound<'_, PyGraph>, id: i64) -> PyResult<Self> {
        guard(|| Ok(PyNodeBase { graph: graph.unbind(), id: convert::node_id(id)? }))
    }

    /// Bind a value (array, nested list or scalar) to this input/variable node.
    ///
    /// A C-contiguous array of the node's dtype is used without a copy; other values are
    /// converted once with NumPy's ``same_kind`` casting.
    ///
    /// Example:
    ///     >>> x = gr.Graph().vector(gr.float32, 2); x.let([1, 2]); x.value
    ///     array([1., 2.], dtype=float32)
    fn r#let(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        guard(|| {
            let py = slf.py();
            let me = slf.get();
            let g = me.graph.bind(py).get();
            if g.let_impl(py, me.id, value)? {
                return Ok(());
            }
            let conv = CONVERT_FOR.get_or_try_init(py, || py.import("gorgon_rs.graph")?.getattr("_convert_for").map(Bound::unbind))?;
            let a = conv.bind(py).call1((slf, value))?;
            if g.let_impl(py, me.id, &a)? {
                return Ok(());
            }
            let what: String = slf.call_method0("_describe")?.extract()?;
            Err(new_err(Kind::Internal, format!("let: the converted value was refused for node {what}")))
        })
    }

    /// The current value as a new NumPy array (0-d for scalars); GraphError if none.
    ///
    /// Example:
    ///     >>> v = gr.Graph().vector(gr.float64, 2, value=[1.0, 2.0])
    ///     >>> v.value
    ///     array([1., 2.])
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| self.graph.bind(py).get().value_impl(py, self.id))
    }
}
