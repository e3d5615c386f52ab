//! User-defined ops written in Python: [`PyCustomOp`] implements autodiff's `op::CustomOp`
//! by calling the user's NumPy functions with the GIL re-acquired (`Python::attach`) from
//! inside a run. Inputs are copied into new NumPy arrays (the user may keep them); results
//! are converted back with `numpy.asarray`. A Python exception raised by a callback is parked
//! and re-raised unchanged when the run returns.

use crate::convert::{self, CALLBACKS_EXIST};
use crate::errors::{guard, park};
use gorgon_autodiff::op::{CustomOp, CustomRef};
use gorgon_autodiff::{Error, Result};
use gorgon_core::{Tensor, TensorView};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::atomic::Ordering;
use std::sync::Arc;

struct PyOpImpl {
    forward: Py<PyAny>,
    backward: Option<Py<PyAny>>,
    shape_fn: Option<Py<PyAny>>,
    name: String,
}

impl PyOpImpl {
    fn fail(&self, py: Python<'_>, what: &str, e: PyErr) -> Error {
        let msg = format!("custom op {}: {what} raised {}", self.name, e.value(py).repr().map(|r| r.to_string()).unwrap_or_default());
        park(e);
        Error::Graph(msg)
    }

    fn arrays<'py>(py: Python<'py>, inputs: &[TensorView]) -> Vec<Bound<'py, PyAny>> {
        inputs.iter().map(|v| convert::view_to_py(py, v)).collect()
    }
}

impl CustomOp for PyOpImpl {
    fn name(&self) -> &str {
        &self.name
    }

    fn infer_shape(&self, shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        let Some(f) = &self.shape_fn else { return Ok(shapes[0].clone()) };
        Python::attach(|py| {
            let run = || -> PyResult<Vec<usize>> {
                let args: Vec<Bound<'_, PyTuple>> = shapes.iter().map(|s| convert::shape_tuple(py, s)).collect::<PyResult<_>>()?;
                let r = f.bind(py).call1(PyTuple::new(py, args)?)?;
                if let Ok(n) = r.extract::<usize>() {
                    return Ok(vec![n]);
                }
                r.extract::<Vec<usize>>()
            };
            run().map_err(|e| {
                let msg = format!("custom op {}: shape_fn failed: {}", self.name, e.value(py).repr().map(|r| r.to_string()).unwrap_or_default());
                Error::Shape(msg)
            })
        })
    }

    fn forward(&self, inputs: &[TensorView]) -> Result<Tensor> {
        Python::attach(|py| {
            let args = PyTuple::new(py, Self::arrays(py, inputs)).map_err(|e| self.fail(py, "forward", e))?;
            let r = self.forward.bind(py).call1(args).map_err(|e| self.fail(py, "forward", e))?;
            convert::tensor_from_any(py, &r, &format!("custom op {} forward", self.name)).map_err(|e| self.fail(py, "forward", e))
        })
    }

    fn has_backward(&self) -> bool {
        self.backward.is_some()
    }

    fn backward(&self, grad: &TensorView, inputs: &[TensorView], index: usize) -> Result<Tensor> {
        let Some(b) = &self.backward else {
            return Err(Error::Graph(format!("custom op {} has no backward", self.name)));
        };
        Python::attach(|py| {
            let mut args = vec![convert::view_to_py(py, grad)];
            args.extend(Self::arrays(py, inputs));
            let args = PyTuple::new(py, args).map_err(|e| self.fail(py, "backward", e))?;
            let r = b.bind(py).call1(args).map_err(|e| self.fail(py, "backward", e))?;
            let item = if inputs.len() == 1 && !(r.is_instance_of::<PyTuple>() || r.is_instance_of::<pyo3::types::PyList>()) {
                r
            } else {
                r.get_item(index).map_err(|e| self.fail(py, "backward", e))?
            };
            convert::tensor_from_any(py, &item, &format!("custom op {} backward", self.name)).map_err(|e| self.fail(py, "backward", e))
        })
    }
}

/// A Python-defined op: `forward(*arrays) -> array`, `backward(grad_out, *arrays) -> tuple of
/// grads` (optional), `shape_fn(*shapes) -> shape` (optional; default: the first operand's).
#[pyclass(frozen, name = "CustomOp", module = "gorgon_rs._native")]
pub struct PyCustomOp {
    op: Arc<PyOpImpl>,
}

impl PyCustomOp {
    /// The shared handle the graph stores.
    pub fn op_ref(&self) -> CustomRef {
        CustomRef(self.op.clone() as Arc<dyn CustomOp>)
    }
}

#[pymethods]
impl PyCustomOp {
    #[new]
    #[pyo3(signature = (forward, backward = None, shape_fn = None, name = None))]
    fn new(forward: Py<PyAny>, backward: Option<Py<PyAny>>, shape_fn: Option<Py<PyAny>>, name: Option<String>) -> PyResult<Self> {
        guard(|| {
            CALLBACKS_EXIST.store(true, Ordering::SeqCst);
            let name = match name {
                Some(n) => n,
                None => Python::attach(|py| {
                    forward.bind(py).getattr("__name__").and_then(|n| n.extract::<String>()).unwrap_or_else(|_| "custom".into())
                }),
            };
            Ok(PyCustomOp { op: Arc::new(PyOpImpl { forward, backward, shape_fn, name }) })
        })
    }

    /// The op's name.
    #[getter]
    fn name(&self) -> String {
        self.op.name.clone()
    }

    /// Whether a backward function was given.
    #[getter]
    fn has_backward(&self) -> bool {
        self.op.backward.is_some()
    }

    fn __repr__(&self) -> String {
        format!("<gorgon_rs custom op {}>", self.op.name)
    }
}
