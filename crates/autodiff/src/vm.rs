//! The tape VM: [`TapeMachine`] runs a compiled [`Program`] over buffers allocated once at
//! compile time, so a steady-state run allocates no tensor memory. It also hosts the
//! machine options (`watch`, `nan_guard`, `trace`) and the eager [`LispMachine`].
//!
//! Small elementwise instructions (float operands of at most [`crate::smallops::SMALL_MAX`]
//! elements, contiguous, full-size or one element) skip the general kernels and run as
//! plain slice loops ([`crate::smallops`]); a program made only of a few of them is
//! [quick](TapeMachine::is_quick), and can be run without waiting on any lock
//! ([`TapeMachine::try_run_all_now`], [`TapeMachine::try_call_now`]), which is what lets the
//! Python bridge run it without releasing the GIL.
//!
//! Locking: a machine's state mutex is always taken before the graph lock, never after
//! (`node_value` drops the graph lock before asking a machine), so there is no lock cycle.

use crate::compile::{compile, CompileOptions, Program, Recompute, Slot};
use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId, NodeKind, ResultSource, Value};
use crate::exec;
use crate::lend::{Lent, Pool};
use crate::smallops::SmallOp;
use gorgon_core::error::fmt_shape;
use gorgon_core::{DeviceKind, Tensor, TensorView};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};

/// A graph shared between the user's handles and machines.
pub type SharedGraph = Arc<RwLock<Graph>>;

/// Locks a shared graph for reading, turning a poisoned lock into an error.
pub fn read(g: &SharedGraph) -> Result<std::sync::RwLockReadGuard<'_, Graph>> {
    g.read().map_err(|_| Error::Internal("graph lock poisoned by an earlier panic".into()))
}

/// Locks a shared graph for writing.
pub fn write(g: &SharedGraph) -> Result<std::sync::RwLockWriteGuard<'_, Graph>> {
    g.write().map_err(|_| Error::Internal("graph lock poisoned by an earlier panic".into()))
}

/// Fetches into the graph the leaf values that machines hold newer (after a solver step on
/// a GPU): every such leaf, or those in `only`. Leaves held by the machine at address
/// `skip` are left where they are (that machine's own copies are current). Takes no lock
/// while asking a machine, and a machine's state lock before the graph's, like `run_all`.
pub fn sync_leaves(g: &SharedGraph, only: Option<&[NodeId]>, skip: Option<*const ()>) -> Result<()> {
    let pending: Vec<(NodeId, Weak<dyn ResultSource>, u64)> = {
        let gr = read(g)?;
        if !gr.has_newer() {
            return Ok(());
        }
        gr.newer_leaves()
            .into_iter()
            .filter(|(id, w)| only.is_none_or(|o| o.contains(id)) && skip.is_none_or(|s| !std::ptr::addr_eq(w.as_ptr(), s)))
            .map(|(id, w)| (id, w, gr.value_version(id)))
            .collect()
    };
    for (id, w, version) in pending {
        match w.upgrade().and_then(|src| src.leaf_value(id)) {
            Some(r) => write(g)?.install_fetched(id, r?, version),
            // The machine is gone (it writes its values back when closed) or no longer
            // holds one: the graph's value stands.
            None => write(g)?.clear_newer(id),
        }
    }
    Ok(())
}

/// A copy of a node's value (leaf/constant, or from the last machine run), taking the graph
/// lock only briefly: the machine is asked after the graph lock is released, keeping the
/// lock order (machine state before graph) that `run_all` uses.
pub fn node_value(g: &SharedGraph, id: NodeId) -> Result<Tensor> {
    sync_leaves(g, Some(&[id]), None)?;
    let src = {
        let gr = read(g)?;
        gr.try_node(id)?;
        if let Some(v) = gr.stored_value(id) {
            return Ok(v.view().to_owned());
        }
        gr.result_source()
    };
    if let Some(r) = src.and_then(|s| s.value_of(id)) {
        return r;
    }
    Err(read(g)?.missing_value(id))
}

/// The value of a node's gradient from the last run (the node [`Graph::grad_of`] maps it to),
/// read with the lock order of [`node_value`].
pub fn grad_node_value(g: &SharedGraph, id: NodeId) -> Result<Option<Tensor>> {
    let (gid, src) = {
        let gr = read(g)?;
        gr.try_node(id)?;
        let Some(&gid) = gr.grad_of.get(&id) else { return Ok(None) };
        (gid, gr.result_source())
    };
    if let Some(r) = src.and_then(|s| s.value_of(gid)) {
        return r.map(Some);
    }
    Ok(read(g)?.stored_value(gid).map(|v| v.view().to_owned()))
}

/// `GraphError` naming the first of `leaves` (a program's inputs) that has no value; shared by
/// every machine (CPU and GPU) so the message is the same.
pub fn check_inputs_bound(g: &Graph, leaves: &[NodeId]) -> Result<()> {
    for &leaf in leaves {
        if g.stored_value(leaf).is_none() {
            let n = g.node(leaf);
            return Err(Error::Graph(format!(
                "run_all: input {} has no value; bind one with let before running{}",
                n.describe(leaf),
                n.location.as_ref().map(|l| format!(" (built at {l})")).unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// The context added to an error raised while running `node` (`op`): its label, the op and
/// where it was built; `on` names the device (`""` for the CPU, `" on CUDA"`).
pub fn running_context(g: &Graph, node: NodeId, op: &str, on: &str) -> String {
    let n = g.node(node);
    format!("running {} ({op}){on}{}", n.label(node), n.location.as_ref().map(|l| format!(" built at {l}")).unwrap_or_default())
}

/// The `NumericError` of `nan_guard` for `node` (`op`): which node, its inputs and where it
/// was built; shared by every machine.
pub fn nan_guard_error(g: &Graph, node: NodeId, op: &str) -> Error {
    let n = g.node(node);
    let operands: Vec<String> = n.inputs.iter().map(|&k| g.node(k).describe(k)).collect();
    Error::Numeric(format!(
        "nan_guard: {}node {} (op {op}) produced NaN/Inf from inputs [{}]{}",
        if n.is_grad { "gradient " } else { "" },
        n.label(node),
        operands.join(", "),
        n.location.as_ref().map(|l| format!("; built at {l}")).unwrap_or_default()
    ))
}

/// Machine options.
#[derive(Clone, Debug)]
pub struct MachineOptions {
    /// Device to run on (only the CPU runs programs in this crate).
    pub device: DeviceKind,
    /// Nodes whose values are recorded after each run.
    pub watch: Vec<NodeId>,
    /// Raise a NumericError at the first node producing NaN/Inf.
    pub nan_guard: bool,
    /// Record per-instruction timings.
    pub trace: bool,
    /// Compile only what these nodes need (None: the whole graph).
    pub outputs: Option<Vec<NodeId>>,
    /// Keep every buffer (no reuse).
    pub keep_all: bool,
    /// Disable elementwise fusion (for comparisons; `GORGON_FUSE=0` does the same).
    pub no_fuse: bool,
}

impl MachineOptions {
    /// The watch list without repeats (first occurrence kept): a node listed twice is still
    /// recorded once per run. Every machine reads `watch` through this.
    pub fn watch_list(&self) -> Vec<NodeId> {
        let mut seen = std::collections::HashSet::new();
        self.watch.iter().copied().filter(|w| seen.insert(*w)).collect()
    }
}

impl Default for MachineOptions {
    fn default() -> Self {
        MachineOptions { device: DeviceKind::Cpu, watch: vec![], nan_guard: false, trace: false, outputs: None, keep_all: false, no_fuse: false }
    }
}

struct RunState {
    program: Program,
    /// Per instruction: the small-operand fast path it takes, if any (see [`crate::smallops`]).
    small: Vec<Option<SmallOp>>,
    buffers: Vec<Tensor>,
    /// Per buffer: the [`Lent`] it was moved into by [`TapeMachine::lend`], shared with a
    /// caller until the next run takes it back ([`RunState::reclaim`]).
    lent: Vec<Option<Arc<Lent>>>,
    /// Some buffer is lent (skips the reclaim loop on most runs).
    any_lent: bool,
    /// Buffers callers let go of after the machine stopped sharing them.
    pool: Arc<Pool>,
    computed: bool,
    closed: bool,
    watched: HashMap<NodeId, Vec<Tensor>>,
    trace_log: Vec<String>,
}

impl RunState {
    /// Buffer `b`'s tensor: the machine's own, or the one it lent out.
    fn buf(&self, b: usize) -> &Tensor {
        match self.lent.get(b) {
            Some(Some(l)) => l.tensor(),
            _ => &self.buffers[b],
        }
    }

    /// Takes lent buffer `b` back before anything writes to it: the lent buffer itself when
    /// the caller let go of it, else one from the pool or a new one (the caller keeps its
    /// array; nothing the machine does later changes it).
    fn reclaim_one(&mut self, b: usize) -> Result<()> {
        let Some(l) = self.lent.get_mut(b).and_then(Option::take) else { return Ok(()) };
        let spec = &self.program.buffers[b];
        let own = Arc::try_unwrap(l).ok().and_then(Lent::into_tensor);
        self.buffers[b] = match own.or_else(|| self.pool.take(spec.dtype, &spec.shape)) {
            Some(t) => t,
            None => Tensor::try_zeros(spec.dtype, &spec.shape)?,
        };
        Ok(())
    }

    /// [`RunState::reclaim_one`] for every lent buffer.
    fn reclaim(&mut self) -> Result<()> {
        if self.any_lent {
            for b in 0..self.lent.len() {
                self.reclaim_one(b)?;
            }
            self.any_lent = false;
        }
        Ok(())
    }
}

impl MachineInner {
    /// The value of a node the program fused away, recomputed from the kept buffers and
    /// stored values of the last run (see [`crate::compile::Recompute`]). Takes the graph's
    /// read lock while the machine's state is locked (the order runs use).
    fn recompute(&self, st: &RunState, node: NodeId, r: &Recompute) -> Result<Tensor> {
        let g = read(&self.graph)?;
        let mut views = Vec::with_capacity(r.inputs.len());
        for s in &r.inputs {
            views.push(match *s {
                Slot::Buf(b) => st.buf(b).view(),
                Slot::Stored(n) => g.stored_value(n).map(Value::view).ok_or_else(|| Error::Graph(format!("{} has no value", g.node(n).label(n))))?,
            });
        }
        let n = g.try_node(node)?;
        let mut out = Tensor::try_zeros(n.dtype, &n.shape)?;
        crate::fused::eval(&r.expr, &views, &mut out)?;
        Ok(out)
    }
}

struct MachineInner {
    graph: SharedGraph,
    opts: MachineOptions,
    /// Every instruction takes the small-operand fast path and there are few of them: a run
    /// costs at most a few microseconds (see [`TapeMachine::is_quick`]).
    quick: bool,
    state: Mutex<RunState>,
}

impl ResultSource for MachineInner {
    fn value_of(&self, node: NodeId) -> Option<Result<Tensor>> {
        let st = match self.state.lock() {
            Ok(s) => s,
            Err(_) => return Some(Err(Error::Internal("machine lock poisoned".into()))),
        };
        if st.closed || !st.computed {
            return None;
        }
        if let Some(&b) = st.program.node_buf.get(&node) {
            return Some(Ok(st.buf(b).clone()));
        }
        st.program.remat.get(&node).map(|r| self.recompute(&st, node, r))
    }
    fn visit(&self, node: NodeId, f: &mut dyn FnMut(&TensorView<'_>) -> Result<()>) -> Option<Result<()>> {
        let st = match self.state.lock() {
            Ok(s) => s,
            Err(_) => return Some(Err(Error::Internal("machine lock poisoned".into()))),
        };
        if st.closed || !st.computed {
            return None;
        }
        if let Some(&b) = st.program.node_buf.get(&node) {
            return Some(f(&st.buf(b).view()));
        }
        let r = st.program.remat.get(&node)?;
        // Recomputed under the graph's read lock, which is released before `f` runs (it
        // may write the graph: a solver step).
        Some(self.recompute(&st, node, r).and_then(|t| f(&t.view())))
    }
    fn overwrite(&self, node: NodeId, value: &TensorView<'_>) -> Option<Result<()>> {
        let mut st = match self.state.lock() {
            Ok(s) => s,
            Err(_) => return Some(Err(Error::Internal("machine lock poisoned".into()))),
        };
        if st.closed || !st.computed {
            return None;
        }
        let b = *st.program.node_buf.get(&node)?;
        if let Err(e) = st.reclaim_one(b) {
            return Some(Err(e));
        }
        let buf = &mut st.buffers[b];
        if buf.shape() != value.shape() || buf.dtype() != value.dtype() {
            return Some(Err(Error::Shape(format!(
                "set_grad: value {} {} does not match gradient {} {}",
                fmt_shape(value.shape()), value.dtype(), fmt_shape(buf.shape()), buf.dtype()
            ))));
        }
        Some(gorgon_core::kernels::elementwise::copy_into(value, buf).map_err(Error::from))
    }
}

/// Compiles a graph once and runs it many times.
///
/// `run_all` takes `&self` and serializes concurrent callers on an internal lock.
pub struct TapeMachine {
    inner: Arc<MachineInner>,
}


/// The most instructions a [quick](TapeMachine::is_quick) program has.
const QUICK_MAX_INSTRS: usize = 32;
/// The most output elements, summed over its instructions, a quick program computes (a run
/// then takes at most a few microseconds, however costly its elementwise functions).
const QUICK_MAX_ELEMENTS: usize = 8192;

/// A `try_lock` result for the quick paths: `None` when the lock is held elsewhere, an error
/// when it was poisoned.
fn try_now<G>(r: std::sync::TryLockResult<G>, what: &str) -> Option<Result<G>> {
    match r {
        Ok(g) => Some(Ok(g)),
        Err(std::sync::TryLockError::WouldBlock) => None,
        Err(std::sync::TryLockError::Poisoned(_)) => Some(Err(Error::Internal(format!("{what} lock poisoned by an earlier panic")))),
    }
}

/// The values of a run that just finished, read under the locks it held
/// ([`TapeMachine::try_call_now`]).
pub struct RunResults<'a> {
    g: &'a Graph,
    st: &'a RunState,
}

impl RunResults<'_> {
    /// A view of a node's value: its buffer (op nodes the program computed), else its stored
    /// value (leaves, constants); `None` when it has neither.
    pub fn view(&self, node: NodeId) -> Option<TensorView<'_>> {
        match self.st.program.node_buf.get(&node) {
            Some(&b) => (b < self.st.buffers.len()).then(|| self.st.buf(b).view()),
            None => self.g.stored_value(node).map(Value::view),
        }
    }
}

impl TapeMachine {
    /// Compiles `graph` and allocates every buffer (MemoryError-style `Error::Alloc` if that fails).
    pub fn new(graph: SharedGraph, mut opts: MachineOptions) -> Result<TapeMachine> {
        if let DeviceKind::Cuda(_) = opts.device {
            return Err(Error::Device("this machine runs on the CPU only; CUDA programs are run by the gorgon-cuda backend".into()));
        }
        opts.watch = opts.watch_list();
        let (program, small) = {
            let g = read(&graph)?;
            for &w in &opts.watch {
                g.try_node(w)?;
            }
            // With nan_guard or trace every node the user built keeps its own instruction,
            // so a NaN is blamed on (and a trace line names) the node that made it.
            let program = compile(&g, &CompileOptions { outputs: opts.outputs.clone(), keep: opts.watch.clone(), keep_all: opts.keep_all, no_fuse: opts.no_fuse, fuse_reductions: true, fuse_broadcasts: true, remat: !opts.nan_guard && !opts.trace })?;
            let small = exec::classify_small(&g, &program);
            (program, small)
        };
        let mut buffers = Vec::with_capacity(program.buffers.len());
        for spec in &program.buffers {
            buffers.push(Tensor::try_zeros(spec.dtype, &spec.shape).map_err(|e| {
                let bytes = spec.shape.iter().fold(spec.dtype.size_of() as u128, |acc, &d| acc.saturating_mul(d as u128));
                let total: u128 = program.buffers.iter().map(|b| b.shape.iter().fold(b.dtype.size_of() as u128, |acc, &d| acc.saturating_mul(d as u128))).fold(0u128, |a, b| a.saturating_add(b));
                Error::Alloc(format!("compiling: cannot allocate {bytes} bytes for a buffer of shape {} {} ({e}); the program needs {total} bytes in all", fmt_shape(&spec.shape), spec.dtype))
            })?);
        }
        let lent = vec![None; buffers.len()];
        let state = RunState { program, small, buffers, lent, any_lent: false, pool: Arc::default(), computed: false, closed: false, watched: HashMap::new(), trace_log: vec![] };
        let elements: usize = state.program.instrs.iter().map(|ins| state.program.buffers[ins.out].shape.iter().product::<usize>()).sum();
        let quick = state.program.instrs.len() <= QUICK_MAX_INSTRS && elements <= QUICK_MAX_ELEMENTS && state.small.iter().all(Option::is_some);
        Ok(TapeMachine { inner: Arc::new(MachineInner { graph, opts, quick, state: Mutex::new(state) }) })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, RunState>> {
        self.inner.state.lock().map_err(|_| Error::Internal("machine lock poisoned by an earlier panic".into()))
    }

    /// Runs the program once.
    ///
    /// Locks: the machine's state, then the graph for reading while the program runs. The
    /// graph is write-locked afterwards only when there is something to write (post-run
    /// updates, or registering this machine as the graph's result source when another
    /// machine ran last); a machine running again on its own graph takes no write lock.
    pub fn run_all(&self) -> Result<()> {
        let graph = &self.inner.graph;
        let mut guard = self.lock()?;
        let mut g = read(graph)?;
        if g.has_newer() {
            // Leaves a GPU machine updated in its memory come home first. That asks other
            // machines, so it runs with no lock held (lock order: machine state, then graph).
            drop(g);
            drop(guard);
            sync_leaves(graph, None, None)?;
            guard = self.lock()?;
            g = read(graph)?;
        }
        let st = &mut *guard;
        self.execute_checked(st, &g)?;
        if !self.needs_write(st, &g) {
            return self.finish(st, &g);
        }
        drop(g);
        let mut g = write(graph)?;
        self.register(st, &mut g)?;
        self.finish(st, &g)
    }

    /// Whether runs of this machine are quick enough to run without releasing a caller's
    /// global lock (the Python GIL): at most a few dozen instructions computing a few
    /// thousand elements in all, each on small contiguous float operands (the VM's fast
    /// path), so a run costs from well under a microsecond to a few microseconds.
    pub fn is_quick(&self) -> bool {
        self.inner.quick
    }

    /// [`TapeMachine::run_all`], but only if it can start at once and will finish quickly:
    /// `None` (nothing done) when the machine is not [quick](TapeMachine::is_quick), is
    /// closed, or when a lock is held elsewhere, a leaf must first be fetched from another
    /// machine, or the graph must be written to (post-run updates, or another machine ran
    /// the graph last). Never waits, so it may be called while holding a lock that other
    /// threads need to progress (the Python GIL).
    pub fn try_run_all_now(&self) -> Option<Result<()>> {
        if !self.inner.quick {
            return None;
        }
        let mut guard = match try_now(self.inner.state.try_lock(), "machine")? {
            Ok(guard) => guard,
            Err(e) => return Some(Err(e)),
        };
        let g = match try_now(self.inner.graph.try_read(), "graph")? {
            Ok(g) => g,
            Err(e) => return Some(Err(e)),
        };
        let st = &mut *guard;
        if st.closed || g.has_newer() || self.needs_write(st, &g) {
            return None;
        }
        Some(self.execute_checked(st, &g).and_then(|()| self.finish(st, &g)))
    }

    /// Binds inputs with `bind`, runs the program and lets `read` look at the results, all
    /// under one hold of the machine's and the graph's locks, when that can be done at once
    /// and quickly (as [`TapeMachine::try_run_all_now`]; here the graph is write-locked, so
    /// updates and result registration are done too). `None`: nothing was done, `bind` was
    /// not called. Errors of `bind` or of the run come back as `Some(Err(..))`, with the
    /// values bound before the error kept (as separate `let`s would).
    pub fn try_call_now<R>(&self, bind: impl FnOnce(&mut Graph) -> Result<()>, read: impl FnOnce(&RunResults<'_>) -> R) -> Option<Result<R>> {
        if !self.inner.quick {
            return None;
        }
        let mut guard = match try_now(self.inner.state.try_lock(), "machine")? {
            Ok(guard) => guard,
            Err(e) => return Some(Err(e)),
        };
        let mut g = match try_now(self.inner.graph.try_write(), "graph")? {
            Ok(g) => g,
            Err(e) => return Some(Err(e)),
        };
        let st = &mut *guard;
        if st.closed || g.has_newer() {
            return None;
        }
        let r = bind(&mut g)
            .and_then(|()| self.execute_checked(st, &g))
            .and_then(|()| self.register(st, &mut g))
            .and_then(|()| self.finish(st, &g));
        Some(r.map(|()| read(&RunResults { g: &g, st })))
    }

    /// The checks before a run (closed machine, unbound inputs), then the run itself.
    fn execute_checked(&self, st: &mut RunState, g: &Graph) -> Result<()> {
        if st.closed {
            return Err(Error::Graph("run_all: the machine is closed".into()));
        }
        st.computed = false;
        check_inputs_bound(&g, &st.program.leaves)?;
        st.reclaim()?;
        exec::execute(g, &self.inner.opts, &st.program, &st.small, &mut st.buffers, &mut st.trace_log)
    }

    /// Whether finishing a run must write to the graph: post-run updates, or registering
    /// this machine as the source of op-node values (another machine, or none, ran last).
    fn needs_write(&self, st: &RunState, g: &Graph) -> bool {
        !st.program.updates.is_empty() || !g.results_are(Arc::as_ptr(&self.inner) as *const ())
    }

    /// Post-run updates (e.g. running statistics) and result registration.
    fn register(&self, st: &RunState, g: &mut Graph) -> Result<()> {
        for &(target, slot) in &st.program.updates {
            let v = match slot {
                Slot::Buf(b) => st.buf(b).clone(),
                Slot::Stored(n) => g.stored_value(n).map(|v| v.view().to_owned()).ok_or_else(|| Error::Internal("update source missing".into()))?,
            };
            g.let_value(target, crate::graph::Value::Owned(v))?;
        }
        if !g.results_are(Arc::as_ptr(&self.inner) as *const ()) {
            let weak: Weak<dyn ResultSource> = Arc::downgrade(&self.inner) as Weak<dyn ResultSource>;
            g.set_results(weak);
        }
        Ok(())
    }

    /// Marks the run computed and appends the watched nodes' values.
    fn finish(&self, st: &mut RunState, g: &Graph) -> Result<()> {
        st.computed = true;
        for &w in &self.inner.opts.watch {
            // Watched nodes are compiled in (kept), so op nodes always have a buffer here;
            // leaves and constants come from the graph (never ask a machine: we hold its lock).
            let v = match st.program.node_buf.get(&w) {
                Some(&b) => st.buf(b).clone(),
                None => g.value(w)?,
            };
            st.watched.entry(w).or_default().push(v);
        }
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

    /// Frees every buffer now. Leaf values stay in the graph; later runs raise GraphError.
    pub fn close(&self) {
        if let Ok(mut st) = self.inner.state.lock() {
            st.closed = true;
            st.computed = false;
            st.buffers = Vec::new();
            st.lent = Vec::new();
            st.any_lent = false;
            st.watched.clear();
        }
    }

    /// True after [`TapeMachine::close`].
    pub fn is_closed(&self) -> bool {
        self.inner.state.lock().map(|s| s.closed).unwrap_or(true)
    }

    /// The program listing.
    pub fn program(&self) -> Result<Vec<String>> {
        Ok(self.lock()?.program.listing())
    }

    /// Values recorded for watched nodes, one per run.
    pub fn watched(&self) -> Result<HashMap<NodeId, Vec<Tensor>>> {
        Ok(self.lock()?.watched.clone())
    }

    /// Trace lines of the last run (when `trace` is on).
    pub fn trace_log(&self) -> Result<Vec<String>> {
        Ok(self.lock()?.trace_log.clone())
    }

    /// A copy of a node's value from the last run of this machine.
    pub fn value(&self, node: NodeId) -> Result<Tensor> {
        if let Some(r) = self.inner.value_of(node) {
            return r;
        }
        node_value(&self.inner.graph, node)
    }

    /// Moves a node's buffer out (the next run reallocates it): zero-copy results.
    pub fn take_value(&self, node: NodeId) -> Result<Tensor> {
        let mut st = self.lock()?;
        if !st.computed || st.closed {
            drop(st);
            return node_value(&self.inner.graph, node);
        }
        match st.program.node_buf.get(&node).copied() {
            Some(b) => {
                if let Some(l) = &st.lent[b] {
                    return Ok(l.tensor().clone());
                }
                let spec = st.program.buffers[b].clone();
                let fresh = Tensor::try_zeros(spec.dtype, &spec.shape)?;
                Ok(std::mem::replace(&mut st.buffers[b], fresh))
            }
            None => {
                drop(st);
                node_value(&self.inner.graph, node)
            }
        }
    }

    /// Runs `f` with a read view of a node's gradient-or-value buffer (no copy), used by solvers.
    pub fn with_buffer<R>(&self, node: NodeId, f: impl FnOnce(Option<TensorView>) -> R) -> Result<R> {
        let st = self.lock()?;
        if !st.computed || st.closed {
            return Ok(f(None));
        }
        Ok(f(st.program.node_buf.get(&node).map(|&b| st.buf(b).view())))
    }

    /// Lends a node's result buffer to the caller (zero-copy results; see [`crate::lend`]):
    /// `None` when the node has no buffer in this machine or no run has computed it. The
    /// value stays readable through the machine until its next run, which takes the buffer
    /// back, or leaves it to the caller and runs into another one while the caller still
    /// holds the returned [`Lent`].
    pub fn lend(&self, node: NodeId) -> Result<Option<Arc<Lent>>> {
        let mut st = self.lock()?;
        if !st.computed || st.closed {
            return Ok(None);
        }
        let Some(&b) = st.program.node_buf.get(&node) else { return Ok(None) };
        if let Some(l) = &st.lent[b] {
            return Ok(Some(l.clone()));
        }
        let spec = &st.program.buffers[b];
        let placeholder = Tensor::try_zeros(spec.dtype, &[0])?;
        let t = std::mem::replace(&mut st.buffers[b], placeholder);
        let l = Arc::new(Lent::new(t, &st.pool));
        st.lent[b] = Some(l.clone());
        st.any_lent = true;
        Ok(Some(l))
    }

    /// How many buffers callers gave back are waiting in this machine's pool (diagnostics
    /// and tests).
    pub fn pooled_buffers(&self) -> usize {
        self.lock().map(|st| st.pool.len()).unwrap_or(0)
    }

    /// The graph this machine runs.
    pub fn graph(&self) -> &SharedGraph {
        &self.inner.graph
    }
}

impl Drop for TapeMachine {
    fn drop(&mut self) {
        self.close();
    }
}

/// The eager machine: forward, then backprop from the graph's one scalar cost, keeping
/// every node's value (no buffer reuse), and setting `.grad` on every float leaf the cost
/// depends on.
pub struct LispMachine {
    tape: TapeMachine,
}

impl LispMachine {
    /// Finds the cost (with `backprop`), adds its gradient nodes and prepares to run.
    pub fn new(graph: SharedGraph, backprop: bool, opts: MachineOptions) -> Result<LispMachine> {
        let opts = LispMachine::prepare(&graph, backprop, opts)?;
        Ok(LispMachine { tape: TapeMachine::new(graph, opts)? })
    }

    /// What `new` does before compiling, for other backends (the CUDA machine) that run the
    /// same eager program: with `backprop`, finds the cost and adds the gradient nodes of
    /// every float leaf it depends on; returns `opts` with every buffer kept.
    pub fn prepare(graph: &SharedGraph, backprop: bool, mut opts: MachineOptions) -> Result<MachineOptions> {
        if backprop {
            let mut g = write(graph)?;
            let cost = find_cost(&g)?;
            let cone = crate::grad::ancestors_topo(&g, cost);
            let leaves: Vec<NodeId> = cone.into_iter().filter(|&n| matches!(g.node(n).kind, NodeKind::Leaf) && g.node(n).dtype.is_float()).collect();
            if !leaves.is_empty() {
                crate::grad::grad(&mut g, cost, &leaves, true)?;
            }
        }
        opts.keep_all = true;
        Ok(opts)
    }

    /// The underlying tape machine, by value.
    pub fn into_tape(self) -> TapeMachine {
        self.tape
    }

    /// Runs forward and backward.
    pub fn run_all(&self) -> Result<()> {
        self.tape.run_all()
    }

    /// The underlying tape (for program listings, watch, close).
    pub fn tape(&self) -> &TapeMachine {
        &self.tape
    }
}

/// The graph's one scalar float node that no other (non-gradient) node uses.
pub fn find_cost(g: &Graph) -> Result<NodeId> {
    let mut used = vec![false; g.len()];
    for n in g.nodes().iter().filter(|n| !n.is_grad) {
        for &i in &n.inputs {
            used[i] = true;
        }
    }
    let cands: Vec<NodeId> = (0..g.len())
        .filter(|&i| {
            let n = g.node(i);
            !used[i] && !n.is_grad && matches!(n.kind, NodeKind::Op(_)) && n.dtype.is_float() && n.shape.iter().product::<usize>() == 1
        })
        .collect();
    match cands.len() {
        1 => Ok(cands[0]),
        0 => Err(Error::Graph("LispMachine(backprop=True): the graph has no scalar float node that no other node uses (the cost)".into())),
        _ => Err(Error::Graph(format!(
            "LispMachine(backprop=True): several candidate costs: {}",
            cands.iter().map(|&c| g.node(c).label(c)).collect::<Vec<_>>().join(", ")
        ))),
    }
}
