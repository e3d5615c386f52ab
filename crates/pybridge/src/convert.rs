//! NumPy ↔ tensor conversion at the boundary, op attributes from Python dicts, and the lock
//! helpers that never block on a Rust lock while holding the GIL.
//!
//! In: a C-contiguous, aligned NumPy array of the node's dtype is bound without a copy
//! (`NumpyTensor` keeps the array alive and views its memory); a Python scalar bound to a
//! 0-d node is converted directly; anything else is left to the Python layer, which converts
//! it once with NumPy's `same_kind` casting and calls again. Out: results become new NumPy
//! arrays (a moved Rust buffer, or one copy straight from a machine buffer for small ones).

use crate::errors::{new_err, Kind};
use gorgon_autodiff::attrs::{Attr, Attrs};
use gorgon_autodiff::graph::{ExternalTensor, Graph, Value};
use gorgon_autodiff::vm::SharedGraph;
use gorgon_core::{DType, Tensor, TensorView};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use numpy::{Element as NpElement, PyArray, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLockReadGuard, RwLockWriteGuard, TryLockError};

// ------------------------------------------------------------------------------------------
// Locks
// ------------------------------------------------------------------------------------------

/// Set once a Python custom op exists: from then on Rust code may need the GIL while it holds
/// a machine lock, so calls that read machine results must release the GIL first.
pub static CALLBACKS_EXIST: AtomicBool = AtomicBool::new(false);

/// True when machine results may only be read with the GIL released.
pub fn callbacks_exist() -> bool {
    CALLBACKS_EXIST.load(Ordering::Relaxed)
}

fn poisoned() -> PyErr {
    new_err(Kind::Internal, "graph lock poisoned by an earlier panic")
}

/// Read-locks a graph: at once when free, else waiting with the GIL released.
pub fn read_graph<'a>(py: Python<'_>, g: &'a SharedGraph) -> PyResult<RwLockReadGuard<'a, Graph>> {
    loop {
        match g.try_read() {
            Ok(guard) => return Ok(guard),
            Err(TryLockError::Poisoned(_)) => return Err(poisoned()),
            Err(TryLockError::WouldBlock) => py.detach(|| drop(g.read())),
        }
    }
}

/// Write-locks a graph: at once when free, else waiting with the GIL released.
pub fn write_graph<'a>(py: Python<'_>, g: &'a SharedGraph) -> PyResult<RwLockWriteGuard<'a, Graph>> {
    loop {
        match g.try_write() {
            Ok(guard) => return Ok(guard),
            Err(TryLockError::Poisoned(_)) => return Err(poisoned()),
            Err(TryLockError::WouldBlock) => py.detach(|| drop(g.write())),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Dtypes
// ------------------------------------------------------------------------------------------

/// Parses a dtype name ("float32", ...), raising DTypeError for anything else.
pub fn parse_dtype(s: &str) -> PyResult<DType> {
    DType::parse(s).ok_or_else(|| new_err(Kind::DType, format!("unsupported dtype {s:?} (use float32, float64, int32, int64 or bool)")))
}

/// The NumPy name of a dtype.
pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "float32",
        DType::F64 => "float64",
        DType::I32 => "int32",
        DType::I64 => "int64",
        DType::Bool => "bool",
    }
}

/// The NumPy name of a dtype as an interned Python string (no new string per call).
pub fn dtype_pystr(py: Python<'_>, d: DType) -> Bound<'_, PyString> {
    match d {
        DType::F32 => pyo3::intern!(py, "float32").clone(),
        DType::F64 => pyo3::intern!(py, "float64").clone(),
        DType::I32 => pyo3::intern!(py, "int32").clone(),
        DType::I64 => pyo3::intern!(py, "int64").clone(),
        DType::Bool => pyo3::intern!(py, "bool").clone(),
    }
}

// ------------------------------------------------------------------------------------------
// In: zero-copy NumPy views
// ------------------------------------------------------------------------------------------

/// A NumPy array bound to a leaf without a copy: the array is kept alive, and its data pointer
/// and shape were captured (and checked C-contiguous and aligned) at `let` time.
struct NumpyTensor<T: NpElement> {
    _owner: Py<PyArrayDyn<T>>,
    ptr: *const T,
    shape: Vec<usize>,
}

// SAFETY: the pointer is only read, and the memory stays allocated while `_owner` (a
// thread-safe reference) is alive. NumPy refuses to resize an array that others reference.
unsafe impl<T: NpElement> Send for NumpyTensor<T> {}
unsafe impl<T: NpElement> Sync for NumpyTensor<T> {}

impl<T: NpElement + gorgon_core::Element> ExternalTensor for NumpyTensor<T> {
    fn view(&self) -> TensorView<'_> {
        // SAFETY: `ptr` points to `prod(shape)` contiguous, aligned, initialized elements owned
        // by `_owner`, which lives as long as `self` (checked in `zero_copy`).
        let v = unsafe { ArrayViewD::from_shape_ptr(IxDyn(&self.shape), self.ptr) };
        T::into_view(v)
    }
}

fn zero_copy<T: NpElement + gorgon_core::Element>(obj: &Bound<'_, PyAny>) -> Option<Value> {
    let arr = obj.cast::<PyArrayDyn<T>>().ok()?;
    if arr.len() == 0 {
        let empty = ArrayD::from_shape_vec(IxDyn(arr.shape()), Vec::new()).ok()?;
        return Some(Value::Owned(T::into_tensor(empty)));
    }
    if !arr.is_c_contiguous() {
        return None;
    }
    let ptr = arr.data() as *const T;
    if ptr.is_null() || ptr.align_offset(std::mem::align_of::<T>()) != 0 {
        return None;
    }
    let shape = arr.shape().to_vec();
    Some(Value::External(std::sync::Arc::new(NumpyTensor { _owner: arr.clone().unbind(), ptr, shape })))
}

/// A value for a node of `dtype` and `shape` without any conversion work, or `None` when the
/// Python layer must convert it first: a NumPy array of exactly that dtype (zero-copy when
/// C-contiguous), or a Python scalar for a 0-d node.
pub fn fast_value(obj: &Bound<'_, PyAny>, dtype: DType, shape: &[usize]) -> PyResult<Option<Value>> {
    Ok(match fast_input(obj, dtype, shape)? {
        Some(Input::Scalar(s)) => Some(Value::Owned(s.into_tensor())),
        Some(Input::Value(v)) => Some(v),
        None => None,
    })
}

/// A value ready to bind to a leaf: one element for a 0-d leaf (written into the leaf's
/// current buffer when it has one, see [`Input::bind`]), or a whole value.
pub enum Input {
    /// A Python scalar for a 0-d leaf, converted to its dtype.
    Scalar(Scalar),
    /// Anything else.
    Value(Value),
}

impl Input {
    /// Binds the input to leaf `id` of `g`.
    pub fn bind(self, g: &mut Graph, id: usize) -> gorgon_autodiff::Result<()> {
        match self {
            Input::Scalar(s) => {
                if g.rebind_scalar(id).is_some_and(|t| s.write_into(t)) {
                    return Ok(());
                }
                // No owned 0-d value to write into (or, impossibly, another dtype).
                g.let_value(id, Value::Owned(s.into_tensor()))
            }
            Input::Value(v) => g.let_value(id, v),
        }
    }
}

/// [`fast_value`], keeping a Python scalar for a 0-d node as one element.
pub fn fast_input(obj: &Bound<'_, PyAny>, dtype: DType, shape: &[usize]) -> PyResult<Option<Input>> {
    if shape.is_empty() {
        if let Some(s) = scalar_value(obj, dtype)? {
            return Ok(Some(Input::Scalar(s)));
        }
    }
    Ok(match dtype {
        DType::F32 => zero_copy::<f32>(obj),
        DType::F64 => zero_copy::<f64>(obj),
        DType::I32 => zero_copy::<i32>(obj),
        DType::I64 => zero_copy::<i64>(obj),
        DType::Bool => zero_copy::<bool>(obj),
    }
    .map(Input::Value))
}

/// One element of a given dtype.
#[derive(Clone, Copy, Debug)]
pub enum Scalar {
    /// float32
    F32(f32),
    /// float64
    F64(f64),
    /// int32
    I32(i32),
    /// int64
    I64(i64),
    /// bool
    Bool(bool),
}

impl Scalar {
    /// A 0-d tensor holding the element.
    pub fn into_tensor(self) -> Tensor {
        let e = IxDyn(&[]);
        match self {
            Scalar::F32(v) => Tensor::F32(ArrayD::from_elem(e, v)),
            Scalar::F64(v) => Tensor::F64(ArrayD::from_elem(e, v)),
            Scalar::I32(v) => Tensor::I32(ArrayD::from_elem(e, v)),
            Scalar::I64(v) => Tensor::I64(ArrayD::from_elem(e, v)),
            Scalar::Bool(v) => Tensor::Bool(ArrayD::from_elem(e, v)),
        }
    }

    /// Overwrites the element of `t` (a 0-d tensor); false when `t` has another dtype or is
    /// empty.
    pub fn write_into(self, t: &mut Tensor) -> bool {
        // `first_mut`, not `fill`: `fill` checks contiguity through a comparison of empty
        // stride slices (glibc's memcmp), which costs more than the write.
        fn put<T>(a: &mut ArrayD<T>, v: T) -> bool {
            a.first_mut().map(|x| *x = v).is_some()
        }
        match (self, t) {
            (Scalar::F32(v), Tensor::F32(a)) => put(a, v),
            (Scalar::F64(v), Tensor::F64(a)) => put(a, v),
            (Scalar::I32(v), Tensor::I32(a)) => put(a, v),
            (Scalar::I64(v), Tensor::I64(a)) => put(a, v),
            (Scalar::Bool(v), Tensor::Bool(a)) => put(a, v),
            _ => false,
        }
    }
}

fn scalar_value(obj: &Bound<'_, PyAny>, dtype: DType) -> PyResult<Option<Scalar>> {
    if obj.is_instance_of::<PyFloat>() {
        let v: f64 = obj.extract()?;
        return Ok(match dtype {
            DType::F32 => Some(Scalar::F32(v as f32)),
            DType::F64 => Some(Scalar::F64(v)),
            _ => None,
        });
    }
    if obj.is_instance_of::<PyBool>() {
        let b = obj.is_truthy()?;
        return Ok(Some(match dtype {
            DType::F32 => Scalar::F32(b as u8 as f32),
            DType::F64 => Scalar::F64(b as u8 as f64),
            DType::I32 => Scalar::I32(b as i32),
            DType::I64 => Scalar::I64(b as i64),
            DType::Bool => Scalar::Bool(b),
        }));
    }
    if obj.is_instance_of::<PyInt>() {
        let Ok(v) = obj.extract::<i64>() else { return Ok(None) };
        return Ok(match dtype {
            DType::F32 => Some(Scalar::F32(v as f32)),
            DType::F64 => Some(Scalar::F64(v as f64)),
            DType::I32 => i32::try_from(v).ok().map(Scalar::I32),
            DType::I64 => Some(Scalar::I64(v)),
            DType::Bool => None,
        });
    }
    Ok(None)
}

/// An owned copy of any NumPy array of a supported dtype (None for other dtypes).
pub fn tensor_from_array(obj: &Bound<'_, PyAny>) -> Option<Tensor> {
    fn get<T: NpElement + gorgon_core::Element>(obj: &Bound<'_, PyAny>) -> Option<Tensor> {
        let a = obj.cast::<PyArrayDyn<T>>().ok()?;
        Some(T::into_tensor(a.to_owned_array().as_standard_layout().into_owned()))
    }
    get::<f32>(obj).or_else(|| get::<f64>(obj)).or_else(|| get::<i64>(obj)).or_else(|| get::<i32>(obj)).or_else(|| get::<bool>(obj))
}

/// Like [`tensor_from_array`], converting other inputs with `numpy.asarray` first (other
/// dtypes become float64). Raises DTypeError for what cannot be a number array.
pub fn tensor_from_any(py: Python<'_>, obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Tensor> {
    if let Some(t) = tensor_from_array(obj) {
        return Ok(t);
    }
    let np = py.import("numpy")?;
    let a = np.call_method1("asarray", (obj,))?;
    if let Some(t) = tensor_from_array(&a) {
        return Ok(t);
    }
    let kind: String = a.getattr("dtype")?.getattr("kind")?.extract()?;
    if "iufb".contains(kind.as_str()) && kind.len() == 1 {
        let f = np.call_method1("asarray", (&a, "float64"))?;
        if let Some(t) = tensor_from_array(&f) {
            return Ok(t);
        }
    }
    let dt = a.getattr("dtype")?.str()?.to_string();
    Err(new_err(Kind::DType, format!("{what}: cannot use an array of dtype {dt} (expected float32, float64, int32, int64 or bool)")))
}

// ------------------------------------------------------------------------------------------
// Out
// ------------------------------------------------------------------------------------------

/// Arrays with at most this many elements are copied into NumPy-owned memory (cheaper than
/// wrapping a Rust buffer in a capsule object); larger ones move their buffer.
const SMALL: usize = 256;

fn owned_to_py<'py, T: NpElement + Clone>(py: Python<'py>, a: ArrayD<T>) -> Bound<'py, PyAny> {
    if a.len() <= SMALL {
        PyArray::from_array(py, &a).into_any()
    } else {
        PyArray::from_owned_array(py, a.as_standard_layout().into_owned()).into_any()
    }
}

/// Moves a tensor into a new NumPy array (no copy for large arrays).
pub fn tensor_to_py<'py>(py: Python<'py>, t: Tensor) -> Bound<'py, PyAny> {
    match t {
        Tensor::F32(a) => owned_to_py(py, a),
        Tensor::F64(a) => owned_to_py(py, a),
        Tensor::I32(a) => owned_to_py(py, a),
        Tensor::I64(a) => owned_to_py(py, a),
        Tensor::Bool(a) => owned_to_py(py, a),
    }
}

/// Copies a view into a new NumPy array (one copy).
pub fn view_to_py<'py>(py: Python<'py>, v: &TensorView<'_>) -> Bound<'py, PyAny> {
    match v {
        TensorView::F32(a) => PyArray::from_array(py, a).into_any(),
        TensorView::F64(a) => PyArray::from_array(py, a).into_any(),
        TensorView::I32(a) => PyArray::from_array(py, a).into_any(),
        TensorView::I64(a) => PyArray::from_array(py, a).into_any(),
        TensorView::Bool(a) => PyArray::from_array(py, a).into_any(),
    }
}

/// A new NumPy array for a result, made before a run so that it can be filled while the
/// machine's locks are held (making it could run Python code: a garbage collection).
pub enum OutArray<'py> {
    /// float32
    F32(Bound<'py, PyArrayDyn<f32>>),
    /// float64
    F64(Bound<'py, PyArrayDyn<f64>>),
    /// int32
    I32(Bound<'py, PyArrayDyn<i32>>),
    /// int64
    I64(Bound<'py, PyArrayDyn<i64>>),
    /// bool
    Bool(Bound<'py, PyArrayDyn<bool>>),
}

fn fill_typed<T: NpElement + gorgon_core::Element>(a: &Bound<'_, PyArrayDyn<T>>, v: &ArrayViewD<'_, T>) -> bool {
    let shape = a.shape();
    if shape.len() != v.ndim() || shape.iter().zip(v.shape()).any(|(x, y)| x != y) {
        return false;
    }
    // SAFETY: the array was made by `OutArray::new` (C-contiguous, owned, not yet shared with
    // Python code), so nothing else reads or writes it.
    let Ok(dst) = (unsafe { a.as_slice_mut() }) else { return false };
    match (dst.len(), v.first()) {
        (1, Some(&x)) => dst[0] = x,
        _ => match v.as_slice() {
            Some(src) => dst.copy_from_slice(src),
            None => dst.iter_mut().zip(v.iter()).for_each(|(d, s)| *d = *s),
        },
    }
    true
}

impl<'py> OutArray<'py> {
    /// An array of `dtype` and `shape` whose elements must all be written (by
    /// [`OutArray::fill`]) before it is handed to Python code.
    pub fn new(py: Python<'py>, dtype: DType, shape: &[usize]) -> OutArray<'py> {
        let d = IxDyn(shape);
        // SAFETY (each arm): the elements are uninitialized; the caller fills every one with
        // `fill` before the array reaches Python code, or drops it unread.
        unsafe {
            match dtype {
                DType::F32 => OutArray::F32(PyArray::new(py, d, false)),
                DType::F64 => OutArray::F64(PyArray::new(py, d, false)),
                DType::I32 => OutArray::I32(PyArray::new(py, d, false)),
                DType::I64 => OutArray::I64(PyArray::new(py, d, false)),
                DType::Bool => OutArray::Bool(PyArray::new(py, d, false)),
            }
        }
    }

    /// Copies `v` (same dtype and shape) into the array; false, writing nothing, otherwise.
    pub fn fill(&self, v: &TensorView<'_>) -> bool {
        match (self, v) {
            (OutArray::F32(a), TensorView::F32(v)) => fill_typed(a, v),
            (OutArray::F64(a), TensorView::F64(v)) => fill_typed(a, v),
            (OutArray::I32(a), TensorView::I32(v)) => fill_typed(a, v),
            (OutArray::I64(a), TensorView::I64(v)) => fill_typed(a, v),
            (OutArray::Bool(a), TensorView::Bool(v)) => fill_typed(a, v),
            _ => false,
        }
    }

    /// The array as a Python object.
    pub fn into_any(self) -> Bound<'py, PyAny> {
        match self {
            OutArray::F32(a) => a.into_any(),
            OutArray::F64(a) => a.into_any(),
            OutArray::I32(a) => a.into_any(),
            OutArray::I64(a) => a.into_any(),
            OutArray::Bool(a) => a.into_any(),
        }
    }
}

/// The data pointer of a view (for tests that prove zero-copy binding).
pub fn view_ptr(v: &TensorView<'_>) -> usize {
    gorgon_core::match_tensor!(TensorView, v, a => a.as_ptr() as usize)
}

// ------------------------------------------------------------------------------------------
// Attributes and small arguments
// ------------------------------------------------------------------------------------------

/// Converts one attribute value: None, bool, int, float, str, or a sequence of ints.
pub fn attr_from_py(key: &str, v: &Bound<'_, PyAny>) -> PyResult<Attr> {
    if v.is_none() {
        return Ok(Attr::None);
    }
    if v.is_instance_of::<PyBool>() {
        return Ok(Attr::Bool(v.is_truthy()?));
    }
    if v.is_instance_of::<PyString>() {
        return Ok(Attr::Str(v.extract()?));
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(Attr::Float(v.extract()?));
    }
    if let Ok(i) = v.extract::<i64>() {
        return Ok(Attr::Int(i));
    }
    if let Ok(f) = v.extract::<f64>() {
        return Ok(Attr::Float(f));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() || v.is_instance_of::<PyUntypedArray>() {
        let mut out = Vec::new();
        for item in v.try_iter()? {
            let item = item?;
            match item.extract::<i64>() {
                Ok(i) if !item.is_instance_of::<PyBool>() => out.push(i),
                _ => return Err(new_err(Kind::Graph, format!("attribute {key}: expected a sequence of ints, got {}", v.repr()?))),
            }
        }
        return Ok(Attr::Ints(out));
    }
    // dtype objects and the like: their string form ("float32").
    Ok(Attr::Str(v.str()?.to_string()))
}

/// Converts an attribute dict.
pub fn attrs_from_py(d: Option<&Bound<'_, PyDict>>) -> PyResult<Attrs> {
    let mut a = Attrs::new();
    if let Some(d) = d {
        for (k, v) in d.iter() {
            let k: String = k.extract()?;
            let attr = attr_from_py(&k, &v)?;
            a.0.insert(k, attr);
        }
    }
    Ok(a)
}

/// A node id from Python (negative ids are a GraphError; range is checked by the graph).
pub fn node_id(id: i64) -> PyResult<usize> {
    usize::try_from(id).map_err(|_| new_err(Kind::Graph, format!("node id {id} does not belong to this graph")))
}

/// Node ids from Python.
pub fn node_ids(ids: &[i64]) -> PyResult<Vec<usize>> {
    ids.iter().map(|&i| node_id(i)).collect()
}

/// A shape from Python: non-negative ints.
pub fn shape_from(dims: &[i64]) -> PyResult<Vec<usize>> {
    dims.iter()
        .map(|&d| usize::try_from(d).map_err(|_| new_err(Kind::Shape, format!("negative dimension {d} in shape {dims:?}"))))
        .collect()
}

/// Shape as a Python tuple.
pub fn shape_tuple<'py>(py: Python<'py>, s: &[usize]) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, s.iter().copied())
}
