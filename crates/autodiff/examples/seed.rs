//! The seed example from Rust alone: z = x + y, then dz/dx and dz/dy.
//!
//! Run with `cargo run -p gorgon-autodiff --example seed`.
use gorgon_autodiff::attrs::Attrs;
use gorgon_autodiff::graph::Value;
use gorgon_autodiff::vm::{node_value, MachineOptions, TapeMachine};
use gorgon_autodiff::{grad::grad, Graph};
use gorgon_core::{DType, Tensor};
use std::sync::{Arc, RwLock};

fn main() -> Result<(), gorgon_autodiff::Error> {
    let mut g = Graph::new(true);
    let x = g.leaf(DType::F64, &[], Some("x".into()), None)?;
    let y = g.leaf(DType::F64, &[], Some("y".into()), None)?;
    let z = g.apply_named("add", &[x, y], &Attrs::new(), None)?;
    let grads = grad(&mut g, z, &[x, y], false)?;
    g.let_value(x, Value::Owned(Tensor::scalar(DType::F64, 2.0)))?;
    g.let_value(y, Value::Owned(Tensor::scalar(DType::F64, 2.5)))?;
    let g = Arc::new(RwLock::new(g));
    let m = TapeMachine::new(g.clone(), MachineOptions::default())?;
    m.run_all()?;
    for line in m.program()? {
        println!("{line}");
    }
    let v = |n| node_value(&g, n).map(|t| t.to_vec_f64()[0]);
    println!("z = {}", v(z)?);
    println!("dz/dx = {}, dz/dy = {}", v(grads[0])?, v(grads[1])?);
    Ok(())
}
