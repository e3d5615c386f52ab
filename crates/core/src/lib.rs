//! # gorgon-core
//!
//! The tensor core of gorgon_rs: dtypes ([`DType`]), shapes and NumPy broadcasting
//! ([`shape`]), the dtype-erased [`Tensor`] (owned) and [`TensorView`] (borrowed, strided:
//! transposes, slices and broadcasts are views, not copies), the [`device`] trait, and the
//! CPU kernels ([`kernels`]): runtime-dispatched SIMD elementwise math, reductions, GEMM
//! through `matrixmultiply`, softmax, gather/scatter, im2col convolution and pooling.
//!
//! This crate knows nothing of graphs or Python.
//!
//! ```
//! use gorgon_core::{Tensor, kernels::elementwise::{binary, BinaryOp}};
//! let a = Tensor::from_vec_f64(vec![1.0, 2.0, 3.0], &[3]).unwrap();
//! let b = Tensor::from_vec_f64(vec![10.0], &[1]).unwrap();
//! let mut out = Tensor::zeros(gorgon_core::DType::F64, &[3]);
//! binary(BinaryOp::Add, &a.view(), &b.view(), &mut out).unwrap();
//! assert_eq!(out.to_vec_f64(), vec![11.0, 12.0, 13.0]);
//! ```
#![warn(missing_docs)]

pub mod device;
pub mod dtype;
pub mod error;
pub mod kernels;
pub mod shape;
pub mod tensor;

pub use device::{CpuDevice, Device, DeviceKind};
pub use dtype::{DType, Element, Float};
pub use error::{CoreError, Result};
pub use tensor::{Tensor, TensorView};
