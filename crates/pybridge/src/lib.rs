//! # gorgon-pybridge: the `gorgon_rs._native` extension module
//!
//! Thin `#[pyclass]` newtypes over `gorgon_autodiff` (graph, machines, compiled functions,
//! Python custom ops) and module functions (solver steps, safetensors I/O, seeding, device
//! queries). NumPy arrays come in without a copy where they can ([`convert`]) and go out as
//! new arrays; every `gorgon_autodiff::Error` becomes an exception of `gorgon_rs.errors`
//! through one mapping ([`errors::to_pyerr`]); every entry point turns a Rust panic into
//! `gorgon_rs.errors.InternalError` ([`errors::guard`]). Runs, compilation and solver steps
//! release the GIL. The contract is `python/gorgon_rs/_native.pyi`.
//!
//! This crate is the only one that knows Python; it holds no graph logic.

pub mod convert;
pub mod custom;
pub mod errors;
pub mod graph;
pub mod lent;
pub mod machine;
pub mod node;

use crate::errors::{guard, new_err, IntoPyResult, Kind};
use gorgon_autodiff::solver::{self, Rule, StateBufs};
use gorgon_core::kernels::optim::{GradPrep, SolverRule};
use numpy::{PyArrayDyn, PyArrayMethods, PyReadwriteArrayDyn};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// Why CUDA cannot be used (no driver library, no device, built without CUDA support...).
pub(crate) fn cuda_reason() -> String {
    gorgon_cuda::probe::unavailable_reason().unwrap_or_else(|| "CUDA is available, but this build runs programs on the CPU only".to_string())
}

fn hyper(d: &Bound<'_, PyDict>, key: &str, default: Option<f64>) -> PyResult<f64> {
    match d.get_item(key)? {
        Some(v) if !v.is_none() => v.extract::<f64>(),
        _ => default.ok_or_else(|| pyo3::exceptions::PyValueError::new_err(format!("solver_step: missing hyperparameter {key:?}"))),
    }
}

fn rule_from(rule: &str, h: &Bound<'_, PyDict>) -> PyResult<Rule> {
    let lr = hyper(h, "lr", None)?;
    Ok(Rule::Elementwise(match rule {
        "sgd" => SolverRule::Sgd {
            lr,
            momentum: hyper(h, "momentum", Some(0.0))?,
            nesterov: hyper(h, "nesterov", Some(0.0))? != 0.0,
            dampening: hyper(h, "dampening", Some(0.0))?,
        },
        "adagrad" => SolverRule::AdaGrad { lr, eps: hyper(h, "eps", Some(1e-10))? },
        "rmsprop" => SolverRule::RMSProp { lr, alpha: hyper(h, "alpha", Some(0.99))?, eps: hyper(h, "eps", Some(1e-8))? },
        "adam" => SolverRule::Adam { lr, beta1: hyper(h, "beta1", Some(0.9))?, beta2: hyper(h, "beta2", Some(0.999))?, eps: hyper(h, "eps", Some(1e-8))? },
        "adamw" => SolverRule::AdamW {
            lr,
            beta1: hyper(h, "beta1", Some(0.9))?,
            beta2: hyper(h, "beta2", Some(0.999))?,
            eps: hyper(h, "eps", Some(1e-8))?,
            weight_decay: hyper(h, "weight_decay", Some(0.01))?,
        },
        "adadelta" => SolverRule::AdaDelta { lr, rho: hyper(h, "rho", Some(0.9))?, eps: hyper(h, "eps", Some(1e-6))? },
        "bb" => return Ok(Rule::BarzilaiBorwein { lr }),
        other => return Err(pyo3::exceptions::PyValueError::new_err(format!("solver_step: unknown rule {other:?}"))),
    }))
}

enum Guards<'py> {
    F32(Vec<PyReadwriteArrayDyn<'py, f32>>),
    F64(Vec<PyReadwriteArrayDyn<'py, f64>>),
}

fn state_guards<'py>(list: &Bound<'py, PyAny>, k: usize) -> PyResult<Guards<'py>> {
    let items: Vec<Bound<'py, PyAny>> = list.try_iter()?.collect::<PyResult<_>>()?;
    let bad = || new_err(Kind::DType, format!("solver_step: the state arrays of parameter #{k} must be writable, C-contiguous float32 or float64 arrays of one dtype"));
    let f32s: Option<Vec<_>> = items.iter().map(|a| a.cast::<PyArrayDyn<f32>>().ok().and_then(|a| a.try_readwrite().ok())).collect();
    if let Some(v) = f32s.filter(|v| !v.is_empty()) {
        return if v.iter().all(|a| a.as_slice().is_ok()) { Ok(Guards::F32(v)) } else { Err(bad()) };
    }
    let f64s: Option<Vec<_>> = items.iter().map(|a| a.cast::<PyArrayDyn<f64>>().ok().and_then(|a| a.try_readwrite().ok())).collect();
    match f64s {
        Some(v) if v.iter().all(|a| a.as_slice().is_ok()) => Ok(Guards::F64(v)),
        _ => Err(bad()),
    }
}

/// One fused update of each parameter leaf from its gradient (GIL released).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn solver_step(
    py: Python<'_>,
    graph: &Bound<'_, graph::PyGraph>,
    rule: &str,
    hyper: &Bound<'_, PyDict>,
    prep: &Bound<'_, PyDict>,
    t: u64,
    params: Vec<i64>,
    states: &Bound<'_, PyAny>,
) -> PyResult<()> {
    guard(|| {
        let rule = rule_from(rule, hyper)?;
        let clip = match prep.get_item("clip")? {
            Some(v) if !v.is_none() => Some(v.extract::<f64>()?),
            _ => None,
        };
        let gp = GradPrep {
            batch_size: self::hyper(prep, "batch_size", Some(1.0))?,
            clip,
            l1: self::hyper(prep, "l1", Some(0.0))?,
            l2: self::hyper(prep, "l2", Some(0.0))?,
        };
        let params = convert::node_ids(&params)?;
        let lists: Vec<Bound<'_, PyAny>> = states.try_iter()?.collect::<PyResult<_>>()?;
        let mut guards = Vec::with_capacity(lists.len());
        for (k, l) in lists.iter().enumerate() {
            guards.push(state_guards(l, k)?);
        }
        let mut bufs: Vec<StateBufs<'_>> = guards
            .iter_mut()
            .map(|g| match g {
                Guards::F32(v) => StateBufs::F32(v.iter_mut().map(|a| a.as_slice_mut().expect("checked contiguous")).collect()),
                Guards::F64(v) => StateBufs::F64(v.iter_mut().map(|a| a.as_slice_mut().expect("checked contiguous")).collect()),
            })
            .collect();
        let g = &graph.get().g;
        py.detach(|| solver::step(g, &rule, &gp, t, &params, &mut bufs)).py()
    })
}

/// Saves named arrays to a safetensors file atomically.
#[pyfunction]
fn save_safetensors(py: Python<'_>, path: std::path::PathBuf, items: &Bound<'_, PyAny>) -> PyResult<()> {
    guard(|| {
        let mut out = Vec::new();
        for item in items.try_iter()? {
            let (name, arr): (String, Bound<'_, PyAny>) = item?.extract()?;
            let t = convert::tensor_from_any(py, &arr, &format!("save: tensor {name:?}"))?;
            out.push((name, t));
        }
        py.detach(|| gorgon_autodiff::io::save(&path, &out)).py()
    })
}

/// Loads every tensor of a safetensors file.
#[pyfunction]
fn load_safetensors<'py>(py: Python<'py>, path: std::path::PathBuf) -> PyResult<Bound<'py, PyDict>> {
    guard(|| {
        let items = py.detach(|| gorgon_autodiff::io::load(&path)).py()?;
        let d = PyDict::new(py);
        for (name, t) in items {
            d.set_item(name, convert::tensor_to_py(py, t))?;
        }
        Ok(d)
    })
}

/// Seeds the native random streams (dropout masks).
#[pyfunction]
fn seed(n: u64) -> PyResult<()> {
    guard(|| {
        gorgon_autodiff::random::seed(n);
        Ok(())
    })
}

/// Whether a CUDA device can be used.
#[pyfunction]
fn cuda_is_available() -> bool {
    probe_guard(gorgon_cuda::probe::is_available)
}

/// Number of usable CUDA devices.
#[pyfunction]
fn cuda_device_count() -> usize {
    probe_guard(gorgon_cuda::probe::device_count)
}

/// Why CUDA cannot be used (None when it can).
#[pyfunction]
fn cuda_unavailable_reason() -> Option<String> {
    probe_guard(gorgon_cuda::probe::unavailable_reason)
}

/// `(free, total)` bytes of memory on CUDA device `device` (cuMemGetInfo), as the driver
/// reports it for this process; DeviceError when the device cannot be used.
#[pyfunction]
#[pyo3(signature = (device = 0))]
fn cuda_memory_info(py: Python<'_>, device: usize) -> PyResult<(usize, usize)> {
    guard(|| {
        #[cfg(feature = "cuda")]
        {
            if let Some(reason) = probe_guard(gorgon_cuda::probe::unavailable_reason) {
                return Err(new_err(Kind::Device, format!("CUDA is not available: {reason}")));
            }
            py.detach(|| gorgon_cuda::CudaDevice::new(device).and_then(|d| d.memory_info()))
                .map_err(|e| new_err(Kind::Device, e.to_string()))
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = (py, device);
            Err(new_err(Kind::Device, format!("CUDA is not available: {}", cuda_reason())))
        }
    })
}

/// Runs a probe, treating a panic inside a driver library loader as "unavailable".
fn probe_guard<T: Default>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> T {
    std::panic::catch_unwind(f).unwrap_or_default()
}

/// The SIMD instruction set the CPU kernels use ("avx512", "avx2", "neon", "scalar").
#[pyfunction]
fn simd_level() -> PyResult<&'static str> {
    guard(|| Ok(gorgon_core::kernels::simd::level().name()))
}

/// Panics inside Rust on purpose (tests the panic → InternalError conversion).
#[pyfunction]
fn _debug_panic(message: String) -> PyResult<()> {
    guard(|| panic!("{message}"))
}

/// The dtype names the bridge accepts.
#[pyfunction]
fn dtypes(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    PyList::new(py, ["float32", "float64", "int32", "int64", "bool"])
}

/// The `gorgon_rs._native` module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<graph::PyGraph>()?;
    m.add_class::<lent::LentBuffer>()?;
    m.add_class::<node::PyNodeBase>()?;
    m.add_class::<machine::PyTapeMachine>()?;
    m.add_class::<machine::PyLispMachine>()?;
    m.add_class::<machine::PyFunction>()?;
    m.add_class::<custom::PyCustomOp>()?;
    m.add_function(wrap_pyfunction!(solver_step, m)?)?;
    m.add_function(wrap_pyfunction!(save_safetensors, m)?)?;
    m.add_function(wrap_pyfunction!(load_safetensors, m)?)?;
    m.add_function(wrap_pyfunction!(seed, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_is_available, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_device_count, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_unavailable_reason, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_memory_info, m)?)?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(_debug_panic, m)?)?;
    m.add_function(wrap_pyfunction!(dtypes, m)?)?;
    Ok(())
}
