//! # gorgon-cuda
//!
//! The CUDA backend of gorgon_rs, on [cudarc](https://docs.rs/cudarc) with dynamic loading:
//! building never needs a CUDA toolkit, and a binary built with it runs on machines without
//! a GPU (everything reports why CUDA is unavailable instead of crashing).
#![warn(missing_docs)]

pub mod error;
pub mod kernels;
pub mod probe;

pub use error::CudaError;
pub use probe::{availability, device_count, is_available, unavailable_reason};
