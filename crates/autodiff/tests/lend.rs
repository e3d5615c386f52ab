//! Zero-copy results: a lent buffer is never written by a later run while it is held, the
//! node's value stays readable, and buffers come back to the machine (reused or pooled).
mod common;
use common::*;
use gorgon_autodiff::graph::Value;
use gorgon_autodiff::vm::{node_value, MachineOptions, SharedGraph, TapeMachine};
use gorgon_autodiff::{Graph, NodeId};
use gorgon_core::Tensor;
use std::sync::{Arc, RwLock};

const N: usize = 5000;

/// `z = x * 2 + x` over `N` elements, compiled with `z` as the output.
fn machine() -> (SharedGraph, NodeId, NodeId, TapeMachine) {
    let mut g = Graph::new(true);
    let x = leaf(&mut g, "x", &[N], vec![1.0; N]);
    let two = leaf(&mut g, "two", &[], vec![2.0]);
    let m2 = op(&mut g, "mul", &[x, two]);
    let z = op(&mut g, "add", &[m2, x]);
    let g = Arc::new(RwLock::new(g));
    let m = TapeMachine::new(g.clone(), MachineOptions { outputs: Some(vec![z]), ..MachineOptions::default() }).unwrap();
    (g, x, z, m)
}

fn data_ptr(t: &Tensor) -> *const f64 {
    match t {
        Tensor::F64(a) => a.as_ptr(),
        other => panic!("expected float64, got {}", other.dtype()),
    }
}

fn bind(g: &SharedGraph, x: NodeId, v: f64) {
    let t = Tensor::from_vec_f64(vec![v; N], &[N]).unwrap();
    g.write().unwrap().let_value(x, Value::Owned(t)).unwrap();
}

#[test]
fn a_held_buffer_is_never_overwritten() {
    let (g, x, z, m) = machine();
    assert!(m.lend(z).unwrap().is_none(), "nothing computed yet");
    bind(&g, x, 1.0);
    m.run_all().unwrap();
    let first = m.lend(z).unwrap().expect("z has a buffer");
    assert!(first.tensor().to_vec_f64().iter().all(|&v| v == 3.0));
    // Still readable through the machine, and lending twice shares the same buffer.
    assert_eq!(node_value(&g, z).unwrap().to_vec_f64()[0], 3.0);
    let again = m.lend(z).unwrap().unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    drop(again);
    bind(&g, x, 2.0);
    m.run_all().unwrap();
    assert!(first.tensor().to_vec_f64().iter().all(|&v| v == 3.0), "the held result changed");
    assert!(node_value(&g, z).unwrap().to_vec_f64().iter().all(|&v| v == 6.0));
    let second = m.lend(z).unwrap().unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert!(second.tensor().to_vec_f64().iter().all(|&v| v == 6.0));
    // The machine no longer shares `first`: dropping it parks its buffer in the pool, and
    // the next run (while `second` is still held) runs into that buffer.
    assert_eq!(m.pooled_buffers(), 0);
    drop(first);
    assert_eq!(m.pooled_buffers(), 1);
    bind(&g, x, 3.0);
    m.run_all().unwrap();
    assert_eq!(m.pooled_buffers(), 0);
    assert!(second.tensor().to_vec_f64().iter().all(|&v| v == 6.0));
    assert!(node_value(&g, z).unwrap().to_vec_f64().iter().all(|&v| v == 9.0));
}

#[test]
fn a_released_buffer_is_reused_in_place() {
    let (g, x, z, m) = machine();
    bind(&g, x, 1.0);
    m.run_all().unwrap();
    let l = m.lend(z).unwrap().unwrap();
    let ptr = data_ptr(l.tensor());
    drop(l);
    bind(&g, x, 4.0);
    m.run_all().unwrap();
    let l = m.lend(z).unwrap().unwrap();
    assert_eq!(data_ptr(l.tensor()), ptr, "the buffer was not reused");
    assert!(l.tensor().to_vec_f64().iter().all(|&v| v == 12.0));
    assert_eq!(m.pooled_buffers(), 0);
}

#[test]
fn close_and_take_value_with_a_lent_buffer() {
    let (g, x, z, m) = machine();
    bind(&g, x, 1.0);
    m.run_all().unwrap();
    let l = m.lend(z).unwrap().unwrap();
    let taken = m.take_value(z).unwrap();
    assert!(taken.to_vec_f64().iter().all(|&v| v == 3.0));
    assert!(l.tensor().to_vec_f64().iter().all(|&v| v == 3.0));
    m.close();
    assert!(l.tensor().to_vec_f64().iter().all(|&v| v == 3.0), "close freed a held buffer");
    drop(l);
    assert!(m.run_all().is_err());
}
