//! Linear regression trained from Rust alone: build `cost = mean((X·w + b − y)²)`, add its
//! gradients to the graph, compile once, then take SGD steps with
//! [`gorgon_autodiff::solver::step`] (the fused update kernel the Python solvers use).
//!
//! Run with `cargo run -p gorgon-autodiff --example train_linear`.
use gorgon_autodiff::attrs::Attrs;
use gorgon_autodiff::graph::Value;
use gorgon_autodiff::solver::{self, Rule, StateBufs};
use gorgon_autodiff::vm::{node_value, MachineOptions, TapeMachine};
use gorgon_autodiff::{grad::grad, Graph, NodeId};
use gorgon_core::kernels::optim::{GradPrep, SolverRule};
use gorgon_core::{DType, Tensor};
use std::sync::{Arc, RwLock};

const N: usize = 32;

fn main() -> Result<(), gorgon_autodiff::Error> {
    // Data: y = 3x + 0.5 on N points of [-1, 1].
    let xs: Vec<f64> = (0..N).map(|i| -1.0 + 2.0 * i as f64 / (N - 1) as f64).collect();
    let ys: Vec<f64> = xs.iter().map(|x| 3.0 * x + 0.5).collect();

    let mut g = Graph::new(true);
    let x = g.leaf(DType::F64, &[N, 1], Some("X".into()), None)?;
    let y = g.leaf(DType::F64, &[N, 1], Some("y".into()), None)?;
    let w = g.leaf(DType::F64, &[1, 1], Some("w".into()), None)?;
    let b = g.leaf(DType::F64, &[1], Some("b".into()), None)?;
    let op = |g: &mut Graph, name: &str, inputs: &[NodeId]| g.apply_named(name, inputs, &Attrs::new(), None);
    let xw = op(&mut g, "matmul", &[x, w])?;
    let pred = op(&mut g, "add", &[xw, b])?; // (N, 1) + (1,) broadcasts
    let diff = op(&mut g, "sub", &[pred, y])?;
    let sq = op(&mut g, "square", &[diff])?;
    let cost = op(&mut g, "mean", &[sq])?; // no `axes` attribute: over all elements
    grad(&mut g, cost, &[w, b], false)?; // gradient nodes, computed by every run

    g.let_value(x, Value::Owned(Tensor::from_vec_f64(xs, &[N, 1]).map_err(gorgon_autodiff::Error::from)?))?;
    g.let_value(y, Value::Owned(Tensor::from_vec_f64(ys, &[N, 1]).map_err(gorgon_autodiff::Error::from)?))?;
    g.let_value(w, Value::Owned(Tensor::zeros(DType::F64, &[1, 1])))?;
    g.let_value(b, Value::Owned(Tensor::zeros(DType::F64, &[1])))?;

    let g = Arc::new(RwLock::new(g));
    let m = TapeMachine::new(g.clone(), MachineOptions::default())?;
    let rule = Rule::Elementwise(SolverRule::Sgd { lr: 0.3, momentum: 0.0, nesterov: false, dampening: 0.0 });
    let prep = GradPrep::default();
    let scalar = |n: NodeId| node_value(&g, n).map(|t| t.to_vec_f64()[0]);

    let mut first = None;
    for t in 1..=150u64 {
        m.run_all()?;
        let loss = scalar(cost)?;
        first.get_or_insert(loss);
        if t == 1 || t % 30 == 0 {
            println!("step {t:3}: loss {loss:.6}  w {:.4}  b {:.4}", scalar(w)?, scalar(b)?);
        }
        // Plain SGD keeps no state: one empty state list per parameter.
        let mut states = vec![StateBufs::F64(vec![]), StateBufs::F64(vec![])];
        solver::step(&g, &rule, &prep, t, &[w, b], &mut states)?;
        m.reset()?;
    }
    m.run_all()?;
    let (loss, wv, bv) = (scalar(cost)?, scalar(w)?, scalar(b)?);
    println!("final: loss {loss:.2e}, w = {wv:.4} (true 3), b = {bv:.4} (true 0.5)");
    assert!(loss < 1e-6 && loss < first.unwrap_or(f64::MAX), "training did not converge: loss {loss}");
    assert!((wv - 3.0).abs() < 1e-3 && (bv - 0.5).abs() < 1e-3);
    Ok(())
}
