//! NumPy arrays over buffers a machine lent out ([`gorgon_autodiff::lend`]): large results
//! reach Python without a copy. The array's base object owns a reference to the [`Lent`]
//! buffer; when the last array over it goes away, the buffer returns to its machine.

use gorgon_autodiff::lend::Lent;
use gorgon_core::Tensor;
use numpy::{Element as NpElement, PyArray};
use pyo3::prelude::*;
use std::sync::Arc;

/// Results with at least this many elements are lent rather than copied (below it a copy
/// costs about as much as making the base object).
pub const LEND_MIN: usize = 16 * 1024;

/// The base object of a NumPy array over a lent buffer.
#[pyclass(frozen, name = "LentBuffer", module = "gorgon_rs._native")]
pub struct LentBuffer {
    inner: Arc<Lent>,
}

#[pymethods]
impl LentBuffer {
    /// Number of elements.
    fn __len__(&self) -> usize {
        self.inner.tensor().len()
    }
}

fn borrow<'py, T: NpElement>(a: &numpy::ndarray::ArrayD<T>, base: Bound<'py, LentBuffer>) -> Bound<'py, PyAny> {
    // SAFETY: `a` lives inside the `Lent` that `base` keeps alive, and nothing reallocates or
    // writes it while it is lent: the machine only reads it, and takes it back (or leaves it)
    // before its next run writes any buffer.
    unsafe { PyArray::borrow_from_array(a, base.into_any()) }.into_any()
}

/// A writable NumPy array over `lent` (no copy).
pub fn lent_to_py(py: Python<'_>, lent: Arc<Lent>) -> PyResult<Bound<'_, PyAny>> {
    let base = Bound::new(py, LentBuffer { inner: lent })?;
    let inner = base.get().inner.clone();
    Ok(match inner.tensor() {
        Tensor::F32(a) => borrow(a, base),
        Tensor::F64(a) => borrow(a, base),
        Tensor::I32(a) => borrow(a, base),
        Tensor::I64(a) => borrow(a, base),
        Tensor::Bool(a) => borrow(a, base),
    })
}
