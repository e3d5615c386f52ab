//! CPU kernels. Every kernel reads [`TensorView`](crate::TensorView)s (any strides) and
//! writes into a caller-provided, already-allocated, contiguous output
//! [`Tensor`](crate::Tensor) of the right shape and dtype, so a compiled program can run
//! without allocating. Kernels check shapes/dtypes and return [`CoreError`](crate::CoreError)
//! rather than panic.
//!
//! Hot paths on contiguous data use explicit SIMD chosen at run time ([`simd`]); everything
//! has a scalar fallback that `GORGON_SIMD=scalar` forces. Large kernels split across
//! threads ([`threads`]); `GORGON_NUM_THREADS` caps them.

mod arith;
mod checks;
pub mod conv;
pub mod elementwise;
pub mod index;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod simd;
pub mod softmax;
pub mod threads;
pub mod vmath;
