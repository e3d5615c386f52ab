//! Helpers shared by the integration tests.
#![allow(dead_code)]
use gorgon_autodiff::attrs::{Attr, Attrs};
use gorgon_autodiff::graph::Value;
use gorgon_autodiff::{Graph, NodeId};
use gorgon_core::{DType, Tensor};

pub fn leaf(g: &mut Graph, name: &str, shape: &[usize], data: Vec<f64>) -> NodeId {
    let id = g.leaf(DType::F64, shape, Some(name.into()), None).unwrap();
    g.let_value(id, Value::Owned(Tensor::from_vec(data, shape).unwrap())).unwrap();
    id
}

pub fn op(g: &mut Graph, name: &str, ins: &[NodeId]) -> NodeId {
    g.apply_named(name, ins, &Attrs::new(), None).unwrap()
}

pub fn op_a(g: &mut Graph, name: &str, ins: &[NodeId], attrs: &[(&str, Attr)]) -> NodeId {
    let mut a = Attrs::new();
    for (k, v) in attrs {
        a = a.with(k, v.clone());
    }
    g.apply_named(name, ins, &a, None).unwrap()
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn rand_vec(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let r = gorgon_autodiff::random::splitmix(seed.wrapping_mul(1_000_003).wrapping_add(i as u64)) >> 11;
            (r as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}
