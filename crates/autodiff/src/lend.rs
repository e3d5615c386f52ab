//! Zero-copy results: a machine *lends* a result buffer to its caller instead of copying it.
//!
//! After a run, [`crate::vm::TapeMachine::lend`] moves a node's buffer into a shared [`Lent`]
//! that the caller keeps (the Python bridge makes a NumPy array over it). The machine keeps a
//! second reference, so the node's value stays readable. Before its next run the machine
//! takes the buffer back:
//!
//! * if the caller has let go of it, the machine simply reuses it (no allocation, no copy);
//! * if the caller still holds it, the machine runs into another buffer: one from its
//!   [`Pool`] of buffers that earlier callers let go of, else a new one. A run never writes
//!   memory that a caller can still see.
//!
//! A [`Lent`] that is dropped after its machine stopped sharing it returns its buffer to the
//! machine's pool (when the machine is still alive and the pool has room), so a caller that
//! keeps each result for a while costs no page faults once the pool is warm.
//!
//! ```
//! use gorgon_autodiff::lend::{Lent, Pool};
//! use gorgon_core::{DType, Tensor};
//! use std::sync::Arc;
//! let pool = Arc::new(Pool::default());
//! let lent = Lent::new(Tensor::zeros(DType::F32, &[4]), &pool);
//! assert_eq!(lent.tensor().shape(), &[4]);
//! drop(lent); // back to the pool
//! assert!(pool.take(DType::F32, &[4]).is_some());
//! assert!(pool.take(DType::F32, &[4]).is_none());
//! ```

use gorgon_core::{DType, Tensor, TensorView};
use std::sync::{Arc, Mutex, Weak};

/// The most buffers a pool keeps.
pub const POOL_MAX: usize = 8;

/// Buffers that callers let go of, ready for a machine's next run.
#[derive(Debug, Default)]
pub struct Pool {
    free: Mutex<Vec<Tensor>>,
}

impl Pool {
    /// A pooled buffer of exactly this dtype and shape, if there is one.
    pub fn take(&self, dtype: DType, shape: &[usize]) -> Option<Tensor> {
        let mut free = self.free.lock().ok()?;
        let at = free.iter().position(|t| t.dtype() == dtype && t.shape() == shape)?;
        Some(free.swap_remove(at))
    }

    /// Keeps `t` for a later run (dropped when the pool is full).
    pub fn put(&self, t: Tensor) {
        if let Ok(mut free) = self.free.lock() {
            if free.len() < POOL_MAX {
                free.push(t);
            }
        }
    }

    /// How many buffers the pool holds.
    pub fn len(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// True when the pool holds no buffer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A result buffer lent out of a machine (see the module documentation). Immutable from
/// Rust; the Python bridge exposes it as a writable NumPy array that owns a reference.
#[derive(Debug)]
pub struct Lent {
    tensor: Option<Tensor>,
    pool: Weak<Pool>,
}

impl Lent {
    /// Wraps `t`, to return to `pool` when dropped.
    pub fn new(t: Tensor, pool: &Arc<Pool>) -> Lent {
        Lent { tensor: Some(t), pool: Arc::downgrade(pool) }
    }

    /// The buffer.
    pub fn tensor(&self) -> &Tensor {
        // Only `into_tensor` and `drop` take the tensor, and both consume the `Lent`.
        self.tensor.as_ref().unwrap_or(&EMPTY)
    }

    /// A view of the buffer.
    pub fn view(&self) -> TensorView<'_> {
        self.tensor().view()
    }

    /// The buffer back, without returning it to the pool.
    pub fn into_tensor(mut self) -> Option<Tensor> {
        self.tensor.take()
    }
}

/// What [`Lent::tensor`] shows after its buffer was taken (never observable in practice).
static EMPTY: std::sync::LazyLock<Tensor> = std::sync::LazyLock::new(|| Tensor::zeros(DType::F32, &[0]));

impl Drop for Lent {
    fn drop(&mut self) {
        if let (Some(t), Some(pool)) = (self.tensor.take(), self.pool.upgrade()) {
            pool.put(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_matches_dtype_and_shape_and_is_bounded() {
        let pool = Arc::new(Pool::default());
        for _ in 0..POOL_MAX + 3 {
            drop(Lent::new(Tensor::zeros(DType::F64, &[2, 3]), &pool));
        }
        assert_eq!(pool.len(), POOL_MAX);
        assert!(pool.take(DType::F32, &[2, 3]).is_none());
        assert!(pool.take(DType::F64, &[3, 2]).is_none());
        assert!(pool.take(DType::F64, &[2, 3]).is_some());
    }

    #[test]
    fn into_tensor_skips_the_pool_and_a_dead_pool_frees() {
        let pool = Arc::new(Pool::default());
        let l = Lent::new(Tensor::zeros(DType::F32, &[5]), &pool);
        assert_eq!(l.into_tensor().map(|t| t.len()), Some(5));
        assert!(pool.is_empty());
        let l = Lent::new(Tensor::zeros(DType::F32, &[5]), &pool);
        drop(pool);
        drop(l); // nowhere to go: freed, no panic
    }
}
