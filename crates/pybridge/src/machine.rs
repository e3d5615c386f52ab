//! Machine pyclasses: `TapeMachine`, `LispMachine` (thin handles on the autodiff machines)
//! and `Function` (a compiled callable: bind inputs, run, read outputs in one native call).
//! Compiling and running happen with the GIL released, and every machine/graph lock is taken
//! inside the released section (a Python custom op re-acquires the GIL from inside a run).
//! The exception: a tiny program (`TapeMachine::is_quick`) whose locks are free runs at once
//! with the GIL held, its locks taken with `try_lock` only (so nothing ever waits on a lock
//! while holding the GIL).

use crate::convert::{self, callbacks_exist, write_graph, Input, OutArray};
use crate::errors::{clear_parked, guard, new_err, to_pyerr, IntoPyResult, Kind};
use crate::graph::PyGraph;
use gorgon_autodiff::graph::NodeKind;
use gorgon_autodiff::vm::{LispMachine, MachineOptions, SharedGraph, TapeMachine};
use gorgon_autodiff::NodeId;
use gorgon_core::{DType, DeviceKind, Tensor};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::collections::HashMap;
use std::sync::{Mutex, TryLockError};

fn parse_device(device: &str) -> PyResult<DeviceKind> {
    let kind = DeviceKind::parse(device.trim()).ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!("unknown device {device:?}: use \"cpu\", \"cuda\" or \"cuda:N\""))
    })?;
    if let DeviceKind::Cuda(n) = kind {
        #[cfg(feature = "cuda")]
        {
            let count = gorgon_cuda::device_count();
            if count == 0 {
                let reason = crate::cuda_reason();
                return Err(new_err(Kind::Device, format!("device {device:?} is not available: {reason}")));
            }
            if n >= count {
                return Err(new_err(Kind::Device, format!("device {device:?} is not available: there are {count} CUDA device(s)")));
            }
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = n;
            let reason = crate::cuda_reason();
            return Err(new_err(Kind::Device, format!("device {device:?} is not available: {reason}")));
        }
    }
    Ok(kind)
}

/// The machine a Python handle drives: the CPU tape machine, or (when built with CUDA
/// support and asked for `device="cuda"`) the GPU machine with the same API.
pub(crate) enum Backend {
    /// `gorgon_autodiff::vm::TapeMachine`.
    Cpu(TapeMachine),
    /// `gorgon_cuda::machine::CudaMachine`.
    #[cfg(feature = "cuda")]
    Cuda(gorgon_cuda::machine::CudaMachine),
}

/// Calls the same method on whichever machine a [`Backend`] holds.
macro_rules! on_backend {
    ($b:expr, $m:ident => $e:expr) => {
        match $b {
            Backend::Cpu($m) => $e,
            #[cfg(feature = "cuda")]
            Backend::Cuda($m) => $e,
        }
    };
}

impl Backend {
    /// Compiles `graph` for the device `opts.device` names.
    fn new(graph: SharedGraph, opts: MachineOptions) -> gorgon_autodiff::Result<Backend> {
        match opts.device {
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda(_) => Ok(Backend::Cuda(gorgon_cuda::machine::CudaMachine::new(graph, opts)?)),
            _ => Ok(Backend::Cpu(TapeMachine::new(graph, opts)?)),
        }
    }
    fn run_all(&self) -> gorgon_autodiff::Result<()> {
        on_backend!(self, m => m.run_all())
    }
    fn reset(&self) -> gorgon_autodiff::Result<()> {
        on_backend!(self, m => m.reset())
    }
    fn close(&self) {
        on_backend!(self, m => m.close())
    }
    fn is_closed(&self) -> bool {
        on_backend!(self, m => m.is_closed())
    }
    fn program(&self) -> gorgon_autodiff::Result<Vec<String>> {
        on_backend!(self, m => m.program())
    }
    fn watched(&self) -> gorgon_autodiff::Result<HashMap<NodeId, Vec<Tensor>>> {
        on_backend!(self, m => m.watched())
    }
    fn trace_log(&self) -> gorgon_autodiff::Result<Vec<String>> {
        on_backend!(self, m => m.trace_log())
    }
    fn value(&self, node: NodeId) -> gorgon_autodiff::Result<Tensor> {
        on_backend!(self, m => m.value(node))
    }
    fn with_buffer<R>(&self, node: NodeId, f: impl FnOnce(Option<gorgon_core::TensorView>) -> R) -> gorgon_autodiff::Result<R> {
        on_backend!(self, m => m.with_buffer(node, f))
    }
    /// `(uploads, downloads)` between host and device (always `(0, 0)` on the CPU).
    fn transfers(&self) -> (u64, u64) {
        match self {
            Backend::Cpu(_) => (0, 0),
            #[cfg(feature = "cuda")]
            Backend::Cuda(m) => m.transfers(),
        }
    }
    /// `"cpu"` or the GPU's name.
    fn device_name(&self) -> String {
        match self {
            Backend::Cpu(_) => "cpu".to_string(),
            #[cfg(feature = "cuda")]
            Backend::Cuda(m) => m.device_name(),
        }
    }
}

fn options(py: Python<'_>, graph: &SharedGraph, device: &str, watch: Vec<i64>, nan_guard: bool, trace: bool, outputs: Option<Vec<i64>>) -> PyResult<MachineOptions> {
    let device = parse_device(device)?;
    let watch = convert::node_ids(&watch)?;
    let mut outputs = outputs.map(|o| convert::node_ids(&o)).transpose()?;
    if let Some(o) = outputs.as_mut() {
        // Watched nodes must be computed by the program (the VM reads them from its buffers).
        o.extend(watch.iter().copied().filter(|w| !o.contains(w)).collect::<Vec<_>>());
    }
    for &id in watch.iter().chain(outputs.iter().flatten()) {
        crate::graph::check_node(py, graph, id)?;
    }
    Ok(MachineOptions { device, watch, nan_guard, trace, outputs, ..MachineOptions::default() })
}

fn tensors_dict<'py>(py: Python<'py>, w: HashMap<NodeId, Vec<Tensor>>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, vs) in w {
        let l = PyList::new(py, vs.into_iter().map(|t| convert::tensor_to_py(py, t)))?;
        d.set_item(k, l)?;
    }
    Ok(d)
}

/// Runs a machine with the GIL released; a quick program (a few small elementwise
/// instructions) whose locks are free runs at once with the GIL held, since releasing and
/// re-taking it would cost more than the run.
fn run(py: Python<'_>, m: &Backend) -> PyResult<()> {
    clear_parked();
    if let Backend::Cpu(t) = m {
        if let Some(r) = t.try_run_all_now() {
            return r.py();
        }
    }
    py.detach(|| m.run_all()).py()
}

/// The methods both machine classes share, over the underlying tape.
macro_rules! machine_common {
    ($ty:ty, { $($ctor:tt)* }) => {
        #[pymethods]
        impl $ty {
            $($ctor)*

            /// Runs the program once (GIL released; a tiny program runs with it held).
            fn run_all(&self, py: Python<'_>) -> PyResult<()> {
                guard(|| run(py, self.tape()))
            }
            /// Forgets the last run's results (bound values stay).
            fn reset(&self, py: Python<'_>) -> PyResult<()> {
                guard(|| py.detach(|| self.tape().reset()).py())
            }
            /// Frees every buffer now; later runs raise GraphError.
            fn close(&self, py: Python<'_>) -> PyResult<()> {
                guard(|| {
                    py.detach(|| self.tape().close());
                    Ok(())
                })
            }
            /// True after close().
            #[getter]
            fn closed(&self, py: Python<'_>) -> PyResult<bool> {
                guard(|| Ok(py.detach(|| self.tape().is_closed())))
            }
            /// One printable line per instruction.
            fn program(&self, py: Python<'_>) -> PyResult<Vec<String>> {
                guard(|| py.detach(|| self.tape().program()).py())
            }
            /// Values recorded for watched nodes, one per run: {id: [arrays]}.
            fn watched<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                guard(|| {
                    let w = py.detach(|| self.tape().watched()).py()?;
                    tensors_dict(py, w)
                })
            }
            /// Trace lines of the last run (with trace=True).
            fn trace_log(&self, py: Python<'_>) -> PyResult<Vec<String>> {
                guard(|| py.detach(|| self.tape().trace_log()).py())
            }
            /// `(uploads, downloads)` of tensors between host and device so far (a GPU
            /// machine copies only at `let` and `.value`; the CPU machine reports `(0, 0)`).
            fn transfers(&self, py: Python<'_>) -> PyResult<(u64, u64)> {
                guard(|| Ok(py.detach(|| self.tape().transfers())))
            }
            /// The device this machine runs on: `"cpu"` or the GPU's name.
            #[getter]
            fn device_name(&self, py: Python<'_>) -> PyResult<String> {
                guard(|| Ok(py.detach(|| self.tape().device_name())))
            }
            /// Values of nodes after the last run, as new arrays.
            fn output_values<'py>(&self, py: Python<'py>, ids: Vec<i64>) -> PyResult<Vec<Bound<'py, PyAny>>> {
                guard(|| {
                    let ids = convert::node_ids(&ids)?;
                    let m = self.tape();
                    let ts = py.detach(|| ids.iter().map(|&i| m.value(i)).collect::<gorgon_autodiff::Result<Vec<_>>>()).py()?;
                    Ok(ts.into_iter().map(|t| convert::tensor_to_py(py, t)).collect())
                })
            }
        }
    };
}

/// A compiled program over a graph (see `gorgon_rs.TapeMachine`).
#[pyclass(frozen, name = "TapeMachine", module = "gorgon_rs._native")]
pub struct PyTapeMachine {
    m: Backend,
}

impl PyTapeMachine {
    fn tape(&self) -> &Backend {
        &self.m
    }
}

machine_common!(PyTapeMachine, {
    #[new]
    #[pyo3(signature = (graph, device = "cpu", watch = vec![], nan_guard = false, trace = false, outputs = None))]
    fn new(py: Python<'_>, graph: &Bound<'_, PyGraph>, device: &str, watch: Vec<i64>, nan_guard: bool, trace: bool, outputs: Option<Vec<i64>>) -> PyResult<Self> {
        guard(|| {
            let g = graph.get().g.clone();
            let opts = options(py, &g, device, watch, nan_guard, trace, outputs)?;
            let m = py.detach(|| Backend::new(g, opts)).py()?;
            Ok(PyTapeMachine { m })
        })
    }
});

/// The eager machine with backprop (see `gorgon_rs.LispMachine`).
#[pyclass(frozen, name = "LispMachine", module = "gorgon_rs._native")]
pub struct PyLispMachine {
    m: Backend,
}

impl PyLispMachine {
    fn tape(&self) -> &Backend {
        &self.m
    }
}

machine_common!(PyLispMachine, {
    #[new]
    #[pyo3(signature = (graph, backprop = true, device = "cpu", watch = vec![], nan_guard = false, trace = false))]
    fn new(py: Python<'_>, graph: &Bound<'_, PyGraph>, backprop: bool, device: &str, watch: Vec<i64>, nan_guard: bool, trace: bool) -> PyResult<Self> {
        guard(|| {
            let g = graph.get().g.clone();
            let opts = options(py, &g, device, watch, nan_guard, trace, None)?;
            let m = py
                .detach(|| -> gorgon_autodiff::Result<Backend> {
                    match opts.device {
                        DeviceKind::Cpu => Ok(Backend::Cpu(LispMachine::new(g, backprop, opts)?.into_tape())),
                        _ => {
                            let opts = LispMachine::prepare(&g, backprop, opts)?;
                            Backend::new(g, opts)
                        }
                    }
                })
                .py()?;
            Ok(PyLispMachine { m })
        })
    }
});

// ------------------------------------------------------------------------------------------
// Function
// ------------------------------------------------------------------------------------------

/// An input or output node of a function, as compiled.
struct NodeSpec {
    id: NodeId,
    dtype: DType,
    shape: Vec<usize>,
}

/// A compiled callable: `f(*values)` binds each input leaf, runs the program and returns the
/// outputs' values (one array, or a list). Values that need a conversion (lists, other
/// dtypes) go through `converter(index, value) -> ndarray` from the Python layer. Calls of one
/// function are serialized; the inputs are the graph's leaves, so other machines or functions
/// binding the same leaves from other threads at the same time see each other's values.
#[pyclass(frozen, name = "Function", module = "gorgon_rs._native")]
pub struct PyFunction {
    graph: SharedGraph,
    m: Backend,
    inputs: Vec<NodeSpec>,
    outputs: Vec<NodeSpec>,
    /// Per output: large enough to be lent (zero-copy, see [`crate::lent`]) and the first
    /// mention of its node (a repeated output gets its own copy, never a shared buffer).
    lend: Vec<bool>,
    single: bool,
    converter: Py<PyAny>,
    /// Serializes calls of this function (bind, run, read must not interleave across threads).
    calls: Mutex<()>,
}

impl PyFunction {
    /// A whole call under one hold of the machine's and the graph's locks, with the GIL held,
    /// when the program is quick (see `TapeMachine::is_quick`), every value binds without a
    /// conversion and no lock is held elsewhere; `None` (nothing bound) otherwise. The output
    /// arrays are made before the locks are taken, so no Python code (a collection running
    /// finalizers) can run while they are held.
    fn call_now<'py>(&self, py: Python<'py>, args: &Bound<'py, PyTuple>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Backend::Cpu(m) = &self.m else { return Ok(None) };
        if !m.is_quick() {
            return Ok(None);
        }
        let Ok(_serial) = self.calls.try_lock() else { return Ok(None) };
        let mut values: Vec<Input> = Vec::with_capacity(self.inputs.len());
        for (spec, a) in self.inputs.iter().zip(args.iter()) {
            match convert::fast_input(&a, spec.dtype, &spec.shape)? {
                Some(v) => values.push(v),
                None => return Ok(None),
            }
        }
        let outs: Vec<OutArray<'py>> = self.outputs.iter().map(|o| OutArray::new(py, o.dtype, &o.shape)).collect();
        let bind = |g: &mut gorgon_autodiff::Graph| -> gorgon_autodiff::Result<()> {
            for (spec, v) in self.inputs.iter().zip(values) {
                v.bind(g, spec.id)?;
            }
            Ok(())
        };
        let read = |res: &gorgon_autodiff::vm::RunResults<'_>| -> bool {
            self.outputs.iter().zip(&outs).all(|(o, a)| res.view(o.id).is_some_and(|v| a.fill(&v)))
        };
        clear_parked();
        match m.try_call_now(bind, read) {
            None => return Ok(None),
            Some(Err(e)) => return Err(to_pyerr(e)),
            Some(Ok(false)) => return Err(new_err(Kind::Internal, "function: an output buffer does not match its node")),
            Some(Ok(true)) => {}
        }
        let mut outs = outs.into_iter().map(OutArray::into_any);
        if self.single {
            return Ok(outs.next());
        }
        Ok(Some(PyList::new(py, outs)?.into_any()))
    }

    fn output<'py>(&self, py: Python<'py>, k: usize) -> PyResult<Bound<'py, PyAny>> {
        let id = self.outputs[k].id;
        if !callbacks_exist() {
            if let (Backend::Cpu(m), true) = (&self.m, self.lend[k]) {
                if let Some(l) = m.lend(id).py()? {
                    return crate::lent::lent_to_py(py, l);
                }
            }
            let mut out: Option<PyResult<Bound<'py, PyAny>>> = None;
            self.m
                .with_buffer(id, |v| {
                    if let Some(v) = v {
                        out = Some(Ok(convert::view_to_py(py, &v)));
                    }
                })
                .py()?;
            if let Some(o) = out {
                return o;
            }
        }
        let m = &self.m;
        let t = py.detach(|| m.value(id)).py()?;
        Ok(convert::tensor_to_py(py, t))
    }
}

#[pymethods]
impl PyFunction {
    #[new]
    #[pyo3(signature = (graph, inputs, outputs, single, converter, device = "cpu"))]
    fn new(py: Python<'_>, graph: &Bound<'_, PyGraph>, inputs: Vec<i64>, outputs: Vec<i64>, single: bool, converter: Py<PyAny>, device: &str) -> PyResult<Self> {
        guard(|| {
            let g = graph.get().g.clone();
            let ins = convert::node_ids(&inputs)?;
            let outs = convert::node_ids(&outputs)?;
            let (specs, out_specs) = {
                let gr = convert::read_graph(py, &g)?;
                let mut specs = Vec::with_capacity(ins.len());
                for &i in &ins {
                    let n = gr.try_node(i).py()?;
                    if !matches!(n.kind, NodeKind::Leaf) {
                        return Err(new_err(Kind::Graph, format!("function: input {} is not an input or variable node (it is {})", n.label(i), gorgon_autodiff::graph::kind_name(&n.kind))));
                    }
                    specs.push(NodeSpec { id: i, dtype: n.dtype, shape: n.shape.clone() });
                }
                let mut out_specs = Vec::with_capacity(outs.len());
                for &o in &outs {
                    let n = gr.try_node(o).py()?;
                    out_specs.push(NodeSpec { id: o, dtype: n.dtype, shape: n.shape.clone() });
                }
                (specs, out_specs)
            };
            let opts = MachineOptions { device: parse_device(device)?, outputs: Some(outs.clone()), ..MachineOptions::default() };
            let gc = g.clone();
            let m = py.detach(|| Backend::new(gc, opts)).py()?;
            let lend = out_specs
                .iter()
                .enumerate()
                .map(|(k, o)| o.shape.iter().product::<usize>() >= crate::lent::LEND_MIN && !out_specs[..k].iter().any(|p| p.id == o.id))
                .collect();
            Ok(PyFunction { graph: g, m, inputs: specs, outputs: out_specs, lend, single, converter, calls: Mutex::new(()) })
        })
    }

    #[pyo3(signature = (*args))]
    fn __call__<'py>(&self, py: Python<'py>, args: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            if args.len() != self.inputs.len() {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "this function takes {} input value(s) ({} given)",
                    self.inputs.len(),
                    args.len()
                )));
            }
            if let Some(out) = self.call_now(py, args)? {
                return Ok(out);
            }
            let _serial = loop {
                match self.calls.try_lock() {
                    Ok(guard) => break guard,
                    Err(TryLockError::Poisoned(p)) => break p.into_inner(),
                    Err(TryLockError::WouldBlock) => py.detach(|| drop(self.calls.lock())),
                }
            };
            if self.m.is_closed() {
                return Err(new_err(Kind::Graph, "this function is closed; its machine was freed"));
            }
            let mut values: Vec<Input> = Vec::with_capacity(self.inputs.len());
            for (k, (spec, a)) in self.inputs.iter().zip(args.iter()).enumerate() {
                let v = match convert::fast_input(&a, spec.dtype, &spec.shape)? {
                    Some(v) => v,
                    None => {
                        let conv = self.converter.bind(py).call1((k, a))?;
                        convert::fast_input(&conv, spec.dtype, &spec.shape)?
                            .ok_or_else(|| new_err(Kind::Internal, "function: the converter returned an unusable array"))?
                    }
                };
                values.push(v);
            }
            {
                let mut g = write_graph(py, &self.graph)?;
                for (spec, v) in self.inputs.iter().zip(values) {
                    v.bind(&mut g, spec.id).map_err(to_pyerr)?;
                }
            }
            run(py, &self.m)?;
            if self.single {
                return self.output(py, 0);
            }
            let outs = (0..self.outputs.len()).map(|k| self.output(py, k)).collect::<PyResult<Vec<_>>>()?;
            Ok(PyList::new(py, outs)?.into_any())
        })
    }

    /// Frees the compiled program.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        guard(|| {
            py.detach(|| self.m.close());
            Ok(())
        })
    }

    /// The program listing.
    fn program(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        guard(|| py.detach(|| self.m.program()).py())
    }

    /// Number of inputs.
    #[getter]
    fn n_inputs(&self) -> usize {
        self.inputs.len()
    }
}
