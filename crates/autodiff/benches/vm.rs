//! Criterion benchmarks of the graph compiler and the tape VM, without Python:
//!
//! - `vm_dispatch/scalar_chain_N`: a program of N tiny instructions (alternating `add` and
//!   `mul` of f64 scalars, which are never fused). Throughput is reported in "elements" =
//!   instructions, so criterion's `elem/s` is instructions per second and time ÷ N is the
//!   VM's cost per instruction (operand views, the output-buffer swap, the op's dispatch).
//! - `vm_dispatch/scalar_chain_i64_N`: the same chain on int64 scalars, which the VM's
//!   small-operand fast path (float32/float64 only) leaves to the general core kernels: the
//!   per-instruction cost of that path.
//! - `vm_dispatch/seed_run_all`: `run_all` of the seed graph z = x + y (f64 scalars): the
//!   fixed per-run cost (locks, leaf checks, result registration) plus one instruction.
//! - `compile/chain_10k`: compiling a 10,000-node elementwise chain (`add`, `tanh`
//!   alternating on a 16-vector): the fused program `gr.function` builds (outputs given), the
//!   same with fusion off, and the whole-graph program a `TapeMachine` builds.
//! - `fused_vs_unfused/chain_16ops_1M`: a 16-op elementwise chain on 2^20 f32 (tanh·0.5+0.1
//!   pattern) run fused (one block-wise loop) and unfused (one pass over memory per op).
//!
//! `cargo bench -p gorgon-autodiff --bench vm` (add `-- compile` to filter).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gorgon_autodiff::attrs::Attrs;
use gorgon_autodiff::compile::{compile, CompileOptions};
use gorgon_autodiff::graph::Value;
use gorgon_autodiff::vm::{MachineOptions, TapeMachine};
use gorgon_autodiff::{Graph, NodeId};
use gorgon_core::{DType, Tensor};
use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::Duration;

fn op(g: &mut Graph, name: &str, ins: &[NodeId]) -> NodeId {
    g.apply_named(name, ins, &Attrs::new(), None).expect("valid op")
}

/// `n_ops` alternating `add(h, 0.5)`, `mul(h, 0.999)` on a scalar input of `dtype` (for
/// int64 the constants are 0 and 1).
fn scalar_chain(n_ops: usize, dtype: DType) -> (Graph, NodeId) {
    let mut g = Graph::new(false);
    let x = g.leaf(dtype, &[], Some("x".into()), None).expect("leaf");
    g.let_value(x, Value::Owned(Tensor::scalar(dtype, 1.0))).expect("let");
    let a = g.scalar(dtype, 0.5);
    let m = g.scalar(dtype, 0.999);
    let mut h = x;
    for k in 0..n_ops {
        h = if k % 2 == 0 { op(&mut g, "add", &[h, a]) } else { op(&mut g, "mul", &[h, m]) };
    }
    (g, h)
}

/// The seed graph z = x + y on bound f64 scalars.
fn seed_graph() -> Graph {
    let mut g = Graph::new(false);
    let x = g.leaf(DType::F64, &[], Some("x".into()), None).expect("leaf");
    let y = g.leaf(DType::F64, &[], Some("y".into()), None).expect("leaf");
    g.let_value(x, Value::Owned(Tensor::scalar(DType::F64, 2.0))).expect("let");
    g.let_value(y, Value::Owned(Tensor::scalar(DType::F64, 2.5))).expect("let");
    op(&mut g, "add", &[x, y]);
    g
}

/// An elementwise chain on an f32 vector of `len` until the graph has `n_nodes` nodes:
/// `add(h, c)` (c a vector input) and `tanh(h)` alternating.
fn vector_chain_nodes(n_nodes: usize, len: usize) -> (Graph, NodeId) {
    let mut g = Graph::new(false);
    let x = g.leaf(DType::F32, &[len], Some("x".into()), None).expect("leaf");
    let c = g.leaf(DType::F32, &[len], Some("c".into()), None).expect("leaf");
    g.let_value(x, Value::Owned(Tensor::zeros(DType::F32, &[len]))).expect("let");
    g.let_value(c, Value::Owned(Tensor::zeros(DType::F32, &[len]))).expect("let");
    let mut h = x;
    let mut k = 0;
    while g.len() < n_nodes {
        h = if k % 2 == 0 { op(&mut g, "add", &[h, c]) } else { op(&mut g, "tanh", &[h]) };
        k += 1;
    }
    (g, h)
}

/// `n_ops` elementwise ops in the pattern tanh(h)·0.5 + 0.1 on an f32 vector of `len`.
fn tanh_chain(n_ops: usize, len: usize) -> (Graph, NodeId) {
    let mut g = Graph::new(false);
    let x = g.leaf(DType::F32, &[len], Some("x".into()), None).expect("leaf");
    let v: Vec<f32> = (0..len).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    g.let_value(x, Value::Owned(Tensor::from_vec(v, &[len]).expect("tensor"))).expect("let");
    let half = g.scalar(DType::F32, 0.5);
    let tenth = g.scalar(DType::F32, 0.1);
    let mut h = x;
    for k in 0..n_ops {
        h = match k % 3 {
            0 => op(&mut g, "tanh", &[h]),
            1 => op(&mut g, "mul", &[h, half]),
            _ => op(&mut g, "add", &[h, tenth]),
        };
    }
    (g, h)
}

fn machine(g: Graph, out: NodeId, no_fuse: bool) -> TapeMachine {
    let opts = MachineOptions { outputs: Some(vec![out]), no_fuse, ..MachineOptions::default() };
    TapeMachine::new(Arc::new(RwLock::new(g)), opts).expect("compiles")
}

fn bench_dispatch(c: &mut Criterion) {
    let mut grp = c.benchmark_group("vm_dispatch");
    grp.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    for n in [100usize, 1000] {
        let (g, out) = scalar_chain(n, DType::F64);
        let m = machine(g, out, true);
        grp.throughput(Throughput::Elements(n as u64));
        grp.bench_with_input(BenchmarkId::new("scalar_chain", n), &n, |b, _| b.iter(|| m.run_all().expect("runs")));
    }
    let n = 1000;
    let (g, out) = scalar_chain(n, DType::I64);
    let m = machine(g, out, true);
    grp.throughput(Throughput::Elements(n as u64));
    grp.bench_with_input(BenchmarkId::new("scalar_chain_i64", n), &n, |b, _| b.iter(|| m.run_all().expect("runs")));
    let m = TapeMachine::new(Arc::new(RwLock::new(seed_graph())), MachineOptions::default()).expect("compiles");
    grp.throughput(Throughput::Elements(1));
    grp.bench_function("seed_run_all", |b| b.iter(|| m.run_all().expect("runs")));
    grp.finish();
}

fn bench_compile(c: &mut Criterion) {
    let mut grp = c.benchmark_group("compile");
    grp.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    let (g, out) = vector_chain_nodes(10_000, 16);
    let cases = [
        ("chain_10k_outputs_fused", CompileOptions { outputs: Some(vec![out]), ..CompileOptions::default() }),
        ("chain_10k_outputs_unfused", CompileOptions { outputs: Some(vec![out]), no_fuse: true, ..CompileOptions::default() }),
        ("chain_10k_whole_graph", CompileOptions::default()),
    ];
    for (name, opts) in cases {
        grp.bench_function(name, |b| b.iter(|| compile(black_box(&g), black_box(&opts)).expect("compiles")));
    }
    grp.finish();
}

fn bench_fusion(c: &mut Criterion) {
    let mut grp = c.benchmark_group("fused_vs_unfused");
    grp.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    let len = 1 << 20;
    grp.throughput(Throughput::Elements(len as u64));
    for (name, no_fuse) in [("chain_16ops_1M_fused", false), ("chain_16ops_1M_unfused", true)] {
        let (g, out) = tanh_chain(16, len);
        let m = machine(g, out, no_fuse);
        grp.bench_function(name, |b| b.iter(|| m.run_all().expect("runs")));
    }
    grp.finish();
}

criterion_group!(benches, bench_dispatch, bench_compile, bench_fusion);
criterion_main!(benches);
