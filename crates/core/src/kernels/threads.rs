//! Thread count policy for kernels: rayon's pool, capped by `GORGON_NUM_THREADS`.
//!
//! Kernels split only large work: below [`MIN_PARALLEL_LEN`] elements everything runs on the
//! calling thread (spawning costs more than it saves). Above it, the work is cut into at
//! most [`num_threads`] contiguous pieces of at least `min_chunk` elements each, so a cap of
//! `GORGON_NUM_THREADS=1` makes every kernel sequential.
//!
//! ```
//! use gorgon_core::kernels::threads::{par_chunks_mut, num_threads};
//! assert!(num_threads() >= 1);
//! let mut v = vec![0u32; 100_000];
//! par_chunks_mut(&mut v, 32 * 1024, |start, chunk| {
//!     for (i, x) in chunk.iter_mut().enumerate() {
//!         *x = (start + i) as u32;
//!     }
//! });
//! assert!(v.iter().enumerate().all(|(i, &x)| x as usize == i));
//! ```

use rayon::prelude::*;
use std::ops::Range;
use std::sync::OnceLock;

/// Below this many elements a kernel never splits across threads.
pub const MIN_PARALLEL_LEN: usize = 32 * 1024;

/// The default smallest piece handed to one thread by elementwise kernels (so work is split
/// from 64k elements up).
pub const DEFAULT_MIN_CHUNK: usize = 32 * 1024;

/// Chunk boundaries are rounded to multiples of this many elements (whole cache lines and
/// whole SIMD vectors for every dtype).
const ALIGN: usize = 64;

static ENV_CAP: OnceLock<Option<usize>> = OnceLock::new();

/// Parses a `GORGON_NUM_THREADS` value: a positive integer, anything else is ignored.
fn parse_cap(v: Option<&str>) -> Option<usize> {
    v.and_then(|s| s.trim().parse::<usize>().ok()).filter(|&n| n > 0)
}

/// A raw read-only pointer that may cross into the closures of parallel kernels. Every use
/// reads, while the array it came from is borrowed, a region the owning kernel has proven in
/// bounds.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *const T);
// SAFETY: the pointee is only read, and only while the borrowed array it came from is alive
// (the kernels hold the borrow for the whole parallel region).
unsafe impl<T: Sync> Send for SendPtr<T> {}
// SAFETY: as above; shared reads of `T: Sync` data are fine from any thread.
unsafe impl<T: Sync> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    #[inline(always)]
    pub(crate) fn get(self) -> *const T {
        self.0
    }
}

/// How many threads kernels may use.
pub fn num_threads() -> usize {
    let cap = *ENV_CAP.get_or_init(|| parse_cap(std::env::var("GORGON_NUM_THREADS").ok().as_deref()));
    let n = rayon::current_num_threads().max(1);
    match cap {
        Some(c) => n.min(c),
        None => n,
    }
}

/// How many pieces `len` elements of work should be cut into, given the smallest piece worth
/// a thread (`min_chunk`, raised to at least 1). Returns 1 (run inline) for small work.
///
/// ```
/// use gorgon_core::kernels::threads::split_count;
/// assert_eq!(split_count(1000, 32 * 1024), 1);
/// assert!(split_count(1 << 24, 32 * 1024) >= 1);
/// ```
pub fn split_count(len: usize, min_chunk: usize) -> usize {
    if len < MIN_PARALLEL_LEN {
        return 1;
    }
    let by_size = len / min_chunk.max(1);
    by_size.min(num_threads()).max(1)
}

fn piece_len(len: usize, parts: usize) -> usize {
    let per = len.div_ceil(parts.max(1));
    per.div_ceil(ALIGN) * ALIGN
}

/// Runs `f(start, chunk)` over contiguous pieces of `out` (`start` is the piece's offset in
/// `out`), in parallel when `out` is large enough (see [`split_count`]), otherwise once on the
/// calling thread with the whole slice.
///
/// The closure is type-erased before it reaches rayon, so each element type instantiates
/// rayon's machinery once however many kernels call this.
#[inline]
pub fn par_chunks_mut<T, F>(out: &mut [T], min_chunk: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync + Send,
{
    par_chunks_mut_dyn(out, min_chunk, &f)
}

/// [`par_chunks_mut`] with a `dyn` closure.
pub fn par_chunks_mut_dyn<T: Send>(out: &mut [T], min_chunk: usize, f: &(dyn Fn(usize, &mut [T]) + Sync)) {
    let len = out.len();
    let parts = split_count(len, min_chunk);
    if parts <= 1 {
        f(0, out);
        return;
    }
    let per = piece_len(len, parts);
    out.par_chunks_mut(per).enumerate().for_each(|(i, c)| f(i * per, c));
}

/// Runs `f(range)` over contiguous sub-ranges of `0..len`, in parallel when `len` is large
/// enough (see [`split_count`]), otherwise once with `0..len` on the calling thread. For
/// kernels whose output is not one slice.
#[inline]
pub fn par_ranges<F>(len: usize, min_chunk: usize, f: F)
where
    F: Fn(Range<usize>) + Sync + Send,
{
    par_ranges_dyn(len, min_chunk, &f)
}

/// [`par_ranges`] with a `dyn` closure.
pub fn par_ranges_dyn(len: usize, min_chunk: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
    let parts = split_count(len, min_chunk);
    if parts <= 1 {
        f(0..len);
        return;
    }
    let per = piece_len(len, parts);
    let n = len.div_ceil(per);
    (0..n).into_par_iter().for_each(|i| {
        let s = i * per;
        f(s..(s + per).min(len))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn caps_and_splits() {
        assert_eq!(parse_cap(Some("4")), Some(4));
        assert_eq!(parse_cap(Some("0")), None);
        assert_eq!(parse_cap(Some("x")), None);
        assert_eq!(parse_cap(None), None);
        assert_eq!(split_count(MIN_PARALLEL_LEN - 1, 1), 1);
        assert!(split_count(1 << 20, 1) <= num_threads());
        let total = AtomicUsize::new(0);
        par_ranges(1_000_003, 1000, |r| {
            total.fetch_add(r.len(), Ordering::Relaxed);
        });
        assert_eq!(total.load(Ordering::Relaxed), 1_000_003);
        let mut v = vec![0u8; 200_001];
        par_chunks_mut(&mut v, DEFAULT_MIN_CHUNK, |_, c| c.iter_mut().for_each(|x| *x += 1));
        assert!(v.iter().all(|&x| x == 1));
        let mut e: Vec<u8> = vec![];
        par_chunks_mut(&mut e, DEFAULT_MIN_CHUNK, |s, c| assert!(s == 0 && c.is_empty()));
    }
}
