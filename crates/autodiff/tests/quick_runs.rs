//! The tape machine's quick paths (`try_run_all_now`, `try_call_now`): they run only tiny
//! programs, never wait for a lock, leave everything that needs more (a leaf held newer by
//! another machine, a closed machine, a program that is not quick) to `run_all`, give the
//! same results, and a quick run makes no heap allocation at all.
mod common;
use common::*;
use gorgon_autodiff::graph::{ResultSource, Value};
use gorgon_autodiff::vm::{node_value, MachineOptions, SharedGraph, TapeMachine};
use gorgon_autodiff::{Graph, NodeId, Result};
use gorgon_core::{DType, Tensor, TensorView};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::{Arc, RwLock, Weak};

/// Counts heap allocations made by the current thread while armed.
struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if ARMED.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// z = x + y on f64 scalars, and a machine over it.
fn seed() -> (SharedGraph, NodeId, NodeId, TapeMachine) {
    let mut g = Graph::new(false);
    let x = leaf(&mut g, "x", &[], vec![2.0]);
    let y = leaf(&mut g, "y", &[], vec![2.5]);
    let z = op(&mut g, "add", &[x, y]);
    let g = Arc::new(RwLock::new(g));
    let m = TapeMachine::new(g.clone(), MachineOptions::default()).unwrap();
    (g, x, z, m)
}

fn set_scalar(g: &mut Graph, id: NodeId, v: f64) {
    match g.rebind_scalar(id) {
        Some(Tensor::F64(a)) => a.fill(v),
        _ => panic!("x holds an owned f64 scalar"),
    }
}

#[test]
fn quick_run_gives_run_all_results() {
    let (g, x, z, m) = seed();
    assert!(m.is_quick());
    // The first run must register the machine as the graph's result source (a write).
    assert!(m.try_run_all_now().is_none());
    m.run_all().unwrap();
    assert_eq!(node_value(&g, z).unwrap().to_vec_f64(), vec![4.5]);
    set_scalar(&mut g.write().unwrap(), x, 10.0);
    m.try_run_all_now().expect("quick now").unwrap();
    assert_eq!(node_value(&g, z).unwrap().to_vec_f64(), vec![12.5]);
}

#[test]
fn quick_paths_never_wait_for_a_held_lock() {
    let (g, x, z, m) = seed();
    m.run_all().unwrap();
    {
        let _w = g.write().unwrap();
        assert!(m.try_run_all_now().is_none());
        assert!(m.try_call_now(|_| panic!("bind must not run"), |_| ()).is_none());
    }
    {
        let _r = g.read().unwrap();
        assert!(m.try_run_all_now().expect("readers share").is_ok());
        assert!(m.try_call_now(|_| panic!("bind must not run"), |_| ()).is_none(), "a call writes the graph");
    }
    let got = m.try_call_now(|g| {
        set_scalar(g, x, 1.0);
        Ok(())
    }, |res| res.view(z).map(|v| v.to_owned().to_vec_f64()));
    assert_eq!(got.expect("free").unwrap(), Some(vec![3.5]));
}

#[test]
fn try_call_registers_the_machine_and_reads_leaves_too() {
    let (g, x, z, m) = seed();
    // No run_all first: the call registers the machine itself.
    let got = m.try_call_now(|g| {
        set_scalar(g, x, 4.0);
        Ok(())
    }, |res| (res.view(z).map(|v| v.to_owned().to_vec_f64()), res.view(x).map(|v| v.to_owned().to_vec_f64())));
    assert_eq!(got.expect("free").unwrap(), (Some(vec![6.5]), Some(vec![4.0])));
    assert_eq!(node_value(&g, z).unwrap().to_vec_f64(), vec![6.5]);
    // A binding error comes back, and nothing runs.
    let r = m.try_call_now(|g| g.let_value(x, Value::Owned(Tensor::zeros(DType::F64, &[2]))), |_| ());
    assert!(r.expect("free").is_err());
}

#[test]
fn what_quick_paths_leave_to_run_all() {
    // A closed machine.
    let (_g, _x, _z, m) = seed();
    m.run_all().unwrap();
    m.close();
    assert!(m.try_run_all_now().is_none());
    assert!(m.try_call_now(|_| Ok(()), |_| ()).is_none());
    assert!(m.run_all().is_err());
    // A program that is not quick (a matmul).
    let mut g = Graph::new(false);
    let a = leaf(&mut g, "a", &[2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    let p = op(&mut g, "matmul", &[a, a]);
    let g = Arc::new(RwLock::new(g));
    let m = TapeMachine::new(g.clone(), MachineOptions::default()).unwrap();
    assert!(!m.is_quick());
    m.run_all().unwrap();
    assert!(m.try_run_all_now().is_none());
    assert_eq!(node_value(&g, p).unwrap().to_vec_f64(), vec![7.0, 10.0, 15.0, 22.0]);
    // Small elementwise steps, but too many elements in all to hold a caller's lock for.
    let mut g = Graph::new(false);
    let v = leaf(&mut g, "v", &[4096], rand_vec(4096, 1));
    let a = op(&mut g, "tanh", &[v]);
    let b = op(&mut g, "exp", &[a]);
    op(&mut g, "neg", &[b]);
    let m = TapeMachine::new(Arc::new(RwLock::new(g)), MachineOptions::default()).unwrap();
    assert!(!m.is_quick());
}

/// A machine that claims to hold a newer value of a leaf (as a GPU machine after a step).
struct Holder(f64);

impl ResultSource for Holder {
    fn value_of(&self, _: NodeId) -> Option<Result<Tensor>> {
        None
    }
    fn visit(&self, _: NodeId, _: &mut dyn FnMut(&TensorView<'_>) -> Result<()>) -> Option<Result<()>> {
        None
    }
    fn overwrite(&self, _: NodeId, _: &TensorView<'_>) -> Option<Result<()>> {
        None
    }
    fn leaf_value(&self, _: NodeId) -> Option<Result<Tensor>> {
        Some(Ok(Tensor::scalar(DType::F64, self.0)))
    }
}

#[test]
fn a_leaf_held_newer_elsewhere_is_fetched_by_run_all() {
    let (g, x, z, m) = seed();
    m.run_all().unwrap();
    let holder: Arc<dyn ResultSource> = Arc::new(Holder(7.0));
    let weak: Weak<dyn ResultSource> = Arc::downgrade(&holder);
    g.write().unwrap().mark_newer_on(x, weak);
    assert!(m.try_run_all_now().is_none());
    assert!(m.try_call_now(|_| Ok(()), |_| ()).is_none());
    m.run_all().unwrap();
    assert_eq!(node_value(&g, z).unwrap().to_vec_f64(), vec![9.5]);
    assert!(!g.read().unwrap().has_newer());
}

#[test]
fn rebinding_a_scalar_in_place_counts_as_a_binding() {
    let (g, x, _z, _m) = seed();
    let mut gw = g.write().unwrap();
    let v0 = gw.value_version(x);
    set_scalar(&mut gw, x, 3.0);
    assert_ne!(gw.value_version(x), v0);
    assert_eq!(gw.value(x).unwrap().to_vec_f64(), vec![3.0]);
    // Only 0-d leaves holding an owned value are rebound in place.
    let v = gw.leaf(DType::F64, &[2], None, None).unwrap();
    gw.let_value(v, Value::Owned(Tensor::zeros(DType::F64, &[2]))).unwrap();
    assert!(gw.rebind_scalar(v).is_none());
    let c = gw.scalar(DType::F64, 1.0);
    assert!(gw.rebind_scalar(c).is_none());
}

#[test]
fn a_quick_run_allocates_nothing() {
    // Scalars and small vectors, a broadcast operand, unary and binary ops.
    let mut g = Graph::new(false);
    let x = leaf(&mut g, "x", &[], vec![2.0]);
    let v = leaf(&mut g, "v", &[8], rand_vec(8, 3));
    let a = op(&mut g, "mul", &[v, x]);
    let b = op(&mut g, "tanh", &[a]);
    let c = op(&mut g, "sub", &[b, x]);
    let g = Arc::new(RwLock::new(g));
    let m = TapeMachine::new(g.clone(), MachineOptions::default()).unwrap();
    assert!(m.is_quick());
    m.run_all().unwrap();
    // The counter sees this thread's allocations.
    ARMED.with(|a| a.set(true));
    drop(std::hint::black_box(Box::new(1u64)));
    ARMED.with(|a| a.set(false));
    assert_eq!(COUNT.with(|c| c.replace(0)), 1);
    ARMED.with(|a| a.set(true));
    for _ in 0..10 {
        m.run_all().unwrap();
        m.try_run_all_now().expect("quick").unwrap();
    }
    ARMED.with(|a| a.set(false));
    assert_eq!(COUNT.with(Cell::get), 0, "heap allocations during quick runs");
    assert_eq!(node_value(&g, c).unwrap().len(), 8);
}
