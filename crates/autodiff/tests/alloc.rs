//! A steady-state run allocates no tensor memory: a counting global allocator records every
//! allocation of 4 KiB or more while `run_all` runs after a warm-up run.
mod common;
use common::*;
use gorgon_autodiff::attrs::Attr;
use gorgon_autodiff::grad::grad;
use gorgon_autodiff::vm::{MachineOptions, TapeMachine};
use gorgon_autodiff::Graph;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

struct Counting;
static ARMED: AtomicBool = AtomicBool::new(false);
static BIG: AtomicUsize = AtomicUsize::new(0);
const TENSOR_SIZED: usize = 4096;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) && l.size() >= TENSOR_SIZED {
            BIG.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) && n >= TENSOR_SIZED {
            BIG.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn steady_state_run_allocates_no_tensor_memory() {
    let mut g = Graph::new(true);
    let x = leaf(&mut g, "x", &[64, 64], rand_vec(4096, 1));
    let b = leaf(&mut g, "b", &[64], rand_vec(64, 2));
    let h = op(&mut g, "add", &[x, b]);
    let t = op(&mut g, "tanh", &[h]);
    let s = op_a(&mut g, "log_softmax", &[t], &[("axis", Attr::Int(1))]);
    let e = op(&mut g, "exp", &[s]);
    let m2 = op(&mut g, "mul", &[e, t]);
    let c = op(&mut g, "mean", &[m2]);
    grad(&mut g, c, &[x, b], false).unwrap();
    let g = Arc::new(RwLock::new(g));
    let m = TapeMachine::new(g, MachineOptions::default()).unwrap();
    m.run_all().unwrap();
    m.run_all().unwrap();
    ARMED.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        m.run_all().unwrap();
    }
    ARMED.store(false, Ordering::SeqCst);
    assert_eq!(BIG.load(Ordering::SeqCst), 0, "tensor-sized allocations during steady-state runs");
}
