//! # gorgon-autodiff
//!
//! Gorgonia's model in Rust: build an expression [`Graph`], differentiate it symbolically
//! ([`grad::grad`] adds gradient nodes to the same graph, so gradients of gradients work),
//! compile it ([`compile`]) into a flat, printable [`compile::Program`] with buffers planned
//! by liveness, and run it on a [`vm::TapeMachine`] (or eagerly). Numerical-stabilization
//! rewrites ([`stabilize`]) run as nodes are built.
//!
//! ```
//! use gorgon_autodiff::{Graph, attrs::Attrs, graph::Value, vm::{TapeMachine, MachineOptions}};
//! use gorgon_core::{DType, Tensor};
//! use std::sync::{Arc, RwLock};
//! let mut g = Graph::new(true);
//! let x = g.leaf(DType::F64, &[], Some("x".into()), None).unwrap();
//! let y = g.leaf(DType::F64, &[], Some("y".into()), None).unwrap();
//! let z = g.apply_named("add", &[x, y], &Attrs::new(), None).unwrap();
//! g.let_value(x, Value::Owned(Tensor::scalar(DType::F64, 2.0))).unwrap();
//! g.let_value(y, Value::Owned(Tensor::scalar(DType::F64, 2.5))).unwrap();
//! let g = Arc::new(RwLock::new(g));
//! let m = TapeMachine::new(g.clone(), MachineOptions::default()).unwrap();
//! m.run_all().unwrap();
//! assert_eq!(gorgon_autodiff::vm::node_value(&g, z).unwrap().to_vec_f64(), vec![4.5]);
//! ```
#![warn(missing_docs)]

pub mod attrs;
pub mod build;
pub mod compile;
pub mod error;
mod exec;
pub mod fused;
pub mod grad;
pub mod graph;
pub mod infer;
pub mod io;
pub mod lend;
pub mod op;
pub mod random;
pub mod smallops;
pub mod solver;
pub mod stabilize;
pub mod vm;

pub use error::{Error, Result};
pub use graph::{Graph, NodeId};
