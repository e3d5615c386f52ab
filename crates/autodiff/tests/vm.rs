//! End-to-end tests of graph → grad → compile → run.
mod common;
use common::*;
use gorgon_autodiff::attrs::Attr;
use gorgon_autodiff::graph::Value;
use gorgon_autodiff::vm::{grad_node_value, node_value, LispMachine, MachineOptions, SharedGraph, TapeMachine};
use gorgon_autodiff::{grad::grad, Graph, NodeId};
use gorgon_core::Tensor;
use std::sync::{Arc, RwLock};

fn shared(g: Graph) -> SharedGraph {
    Arc::new(RwLock::new(g))
}

#[test]
fn seed_example_values_and_grads() {
    let mut g = Graph::new(true);
    let x = leaf(&mut g, "x", &[], vec![2.0]);
    let y = leaf(&mut g, "y", &[], vec![2.5]);
    let z = op(&mut g, "add", &[x, y]);
    let gs = grad(&mut g, z, &[x, y], false).unwrap();
    let g = shared(g);
    let m = TapeMachine::new(g.clone(), MachineOptions::default()).unwrap();
    m.run_all().unwrap();
    assert_eq!(node_value(&g, z).unwrap().to_vec_f64(), vec![4.5]);
    assert_eq!(node_value(&g, gs[0]).unwrap().to_vec_f64(), vec![1.0]);
    assert_eq!(grad_node_value(&g, y).unwrap().unwrap().to_vec_f64(), vec![1.0]);
}

#[test]
fn lisp_machine_backprops_the_single_cost() {
    let mut g = Graph::new(true);
    let x = leaf(&mut g, "x", &[3], vec![1.0, 2.0, 3.0]);
    let sq = op(&mut g, "square", &[x]);
    let c = op(&mut g, "sum", &[sq]);
    let g = shared(g);
    let m = LispMachine::new(g.clone(), true, MachineOptions::default()).unwrap();
    m.run_all().unwrap();
    assert_eq!(node_value(&g, c).unwrap().to_vec_f64(), vec![14.0]);
    assert_eq!(grad_node_value(&g, x).unwrap().unwrap().to_vec_f64(), vec![2.0, 4.0, 6.0]);
}

/// Central-difference check of d(cost)/d(w) for a small MLP-like graph.
#[test]
fn finite_differences_match_symbolic_gradient() {
    let build = |wv: Vec<f64>| -> (Graph, NodeId, NodeId) {
        let mut g = Graph::new(true);
        let x = leaf(&mut g, "x", &[4, 3], rand_vec(12, 1));
        let w = leaf(&mut g, "w", &[3, 2], wv);
        let b = leaf(&mut g, "b", &[2], vec![0.1, -0.2]);
        let h = op(&mut g, "matmul", &[x, w]);
        let hb = op(&mut g, "add", &[h, b]);
        let t = op(&mut g, "tanh", &[hb]);
        let s = op_a(&mut g, "log_softmax", &[t], &[("axis", Attr::Int(-1))]);
        let c = op(&mut g, "mean", &[s]);
        (g, c, w)
    };
    let w0 = rand_vec(6, 2);
    let (mut g, c, w) = build(w0.clone());
    let dw = grad(&mut g, c, &[w], false).unwrap()[0];
    let g = shared(g);
    let m = TapeMachine::new(g.clone(), MachineOptions::default()).unwrap();
    m.run_all().unwrap();
    let sym = node_value(&g, dw).unwrap().to_vec_f64();
    let eps = 1e-6;
    for k in 0..6 {
        let eval = |delta: f64| {
            let mut wv = w0.clone();
            wv[k] += delta;
            let (g, c, _) = build(wv);
            let g = shared(g);
            let m = TapeMachine::new(g.clone(), MachineOptions::default()).unwrap();
            m.run_all().unwrap();
            let v = node_value(&g, c).unwrap().to_vec_f64()[0];
            v
        };
        let fd = (eval(eps) - eval(-eps)) / (2.0 * eps);
        assert!((fd - sym[k]).abs() <= 1e-5 + 1e-3 * fd.abs(), "k={k}: fd {fd} vs symbolic {}", sym[k]);
    }
}

#[test]
fn second_derivative_of_tanh() {
    let mut g = Graph::new(true);
    let x = leaf(&mut g, "x", &[], vec![0.3]);
    let t = op(&mut g, "tanh", &[x]);
    let d1 = grad(&mut g, t, &[x], false).unwrap()[0];
    let d2 = grad(&mut g, d1, &[x], false).unwrap()[0];
    let g = shared(g);
    let m = TapeMachine::new(g.clone(), MachineOptions::default()).unwrap();
    m.run_all().unwrap();
    let v = node_value(&g, d2).unwrap().to_vec_f64()[0];
    let th = 0.3f64.tanh();
    assert!((v - (-2.0 * th * (1.0 - th * th))).abs() < 1e-12);
}

#[test]
fn gradient_buffers_are_reused() {
    let mut g = Graph::new(true);
    let x = leaf(&mut g, "x", &[8, 8], rand_vec(64, 3));
    let mut h = x;
    for _ in 0..10 {
        h = op(&mut g, "tanh", &[h]);
    }
    let c = op(&mut g, "sum", &[h]);
    grad(&mut g, c, &[x], false).unwrap();
    let g = shared(g);
    let m = TapeMachine::new(g.clone(), MachineOptions { no_fuse: true, ..Default::default() }).unwrap();
    let listing = m.program().unwrap();
    let bufs: std::collections::HashSet<&str> = listing.iter().filter_map(|l| l.rsplit("-> ").next()).collect();
    assert!(bufs.len() < listing.len(), "{} buffers for {} instructions", bufs.len(), listing.len());
    m.run_all().unwrap();
}

#[test]
fn errors_name_nodes() {
    let mut g = Graph::new(true);
    let x = g.leaf(gorgon_core::DType::F32, &[2, 3], Some("x".into()), Some("model.py:7".into())).unwrap();
    let y = g.leaf(gorgon_core::DType::F32, &[4], Some("y".into()), None).unwrap();
    let e = g.apply_named("add", &[x, y], &Default::default(), Some("model.py:9".into())).unwrap_err().to_string();
    for part in ["add", "(2, 3)", "(4,)", "float32", "x", "y", "model.py:9"] {
        assert!(e.contains(part), "{e:?} lacks {part}");
    }
    let gs = shared(g);
    let z = gs.write().unwrap().apply_named("neg", &[x], &Default::default(), None).unwrap();
    let m = TapeMachine::new(gs.clone(), MachineOptions { outputs: Some(vec![z]), ..Default::default() }).unwrap();
    let e = m.run_all().unwrap_err().to_string();
    assert!(e.contains("x") && e.contains("model.py:7"), "{e}");
    m.close();
    assert!(m.run_all().unwrap_err().to_string().contains("closed"));
    let _ = Value::Owned(Tensor::scalar(gorgon_core::DType::F32, 0.0));
}

#[test]
fn fused_and_unfused_programs_agree() {
    fused_matches_unfused(3000);
}

/// Large enough (16.8 MB of float64, odd length) that the fused kernel streams its output
/// past the cache (`fused::STREAM_BYTES`), with an unaligned head and a ragged tail.
#[test]
fn fused_streaming_stores_match_unfused() {
    let n = 2_100_001;
    assert!(n * 8 >= gorgon_autodiff::fused::STREAM_BYTES);
    fused_matches_unfused(n);
}

fn fused_matches_unfused(n: usize) {
    let build = || {
        let mut g = Graph::new(true);
        let a = leaf(&mut g, "a", &[n], rand_vec(n, 5));
        let b = leaf(&mut g, "b", &[n], rand_vec(n, 6));
        let c = leaf(&mut g, "c", &[], vec![0.25]);
        let ab = op(&mut g, "mul", &[a, b]);
        let abc = op(&mut g, "add", &[ab, c]);
        let t = op(&mut g, "tanh", &[abc]);
        let s = op(&mut g, "sigmoid", &[t]);
        let y = op(&mut g, "mul", &[s, a]);
        (shared(g), y)
    };
    let (g1, y1) = build();
    let fused = TapeMachine::new(g1.clone(), MachineOptions { outputs: Some(vec![y1]), ..Default::default() }).unwrap();
    assert!(fused.program().unwrap().iter().any(|l| l.contains("fused(")), "{:?}", fused.program().unwrap());
    assert_eq!(fused.program().unwrap().len(), 1);
    fused.run_all().unwrap();
    let (g2, y2) = build();
    let plain = TapeMachine::new(g2.clone(), MachineOptions { outputs: Some(vec![y2]), no_fuse: true, ..Default::default() }).unwrap();
    assert!(plain.program().unwrap().len() >= 5);
    plain.run_all().unwrap();
    let (v1, v2) = (fused.value(y1).unwrap().to_vec_f64(), plain.value(y2).unwrap().to_vec_f64());
    for (p, q) in v1.iter().zip(&v2) {
        assert!((p - q).abs() <= 1e-15 * q.abs().max(1.0), "{p} vs {q}");
    }
}

#[test]
fn a_node_watched_twice_is_recorded_once_per_run() {
    let mut g = Graph::new(true);
    let x = g.leaf(gorgon_core::DType::F64, &[], Some("x".into()), None).unwrap();
    g.let_value(x, Value::Owned(Tensor::scalar(gorgon_core::DType::F64, 2.0))).unwrap();
    let y = g.apply_named("neg", &[x], &gorgon_autodiff::attrs::Attrs::new(), None).unwrap();
    let opts = MachineOptions { watch: vec![y, x, y, x], ..Default::default() };
    assert_eq!(opts.watch_list(), vec![y, x]);
    let m = TapeMachine::new(shared(g), opts).unwrap();
    m.run_all().unwrap();
    m.run_all().unwrap();
    let w = m.watched().unwrap();
    assert_eq!(w[&x].len(), 2);
    assert_eq!(w[&y].len(), 2);
    assert_eq!(w[&y][1].to_vec_f64(), vec![-2.0]);
}

/// `sum`/`mean` over trailing axes absorb the elementwise tree feeding them (one
/// instruction, no temporary) and agree with the unfused program; other axes stay unfused.
#[test]
fn fused_reductions_match_unfused() {
    let (m, k) = (37, 3001);
    let cases: Vec<(&str, Option<Vec<i64>>, bool, bool)> = vec![
        ("sum", None, false, true),
        ("mean", None, false, true),
        ("sum", Some(vec![1]), false, true),
        ("mean", Some(vec![-1]), true, true),
        ("sum", Some(vec![0]), false, false), // leading axis: not fused
        ("max", None, false, false),          // only sums and means
    ];
    for (red, axes, keepdims, fuses) in cases {
        let build = || {
            let mut g = Graph::new(true);
            let a = leaf(&mut g, "a", &[m, k], rand_vec(m * k, 11));
            let b = leaf(&mut g, "b", &[m, k], rand_vec(m * k, 12));
            let d = op(&mut g, "sub", &[a, b]);
            let sq = op(&mut g, "square", &[d]);
            let t = op(&mut g, "tanh", &[sq]);
            let mut attrs: Vec<(&str, Attr)> = vec![("keepdims", Attr::Bool(keepdims))];
            if let Some(ax) = &axes {
                attrs.push(("axes", Attr::Ints(ax.clone())));
            }
            let y = op_a(&mut g, red, &[t], &attrs);
            (shared(g), y)
        };
        let (g1, y1) = build();
        let fused = TapeMachine::new(g1, MachineOptions { outputs: Some(vec![y1]), ..Default::default() }).unwrap();
        let listing = fused.program().unwrap();
        assert_eq!(listing.len() == 1 && listing[0].contains("∘fused("), fuses, "{red} {axes:?}: {listing:?}");
        fused.run_all().unwrap();
        let (g2, y2) = build();
        let plain = TapeMachine::new(g2, MachineOptions { outputs: Some(vec![y2]), no_fuse: true, ..Default::default() }).unwrap();
        plain.run_all().unwrap();
        let (v1, v2) = (fused.value(y1).unwrap(), plain.value(y2).unwrap());
        assert_eq!(v1.shape(), v2.shape(), "{red} {axes:?}");
        for (p, q) in v1.to_vec_f64().iter().zip(&v2.to_vec_f64()) {
            assert!((p - q).abs() <= 1e-12 * q.abs().max(1.0), "{red} {axes:?}: {p} vs {q}");
        }
    }
}
