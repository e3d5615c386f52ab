//! Reproducible randomness for ops that draw numbers at run time (dropout masks).
//!
//! `seed(n)` fixes a global seed; every random node takes a stream id when it is built, and
//! each run of a node draws from (seed, stream, run counter), so a script re-run after the
//! same `seed(n)` sees the same masks, and every run draws a fresh mask.

use crate::error::{Error, Result};
use gorgon_core::{DType, Element, Tensor};
use std::sync::atomic::{AtomicU64, Ordering};

static SEED: AtomicU64 = AtomicU64::new(0x5eed_0f_c0ffee);
static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);
static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Sets the global seed and restarts stream numbering.
pub fn seed(n: u64) {
    SEED.store(n, Ordering::SeqCst);
    NEXT_STREAM.store(1, Ordering::SeqCst);
    RUN_COUNTER.store(0, Ordering::SeqCst);
}

/// A new stream id, derived from the seed at build time.
pub fn next_stream() -> u64 {
    let s = NEXT_STREAM.fetch_add(1, Ordering::SeqCst);
    splitmix(SEED.load(Ordering::SeqCst) ^ splitmix(s))
}

/// SplitMix64 step (a well-known, statistically solid 64-bit mixer).
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `out` with an inverted-dropout mask: 0 with probability `p`, else `1/(1-p)`.
pub fn dropout_mask(p: f64, stream: u64, out: &mut Tensor) -> Result<()> {
    let run = RUN_COUNTER.fetch_add(1, Ordering::SeqCst);
    let base = splitmix(stream ^ splitmix(run.wrapping_add(0xD1B5_4A32_D192_ED03)));
    let scale = 1.0 / (1.0 - p);
    let threshold = (p * (1u64 << 53) as f64) as u64;
    fn fill<T: Element>(a: &mut ndarray::ArrayD<T>, base: u64, threshold: u64, scale: f64) {
        let s = T::from_f64(scale);
        for (i, v) in a.iter_mut().enumerate() {
            let r = splitmix(base.wrapping_add(i as u64)) >> 11;
            *v = if r < threshold { T::zero() } else { s };
        }
    }
    match out {
        Tensor::F32(a) => fill(a, base, threshold, scale),
        Tensor::F64(a) => fill(a, base, threshold, scale),
        other => return Err(Error::DType(format!("dropout: input must be float32 or float64, got {}", other.dtype()))),
    }
    let _ = DType::F32;
    Ok(())
}
