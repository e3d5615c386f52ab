//! # gorgon-cuda
//!
//! The CUDA backend of gorgon_rs, on [cudarc](https://docs.rs/cudarc) with dynamic loading:
//! building never needs a CUDA toolkit, and a binary built with it runs on machines without
//! a GPU — every entry point reports why CUDA is unavailable instead of crashing.
//!
//! - [`probe`]: is there a driver, a device, NVRTC, cuBLAS? (checked before any cudarc call,
//!   because cudarc panics when a dynamically loaded library is missing).
//! - [`kernels`]: the CUDA C sources (`include_str!`) and their NVRTC compilation;
//!   [`cache`] keeps compiled images on disk so only the first process compiles.
//! - [`CudaDevice`]: one GPU implementing [`gorgon_core::Device`], with a launch method per
//!   kernel family (elementwise, reductions, softmax, gather/scatter, cuBLAS matmul, conv,
//!   pooling, solver updates) — these methods exist only with the `cuda` feature.
//! - `fused` (with the `cuda` feature): CUDA C generated for fused elementwise instructions.
//! - [`layout`]: the host-side index arithmetic shared by those launches.
//! - `machine` (with the `cuda` feature): `CudaMachine`, which runs a compiled
//!   gorgon-autodiff `Program` on the GPU with the CPU tape machine's API.
//!
//! ```
//! if gorgon_cuda::is_available() {
//!     let dev = gorgon_cuda::CudaDevice::new(0).unwrap();
//!     println!("using {}", dev.name());
//! } else {
//!     println!("CPU only: {}", gorgon_cuda::unavailable_reason().unwrap());
//! }
//! ```
//!
//! Cargo feature `cuda` (default): without it the crate builds with no cudarc at all and
//! [`CudaDevice::new`] always returns an error saying so.
#![warn(missing_docs)]

pub mod cache;
pub mod device;
pub mod error;
#[cfg(feature = "cuda")]
pub mod fused;
pub mod kernels;
pub mod layout;
#[cfg(feature = "cuda")]
pub mod machine;
#[cfg(feature = "cuda")]
mod nn;
#[cfg(feature = "cuda")]
mod ops;
pub mod probe;

pub use device::{CudaBuffer, CudaDevice};
pub use error::CudaError;
#[cfg(feature = "cuda")]
pub use nn::{Update, UpdateParams};
pub use probe::{availability, device_count, is_available, unavailable_reason};
