//! Leaves whose newer value lives in a machine (a GPU machine's solver step): the graph's
//! markers ([`Graph::mark_newer_on`]) and the fetch ([`vm::sync_leaves`]) with a fake device
//! machine, so this runs without a GPU.

use gorgon_autodiff::graph::{NodeId, ResultSource, Value};
use gorgon_autodiff::solver::{self, Rule, StateBufs};
use gorgon_autodiff::vm::{self, node_value, MachineOptions, SharedGraph, TapeMachine};
use gorgon_autodiff::{attrs::Attrs, Graph, Result};
use gorgon_core::kernels::optim::{GradPrep, SolverRule};
use gorgon_core::{DType, Tensor, TensorView};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};

/// A stand-in for a GPU machine: holds leaf values of its own and "steps" by adding 1.
struct FakeDevice {
    graph: SharedGraph,
    values: Mutex<HashMap<NodeId, f64>>,
    fetches: Mutex<usize>,
    me: Weak<FakeDevice>,
}

impl FakeDevice {
    fn new(graph: &SharedGraph) -> Arc<FakeDevice> {
        Arc::new_cyclic(|me| FakeDevice { graph: graph.clone(), values: Mutex::new(HashMap::new()), fetches: Mutex::new(0), me: me.clone() })
    }
    /// Puts a newer value of `id` "on the device" and tells the graph.
    fn hold(&self, id: NodeId, v: f64) -> u64 {
        self.values.lock().unwrap().insert(id, v);
        let me: Weak<dyn ResultSource> = self.me.clone();
        self.graph.write().unwrap().mark_newer_on(id, me)
    }
}

impl ResultSource for FakeDevice {
    fn value_of(&self, _: NodeId) -> Option<Result<Tensor>> {
        None
    }
    fn visit(&self, _: NodeId, _: &mut dyn FnMut(&TensorView<'_>) -> Result<()>) -> Option<Result<()>> {
        None
    }
    fn overwrite(&self, _: NodeId, _: &TensorView<'_>) -> Option<Result<()>> {
        None
    }
    fn leaf_value(&self, node: NodeId) -> Option<Result<Tensor>> {
        *self.fetches.lock().unwrap() += 1;
        let v = *self.values.lock().unwrap().get(&node)?;
        Some(Ok(Tensor::scalar(DType::F64, v)))
    }
    fn device_step(&self, _: &Rule, _: &GradPrep, _: u64, params: &[NodeId], _: &mut [StateBufs<'_>]) -> Option<Result<()>> {
        for &p in params {
            let v = self.values.lock().unwrap().get(&p).copied().unwrap_or(0.0);
            self.hold(p, v + 1.0);
        }
        Some(Ok(()))
    }
}

fn graph_with_leaf(v: f64) -> (SharedGraph, NodeId) {
    let mut g = Graph::new(true);
    let w = g.leaf(DType::F64, &[], Some("w".into()), None).unwrap();
    g.let_value(w, Value::Owned(Tensor::scalar(DType::F64, v))).unwrap();
    (Arc::new(RwLock::new(g)), w)
}

fn scalar(t: &Tensor) -> f64 {
    t.to_vec_f64()[0]
}

#[test]
fn reading_a_leaf_fetches_the_newer_value_once() {
    let (g, w) = graph_with_leaf(1.0);
    let dev = FakeDevice::new(&g);
    let v = dev.hold(w, 5.0);
    assert!(g.read().unwrap().has_newer());
    assert_eq!(scalar(&node_value(&g, w).unwrap()), 5.0);
    // Installed without a version change: device copies at that version stay current.
    assert_eq!(g.read().unwrap().value_version(w), v);
    assert!(!g.read().unwrap().has_newer());
    assert_eq!(scalar(&node_value(&g, w).unwrap()), 5.0);
    assert_eq!(*dev.fetches.lock().unwrap(), 1);
}

#[test]
fn let_wins_over_a_device_value_and_a_dead_device_leaves_the_graph_value() {
    let (g, w) = graph_with_leaf(1.0);
    let dev = FakeDevice::new(&g);
    dev.hold(w, 5.0);
    g.write().unwrap().let_value(w, Value::Owned(Tensor::scalar(DType::F64, 7.0))).unwrap();
    assert_eq!(scalar(&node_value(&g, w).unwrap()), 7.0);
    assert_eq!(*dev.fetches.lock().unwrap(), 0);

    dev.hold(w, 9.0);
    drop(dev);
    assert_eq!(scalar(&node_value(&g, w).unwrap()), 7.0);
    assert!(!g.read().unwrap().has_newer());
}

#[test]
fn a_cpu_machine_runs_on_the_fetched_values_and_skip_leaves_the_owners_leaves() {
    let (g, w) = graph_with_leaf(1.0);
    let y = {
        let mut gr = g.write().unwrap();
        let two = gr.scalar(DType::F64, 2.0);
        gr.apply_named("mul", &[w, two], &Attrs::new(), None).unwrap()
    };
    let dev = FakeDevice::new(&g);
    dev.hold(w, 5.0);
    // The owner itself skips its own leaves.
    vm::sync_leaves(&g, None, Some(Arc::as_ptr(&dev) as *const ())).unwrap();
    assert!(g.read().unwrap().has_newer());
    let m = TapeMachine::new(g.clone(), MachineOptions::default()).unwrap();
    m.run_all().unwrap();
    assert_eq!(scalar(&m.value(y).unwrap()), 10.0);
}

#[test]
fn a_solver_step_goes_to_the_result_source_when_it_can() {
    let (g, w) = graph_with_leaf(1.0);
    let dev = FakeDevice::new(&g);
    dev.hold(w, 3.0);
    node_value(&g, w).unwrap();
    let src: Weak<dyn ResultSource> = Arc::downgrade(&dev) as Weak<dyn ResultSource>;
    {
        let mut gr = g.write().unwrap();
        gr.set_results(src);
        // The host path would need a gradient; the device path does not ask for one.
        let gw = gr.scalar(DType::F64, 1.0);
        gr.grad_of.insert(w, gw);
    }
    let rule = Rule::Elementwise(SolverRule::Sgd { lr: 0.1, momentum: 0.0, nesterov: false, dampening: 0.0 });
    let mut states = vec![StateBufs::F64(vec![])];
    solver::step(&g, &rule, &GradPrep::default(), 1, &[w], &mut states).unwrap();
    assert_eq!(scalar(&node_value(&g, w).unwrap()), 4.0);
}
