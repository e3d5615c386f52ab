//! Errors and panics at the Python boundary. [`to_pyerr`] is the one mapping from
//! `gorgon_autodiff::Error` to Python exceptions (the classes of `gorgon_rs.errors`, imported
//! once and cached); [`guard`] runs an entry point's body under `catch_unwind` so a Rust panic
//! becomes `gorgon_rs.errors.InternalError` instead of pyo3's `PanicException` (a
//! BaseException). A Python exception raised inside a callback (custom ops) is parked in a
//! thread-local and re-raised as it was when the run that called it returns.
//!
//! This module must not know about graphs or machines.

use gorgon_autodiff::Error;
use pyo3::exceptions::{PyFileNotFoundError, PyMemoryError, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The exception classes of `gorgon_rs.errors`, in this order.
const CLASSES: [&str; 7] = ["ShapeError", "DTypeError", "GraphError", "NumericError", "FormatError", "DeviceError", "InternalError"];

static TYPES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

/// Which `gorgon_rs.errors` class.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// ShapeError (ValueError)
    Shape = 0,
    /// DTypeError (TypeError)
    DType = 1,
    /// GraphError (RuntimeError)
    Graph = 2,
    /// NumericError (ArithmeticError)
    Numeric = 3,
    /// FormatError (ValueError)
    Format = 4,
    /// DeviceError (RuntimeError)
    Device = 5,
    /// InternalError (RuntimeError)
    Internal = 6,
}

fn classes(py: Python<'_>) -> Option<&Vec<Py<PyType>>> {
    TYPES
        .get_or_try_init(py, || -> PyResult<Vec<Py<PyType>>> {
            let m = py.import("gorgon_rs.errors")?;
            CLASSES.iter().map(|n| Ok(m.getattr(*n)?.cast_into::<PyType>()?.unbind())).collect()
        })
        .ok()
}

/// A new exception of a `gorgon_rs.errors` class (a builtin base class if that module cannot
/// be imported, which only happens when the extension is used outside its package).
pub fn make(py: Python<'_>, kind: Kind, msg: String) -> PyErr {
    match classes(py) {
        Some(c) => PyErr::from_type(c[kind as usize].bind(py).clone(), msg),
        None => match kind {
            Kind::Shape | Kind::Format => PyValueError::new_err(msg),
            Kind::DType => PyTypeError::new_err(msg),
            _ => PyRuntimeError::new_err(msg),
        },
    }
}

/// The same, acquiring the GIL (cheap when it is already held).
pub fn new_err(kind: Kind, msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    Python::attach(|py| make(py, kind, msg))
}

thread_local! {
    static PENDING: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// Parks a Python exception raised by a callback, to be re-raised by [`to_pyerr`].
pub fn park(e: PyErr) {
    PENDING.with(|p| *p.borrow_mut() = Some(e));
}

/// Drops a parked exception (before a new run starts).
pub fn clear_parked() {
    PENDING.with(|p| p.borrow_mut().take());
}

/// The one mapping from `gorgon_autodiff::Error` to a Python exception. A parked callback
/// exception (see [`park`]) takes precedence: the user's own exception comes back unchanged.
pub fn to_pyerr(e: Error) -> PyErr {
    if let Some(p) = PENDING.with(|p| p.borrow_mut().take()) {
        return p;
    }
    match e {
        Error::Shape(m) => new_err(Kind::Shape, m),
        Error::DType(m) => new_err(Kind::DType, m),
        Error::Graph(m) => new_err(Kind::Graph, m),
        Error::Numeric(m) => new_err(Kind::Numeric, m),
        Error::Format(m) => new_err(Kind::Format, m),
        Error::Device(m) => new_err(Kind::Device, m),
        Error::Internal(m) => new_err(Kind::Internal, m),
        Error::Alloc(m) => PyMemoryError::new_err(m),
        Error::NotFound(m) => PyFileNotFoundError::new_err(m),
        Error::Io(m) => PyOSError::new_err(m),
    }
}

/// `Result<T, autodiff::Error>` → `PyResult<T>`.
pub trait IntoPyResult<T> {
    /// Maps the error with [`to_pyerr`].
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for gorgon_autodiff::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_pyerr)
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a Rust panic with a non-text payload".to_string()
    }
}

/// Runs an entry point's body, turning a panic into `gorgon_rs.errors.InternalError`.
///
/// ```ignore
/// #[pyfunction]
/// fn f(py: Python<'_>) -> PyResult<()> { guard(|| Ok(())) }
/// ```
pub fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => Err(new_err(
            Kind::Internal,
            format!("internal error (a Rust panic, please report it): {}", panic_message(&*payload)),
        )),
    }
}
