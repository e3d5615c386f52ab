//! [`CudaMachine`]: runs a compiled [`Program`] of gorgon-autodiff on one GPU, with the API of
//! the CPU [`TapeMachine`](gorgon_autodiff::vm::TapeMachine) (`run_all`, `reset`, `close`,
//! `program`, `watched`, `trace_log`, `value`) so the Python bridge can hold either.
//!
//! Owns: the machine's [`CudaDevice`] (context, stream, cuBLAS handle), one device buffer per
//! program buffer and per leaf/constant the program reads (allocated once, at creation), and
//! the mapping of instructions to launch methods (the private `lower` module). Must not change the graph except
//! through `let` (post-run updates) and must not touch the CPU machine's state.
//!
//! Transfers happen only where they must: a leaf or constant is uploaded at the start of a
//! run when its [`Graph::value_version`] changed since the last upload (after `let`, or after
//! a solver step changed it on the host), and a node's value is downloaded when someone asks
//! for it (`value`, `node.value` / `.grad` through [`ResultSource`], `watch`, `nan_guard`,
//! post-run `updates`). [`CudaMachine::transfers`] counts both.
//!
//! Solvers: a step whose gradients this machine computed runs on the device (the private
//! `solve` module): the update kernels change the machine's copies of the parameters in
//! place and the graph records that the newer values live here; `.value`, other machines, a
//! host solver step and [`CudaMachine::close`] fetch them. Other steps take the host path —
//! `solver::step` reads each gradient through [`ResultSource`] and the next run re-uploads
//! the weights (their version changed).
//!
//! Elementwise trees fuse as on the CPU (when the compiler may drop their intermediates:
//! `outputs=` or gradient intermediates) into one generated kernel each (`crate::fused`).
//! Ops without a kernel for their dtype, custom ops and dropout masks run on the host
//! (download operands, CPU kernel, upload); `program()` marks them `(host)`.

mod lower;
mod solve;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use gorgon_autodiff::compile::{compile, CompileOptions, Program, Slot};
use gorgon_autodiff::graph::{Graph, NodeId, ResultSource, Value};
use gorgon_autodiff::op::Op;
use gorgon_autodiff::vm::{node_value, read, write, MachineOptions, SharedGraph};
use gorgon_autodiff::{Error, Result};
use gorgon_core::error::fmt_shape;
use gorgon_core::kernels::elementwise::BinaryOp;
use gorgon_core::{CoreError, DType, Device, DeviceKind, Tensor, TensorView};

use crate::device::{BufData, CudaBuffer, CudaDevice};
use crate::CudaError;
use lower::{lower, Aux, Kind};

/// A device copy of a leaf or constant and the graph version it holds.
struct StoredBuf {
    buf: CudaBuffer,
    version: Option<u64>,
}

/// One lowered instruction with its extra device buffers and host staging.
struct Step {
    kind: Kind,
    aux: Vec<CudaBuffer>,
    host: Option<Tensor>,
    /// The generated kernel of a [`Kind::Fused`] step: `(module = kernel name, elements per
    /// vector)`.
    fused: Option<(String, usize)>,
}

struct State {
    program: Program,
    steps: Vec<Step>,
    dev: Option<CudaDevice>,
    bufs: Vec<Option<CudaBuffer>>,
    stored: BTreeMap<NodeId, StoredBuf>,
    computed: bool,
    closed: bool,
    watched: HashMap<NodeId, Vec<Tensor>>,
    trace_log: Vec<String>,
    /// Transfer counts when the device was released.
    final_transfers: (u64, u64),
    /// Device scratch for solver state of each parameter stepped on the device.
    opt_state: HashMap<NodeId, Vec<CudaBuffer>>,
}

struct Inner {
    graph: SharedGraph,
    opts: MachineOptions,
    state: Mutex<State>,
    /// This machine as the graph sees it (to mark leaves it holds newer values of).
    me: Weak<Inner>,
}

/// Compiles a graph once and runs it many times on a CUDA GPU.
///
/// ```
/// use gorgon_autodiff::{Graph, vm::MachineOptions};
/// use gorgon_core::DeviceKind;
/// use std::sync::{Arc, RwLock};
/// let g = Arc::new(RwLock::new(Graph::new(true)));
/// let opts = MachineOptions { device: DeviceKind::Cuda(0), ..Default::default() };
/// match gorgon_cuda::machine::CudaMachine::new(g, opts) {
///     Ok(m) => m.run_all().unwrap(),
///     Err(e) => println!("no GPU: {e}"), // gorgon_autodiff::Error::Device with the reason
/// }
/// ```
pub struct CudaMachine {
    inner: Arc<Inner>,
}

fn dev_err(e: CudaError) -> Error {
    Error::Device(e.to_string())
}

fn closed_err(what: &str) -> Error {
    Error::Graph(format!("{what}: the machine is closed"))
}

fn has_nonfinite(t: &Tensor) -> bool {
    match t {
        Tensor::F32(a) => a.iter().any(|v| !v.is_finite()),
        Tensor::F64(a) => a.iter().any(|v| !v.is_finite()),
        _ => false,
    }
}

fn bind(dev: &CudaDevice) -> Result<()> {
    dev.ctx.bind_to_thread().map_err(|e| dev_err(e.into()))
}

impl CudaMachine {
    /// Opens GPU `opts.device` (`DeviceKind::Cuda(n)`), compiles `graph` (without fusion),
    /// lowers every instruction and allocates every buffer on the device. Without a usable
    /// GPU this is `Error::Device` with the probe's reason (never a panic).
    pub fn new(graph: SharedGraph, mut opts: MachineOptions) -> Result<CudaMachine> {
        let DeviceKind::Cuda(ordinal) = opts.device else {
            return Err(Error::Device("CudaMachine runs on a CUDA device: ask for device \"cuda\" (TapeMachine runs on the CPU)".into()));
        };
        opts.watch = opts.watch_list();
        let mut dev = CudaDevice::new(ordinal).map_err(dev_err)?;
        let (program, lowered, stored_specs) = {
            let g = read(&graph)?;
            for &w in &opts.watch {
                g.try_node(w)?;
            }
            let copts = CompileOptions { outputs: opts.outputs.clone(), keep: opts.watch.clone(), keep_all: opts.keep_all, no_fuse: opts.no_fuse, fuse_reductions: false, fuse_broadcasts: false, remat: false };
            let program = compile(&g, &copts)?;
            let lowered = lower_program(&g, &program)?;
            let mut stored: BTreeMap<NodeId, (DType, Vec<usize>)> = BTreeMap::new();
            for ins in &program.instrs {
                for s in &ins.inputs {
                    if let Slot::Stored(n) = *s {
                        let node = g.node(n);
                        stored.insert(n, (node.dtype, node.shape.clone()));
                    }
                }
            }
            (program, lowered, stored)
        };
        let alloc_ctx = |e: CoreError, what: String| -> Error {
            Error::from(e).context(format!("CudaMachine: allocating {what} (the program needs {} bytes of buffers)", program.buffer_bytes()))
        };
        let mut bufs = Vec::with_capacity(program.buffers.len());
        for (i, spec) in program.buffers.iter().enumerate() {
            let b = dev.alloc(spec.dtype, &spec.shape).map_err(|e| alloc_ctx(e, format!("buffer {i} {} {}", fmt_shape(&spec.shape), spec.dtype)))?;
            bufs.push(Some(b));
        }
        let mut stored = BTreeMap::new();
        for (n, (dt, shape)) in stored_specs {
            let buf = dev.alloc(dt, &shape).map_err(|e| alloc_ctx(e, format!("the device copy of node #{n}")))?;
            stored.insert(n, StoredBuf { buf, version: None });
        }
        let mut steps = Vec::with_capacity(lowered.len());
        for ((l, single), ins) in lowered.into_iter().zip(&program.instrs) {
            let mut aux = Vec::with_capacity(l.aux.len());
            for a in &l.aux {
                let b = match a {
                    Aux::Table(t) => dev.to_device(t),
                    Aux::Scratch(dt, shape) => dev.alloc(*dt, shape),
                };
                aux.push(b.map_err(|e| alloc_ctx(e, format!("scratch space of {}", ins.op.name())))?);
            }
            let host = match l.kind {
                Kind::Host { .. } => {
                    let spec = &program.buffers[ins.out];
                    Some(Tensor::try_zeros(spec.dtype, &spec.shape).map_err(Error::from)?)
                }
                _ => None,
            };
            let fused = match &l.kind {
                Kind::Fused(e) => {
                    let spec = &program.buffers[ins.out];
                    let k = crate::fused::kernel_source(e, spec.dtype, &single)
                        .ok_or_else(|| Error::Internal(format!("cuda: cannot generate a kernel for {}", ins.op.name())))?;
                    dev.load_generated(&k.name, &k.source).map_err(|e| dev_err(e).context(format!("compiling the fused kernel of {}", ins.op.name())))?;
                    Some((k.name, k.vec))
                }
                _ => None,
            };
            steps.push(Step { kind: l.kind, aux, host, fused });
        }
        let state = State {
            program,
            steps,
            dev: Some(dev),
            bufs,
            stored,
            computed: false,
            closed: false,
            watched: HashMap::new(),
            trace_log: Vec::new(),
            final_transfers: (0, 0),
            opt_state: HashMap::new(),
        };
        Ok(CudaMachine { inner: Arc::new_cyclic(|me| Inner { graph, opts, state: Mutex::new(state), me: me.clone() }) })
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.inner.lock()
    }

    /// Runs the program once: uploads the leaves and constants that changed, launches every
    /// instruction, waits for the GPU, applies post-run updates and registers this machine as
    /// the graph's result source.
    pub fn run_all(&self) -> Result<()> {
        // Leaves another machine updated in its memory come home first (before our lock);
        // the ones this machine holds newer are current on the device already.
        gorgon_autodiff::vm::sync_leaves(&self.inner.graph, None, Some(Arc::as_ptr(&self.inner) as *const ()))?;
        let mut guard = self.lock()?;
        let st = &mut *guard;
        if st.closed {
            return Err(closed_err("run_all"));
        }
        st.computed = false;
        let opts = &self.inner.opts;
        let State { program, steps, dev, bufs, stored, trace_log, watched, computed, .. } = st;
        let dev = dev.as_mut().ok_or_else(|| closed_err("run_all"))?;
        bind(dev)?;
        {
            let g = read(&self.inner.graph)?;
            gorgon_autodiff::vm::check_inputs_bound(&g, &program.leaves)?;
            upload_changed(&g, dev, stored)?;
            execute(&g, opts, program, steps, dev, bufs, stored, trace_log)?;
        }
        dev.synchronize().map_err(|e| Error::from(e).context("running the program on CUDA"))?;
        let mut g = write(&self.inner.graph)?;
        for &(target, slot) in &program.updates {
            match slot {
                Slot::Buf(b) => {
                    let buf = bufs[b].as_ref().ok_or_else(|| Error::Internal("update source buffer missing".into()))?;
                    let v = dev.download(buf)?;
                    g.let_value(target, Value::Owned(v))?;
                    // Keep the device copy in step without a second upload.
                    if let Some(sb) = stored.get_mut(&target) {
                        copy_into_at(dev, buf, &mut sb.buf, 0)?;
                        sb.version = Some(g.value_version(target));
                    }
                }
                Slot::Stored(n) => {
                    let v = match stored.get(&n).filter(|_| held_here(&g, n, &self.inner)) {
                        Some(sb) => dev.download(&sb.buf)?,
                        None => g.stored_value(n).map(|v| v.view().to_owned()).ok_or_else(|| Error::Internal("update source missing".into()))?,
                    };
                    g.let_value(target, Value::Owned(v))?;
                }
            }
        }
        let weak: Weak<dyn ResultSource> = Arc::downgrade(&self.inner) as Weak<dyn ResultSource>;
        g.set_results(weak);
        for &w in &opts.watch {
            // Watched op nodes are kept by the compiler; leaves and constants come from the
            // graph (never ask a machine here: we hold this one's lock).
            let v = match (program.node_buf.get(&w), stored.get(&w)) {
                (Some(&b), _) => dev.download(bufs[b].as_ref().ok_or_else(|| Error::Internal("watched buffer missing".into()))?)?,
                (None, Some(sb)) if held_here(&g, w, &self.inner) => dev.download(&sb.buf)?,
                (None, _) => g.value(w)?,
            };
            watched.entry(w).or_default().push(v);
        }
        *computed = true;
        Ok(())
    }

    /// Forgets the results of the last run (bound input values are kept).
    pub fn reset(&self) -> Result<()> {
        let mut st = self.lock()?;
        st.computed = false;
        st.watched.clear();
        st.trace_log.clear();
        Ok(())
    }

    /// Frees every device buffer, the cuBLAS handle, the stream and the context now. Leaf
    /// values stay in the graph; later runs raise GraphError. Idempotent; never panics.
    pub fn close(&self) {
        let mut st = match self.inner.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        // Leaf values this machine holds newer than the graph go home before the memory goes.
        let State { dev, stored, .. } = &mut *st;
        if let (Some(dev), Ok(mut g)) = (dev.as_mut(), write(&self.inner.graph)) {
            let _ = dev.ctx.bind_to_thread();
            let mine: Vec<NodeId> = g.newer_leaves().into_iter().map(|(id, _)| id).filter(|&id| held_here(&g, id, &self.inner)).collect();
            for id in mine {
                match stored.get(&id).map(|sb| dev.download(&sb.buf)) {
                    Some(Ok(t)) => {
                        let v = g.value_version(id);
                        g.install_fetched(id, t, v);
                    }
                    // Unreadable (a device error): the graph keeps its older value.
                    _ => g.clear_newer(id),
                }
            }
        }
        st.closed = true;
        st.computed = false;
        st.watched.clear();
        st.opt_state = HashMap::new();
        if let Some(dev) = st.dev.as_ref() {
            let _ = dev.ctx.bind_to_thread();
            st.final_transfers = dev.transfers();
        }
        st.bufs = Vec::new();
        st.stored = BTreeMap::new();
        for s in &mut st.steps {
            s.aux = Vec::new();
            s.host = None;
        }
        // Buffers first (they are freed on the device's stream), then the device itself,
        // which waits for the stream and releases the context.
        st.dev = None;
    }

    /// True after [`CudaMachine::close`].
    pub fn is_closed(&self) -> bool {
        self.inner.state.lock().map(|s| s.closed).unwrap_or(true)
    }

    /// The program listing (as the CPU machine's); instructions run on the host end in `(host)`.
    pub fn program(&self) -> Result<Vec<String>> {
        let st = self.lock()?;
        let mut lines = st.program.listing();
        for (line, step) in lines.iter_mut().zip(&st.steps) {
            if matches!(step.kind, Kind::Host { .. }) {
                line.push_str(" (host)");
            }
        }
        Ok(lines)
    }

    /// Values recorded for watched nodes, one per run.
    pub fn watched(&self) -> Result<HashMap<NodeId, Vec<Tensor>>> {
        Ok(self.lock()?.watched.clone())
    }

    /// Trace lines of the last run (when `trace` is on; each instruction is timed to its
    /// completion on the GPU).
    pub fn trace_log(&self) -> Result<Vec<String>> {
        Ok(self.lock()?.trace_log.clone())
    }

    /// A copy of a node's value from the last run of this machine (one download), or the
    /// stored value of a leaf/constant.
    pub fn value(&self, node: NodeId) -> Result<Tensor> {
        if let Some(r) = self.inner.value_of(node) {
            return r;
        }
        node_value(&self.inner.graph, node)
    }

    /// Same as [`CudaMachine::value`] (a download is already a fresh copy); for parity with
    /// the CPU machine's zero-copy `take_value`.
    pub fn take_value(&self, node: NodeId) -> Result<Tensor> {
        self.value(node)
    }

    /// Runs `f` with a view of a node's value from the last run (downloaded), or `None` when
    /// this machine did not compute it.
    pub fn with_buffer<R>(&self, node: NodeId, f: impl FnOnce(Option<TensorView>) -> R) -> Result<R> {
        match self.inner.value_of(node) {
            None => Ok(f(None)),
            Some(r) => Ok(f(Some(r?.view()))),
        }
    }

    /// `(uploads, downloads)` of tensors between host and device so far (including the
    /// index tables uploaded at creation); kept after `close`.
    pub fn transfers(&self) -> (u64, u64) {
        match self.inner.state.lock() {
            Ok(st) => st.dev.as_ref().map(|d| d.transfers()).unwrap_or(st.final_transfers),
            Err(_) => (0, 0),
        }
    }

    /// The GPU's name (empty after `close`).
    pub fn device_name(&self) -> String {
        self.inner.state.lock().ok().and_then(|s| s.dev.as_ref().map(|d| d.name().to_string())).unwrap_or_default()
    }

    /// The graph this machine runs.
    pub fn graph(&self) -> &SharedGraph {
        &self.inner.graph
    }
}

impl Drop for CudaMachine {
    fn drop(&mut self) {
        self.close();
    }
}

impl Inner {
    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| Error::Internal("machine lock poisoned by an earlier panic".into()))
    }

    /// The live device and the buffer of `node` from the last run, under the state lock.
    fn with_result<R>(&self, node: NodeId, f: impl FnOnce(&mut CudaDevice, &mut CudaBuffer) -> Result<R>) -> Option<Result<R>> {
        let mut st = match self.lock() {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        if st.closed || !st.computed {
            return None;
        }
        let b = *st.program.node_buf.get(&node)?;
        let State { dev, bufs, .. } = &mut *st;
        let (dev, buf) = (dev.as_mut()?, bufs.get_mut(b)?.as_mut()?);
        Some(bind(dev).and_then(|_| f(dev, buf)))
    }
}

/// True when the graph marks leaf `id` as held newer by machine `inner`.
fn held_here(g: &Graph, id: NodeId, inner: &Inner) -> bool {
    g.newer_on(id).is_some_and(|w| std::ptr::addr_eq(w.as_ptr(), inner as *const Inner))
}

impl ResultSource for Inner {
    fn leaf_value(&self, node: NodeId) -> Option<Result<Tensor>> {
        let mut st = match self.lock() {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        let State { dev, stored, .. } = &mut *st;
        let (dev, sb) = (dev.as_mut()?, stored.get(&node)?);
        Some(bind(dev).and_then(|_| Ok(dev.download(&sb.buf)?)))
    }

    fn device_step(
        &self,
        rule: &gorgon_autodiff::solver::Rule,
        prep: &gorgon_core::kernels::optim::GradPrep,
        t: u64,
        params: &[NodeId],
        states: &mut [gorgon_autodiff::solver::StateBufs<'_>],
    ) -> Option<Result<()>> {
        self.step_on_device(rule, prep, t, params, states)
    }

    fn value_of(&self, node: NodeId) -> Option<Result<Tensor>> {
        self.with_result(node, |dev, buf| Ok(dev.download(buf)?))
    }

    fn visit(&self, node: NodeId, f: &mut dyn FnMut(&TensorView<'_>) -> Result<()>) -> Option<Result<()>> {
        self.with_result(node, |dev, buf| f(&dev.download(buf)?.view()))
    }

    fn overwrite(&self, node: NodeId, value: &TensorView<'_>) -> Option<Result<()>> {
        self.with_result(node, |dev, buf| {
            if buf.shape() != value.shape() || buf.dtype() != value.dtype() {
                return Err(Error::Shape(format!(
                    "set_grad: value {} {} does not match gradient {} {}",
                    fmt_shape(value.shape()),
                    value.dtype(),
                    fmt_shape(buf.shape()),
                    buf.dtype()
                )));
            }
            Ok(dev.upload(&value.to_owned(), buf)?)
        })
    }
}

/// Lowers every instruction; with each, which operands hold a single element.
fn lower_program(g: &Graph, p: &Program) -> Result<Vec<(lower::Lowered, Vec<bool>)>> {
    p.instrs
        .iter()
        .map(|ins| {
            let specs: Vec<(DType, Vec<usize>)> = ins
                .inputs
                .iter()
                .map(|s| match *s {
                    Slot::Buf(b) => (p.buffers[b].dtype, p.buffers[b].shape.clone()),
                    Slot::Stored(n) => (g.node(n).dtype, g.node(n).shape.clone()),
                })
                .collect();
            let single = specs.iter().map(|(_, s)| s.iter().product::<usize>() == 1).collect();
            let l = lower(&ins.op, &specs, &p.buffers[ins.out]).map_err(|e| e.context(format!("lowering {} for CUDA", g.node(ins.node).label(ins.node))))?;
            Ok((l, single))
        })
        .collect()
}

/// Uploads every leaf/constant whose graph version differs from the one on the device.
fn upload_changed(g: &Graph, dev: &mut CudaDevice, stored: &mut BTreeMap<NodeId, StoredBuf>) -> Result<()> {
    for (&n, sb) in stored.iter_mut() {
        let v = g.value_version(n);
        if sb.version == Some(v) {
            continue;
        }
        let val = g.stored_value(n).ok_or_else(|| g.missing_value(n))?;
        let r = match val {
            Value::Owned(t) => dev.upload(t, &mut sb.buf),
            Value::External(e) => dev.upload(&e.view().to_owned(), &mut sb.buf),
        };
        r.map_err(|e| Error::from(e).context(format!("uploading {}", g.node(n).describe(n))))?;
        sb.version = Some(v);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn execute(
    g: &Graph,
    opts: &MachineOptions,
    program: &Program,
    steps: &mut [Step],
    dev: &mut CudaDevice,
    bufs: &mut [Option<CudaBuffer>],
    stored: &BTreeMap<NodeId, StoredBuf>,
    trace_log: &mut Vec<String>,
) -> Result<()> {
    trace_log.clear();
    for (i, (ins, step)) in program.instrs.iter().zip(steps.iter_mut()).enumerate() {
        let t0 = opts.trace.then(Instant::now);
        let mut out = bufs[ins.out].take().ok_or_else(|| Error::Internal(format!("buffer {} missing", ins.out)))?;
        let result = (|| {
            let inputs: Vec<&CudaBuffer> = ins
                .inputs
                .iter()
                .map(|s| match *s {
                    Slot::Buf(b) => bufs[b].as_ref().ok_or_else(|| Error::Internal(format!("operand buffer {b} missing"))),
                    Slot::Stored(n) => stored.get(&n).map(|s| &s.buf).ok_or_else(|| Error::Internal(format!("no device copy of node #{n}"))),
                })
                .collect::<Result<_>>()?;
            run_step(dev, &ins.op, step, &inputs, &mut out)?;
            if opts.trace {
                dev.synchronize()?;
            }
            Ok::<bool, Error>(opts.nan_guard && out.dtype().is_float() && has_nonfinite(&dev.download(&out)?))
        })();
        bufs[ins.out] = Some(out);
        let bad = result.map_err(|e| e.context(gorgon_autodiff::vm::running_context(g, ins.node, &ins.op.name(), " on CUDA")))?;
        if bad {
            return Err(gorgon_autodiff::vm::nan_guard_error(g, ins.node, &ins.op.name()));
        }
        if let Some(t0) = t0 {
            let label = program.labels.get(&ins.node).cloned().unwrap_or_default();
            let host = if matches!(step.kind, Kind::Host { .. }) { " (host)" } else { "" };
            trace_log.push(format!("[{i}] {} {label}{host} {:.1} µs", ins.op.name(), t0.elapsed().as_secs_f64() * 1e6));
        }
    }
    Ok(())
}

fn internal(what: &str) -> Error {
    Error::Internal(format!("cuda: {what}: extra buffers missing"))
}

/// Runs one lowered instruction (operands `x`, output `out`).
fn run_step(dev: &mut CudaDevice, op: &Op, step: &mut Step, x: &[&CudaBuffer], out: &mut CudaBuffer) -> Result<()> {
    match &step.kind {
        Kind::Unary(u) => dev.unary(*u, x[0], out)?,
        Kind::Binary(b) => dev.binary(*b, x[0], x[1], out)?,
        Kind::Where => dev.where_(x[0], x[1], x[2], out)?,
        Kind::Cast => dev.cast(x[0], out)?,
        Kind::Reduce { op, axes } => dev.reduce(*op, x[0], axes, out)?,
        Kind::ArgReduce { is_max, axis } => dev.arg_reduce(*is_max, x[0], *axis, out)?,
        Kind::MatMul { ta, tb } => dev.matmul_t(x[0], *ta, x[1], *tb, out)?,
        Kind::Copy => dev.copy(x[0], out)?,
        Kind::Permute(axes) => dev.permute(x[0], axes, out)?,
        Kind::Strided(v) => dev.copy_strided(x[0], &v.shape, &v.strides, v.offset, out)?,
        Kind::BroadcastTo => dev.broadcast_to(x[0], out)?,
        Kind::SliceGrad => {
            let pos = step.aux.first().ok_or_else(|| internal("slice_grad"))?;
            // Scatter into the output viewed flat, then restore its shape.
            let shape = out.shape().to_vec();
            out.reshape(&[out.len()])?;
            let r = dev.scatter_add(x[0], pos, 0, out);
            out.reshape(&shape)?;
            r?
        }
        Kind::ConcatLeading => {
            let mut at = 0;
            for b in x {
                copy_into_at(dev, b, out, at)?;
                at += b.len();
            }
        }
        Kind::ConcatGather => {
            let [staging, index] = &mut step.aux[..] else { return Err(internal("concat")) };
            let mut at = 0;
            for b in x {
                copy_into_at(dev, b, staging, at)?;
                at += b.len();
            }
            dev.take(staging, index, 0, out)?
        }
        Kind::Take(axis) => dev.take(x[0], x[1], *axis, out)?,
        Kind::ScatterAdd(axis) => dev.scatter_add(x[0], x[1], *axis, out)?,
        Kind::OneHot { bool_out } => {
            let [table, zero, n, neg, idx64, checked, rest @ ..] = &mut step.aux[..] else { return Err(internal("one_hot")) };
            // A negative index becomes n, which the gather reports as out of range (the CPU
            // kernel rejects negative classes too).
            dev.binary(BinaryOp::Lt, x[0], zero, neg)?;
            dev.cast(x[0], idx64)?;
            dev.where_(neg, n, idx64, checked)?;
            match (bool_out, rest) {
                (false, _) => dev.take(table, checked, 0, out)?,
                (true, [tmp]) => {
                    dev.take(table, checked, 0, tmp)?;
                    dev.cast(tmp, out)?
                }
                (true, _) => return Err(internal("one_hot")),
            }
        }
        Kind::Softmax { axis, log } => dev.softmax(x[0], *axis, *log, out)?,
        Kind::SoftmaxGrad { axis, log } => dev.softmax_backward(x[0], x[1], *axis, *log, out)?,
        Kind::Conv2d(p) => dev.conv2d(x[0], x[1], *p, out)?,
        Kind::Conv2dGradInput(p) => dev.conv2d_backward_input(x[0], x[1], *p, out)?,
        Kind::Conv2dGradWeight(p) => dev.conv2d_backward_weight(x[0], x[1], *p, out)?,
        Kind::MaxPool(g) => dev.max_pool2d(x[0], g.kernel, g.p, out)?,
        Kind::MaxPoolGrad(g) => dev.max_pool2d_backward(x[0], x[1], g.kernel, g.p, out)?,
        Kind::AvgPool(g) => dev.avg_pool2d(x[0], g.kernel, g.p, out)?,
        Kind::AvgPoolGrad(g) => dev.avg_pool2d_backward(x[0], g.kernel, g.p, out)?,
        Kind::Fused(_) => {
            let (name, vec) = step.fused.as_ref().ok_or_else(|| internal("fused"))?;
            dev.fused(name, *vec, x, out)?
        }
        Kind::Host { inputs } => {
            let host_in: Vec<Tensor> = if *inputs { x.iter().map(|b| dev.download(b)).collect::<gorgon_core::Result<_>>()? } else { Vec::new() };
            let views: Vec<TensorView> = host_in.iter().map(|t| t.view()).collect();
            let staging = step.host.as_mut().ok_or_else(|| internal("host op"))?;
            op.forward(&views, staging)?;
            dev.upload(staging, out)?
        }
    }
    Ok(())
}

/// Copies all of `src` into `dst` starting at element `at` (same dtype), on the device.
fn copy_into_at(dev: &CudaDevice, src: &CudaBuffer, dst: &mut CudaBuffer, at: usize) -> Result<()> {
    let n = src.len();
    if src.dtype() != dst.dtype() || at + n > dst.len() {
        return Err(Error::Internal(format!(
            "cuda: cannot copy {} {} into {} {} at {at}",
            fmt_shape(src.shape()),
            src.dtype(),
            fmt_shape(dst.shape()),
            dst.dtype()
        )));
    }
    if n == 0 {
        return Ok(());
    }
    let s = &dev.stream;
    let r = match (&src.data, &mut dst.data) {
        (BufData::F32(a), BufData::F32(b)) => s.memcpy_dtod(&a.slice(0..n), &mut b.slice_mut(at..at + n)),
        (BufData::F64(a), BufData::F64(b)) => s.memcpy_dtod(&a.slice(0..n), &mut b.slice_mut(at..at + n)),
        (BufData::I32(a), BufData::I32(b)) => s.memcpy_dtod(&a.slice(0..n), &mut b.slice_mut(at..at + n)),
        (BufData::I64(a), BufData::I64(b)) => s.memcpy_dtod(&a.slice(0..n), &mut b.slice_mut(at..at + n)),
        (BufData::U8(a), BufData::U8(b)) => s.memcpy_dtod(&a.slice(0..n), &mut b.slice_mut(at..at + n)),
        _ => return Err(Error::Internal("cuda: buffer storage does not match its dtype".into())),
    };
    r.map_err(|e| dev_err(e.into()))
}
