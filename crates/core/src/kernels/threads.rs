//! Thread count policy for kernels: rayon's pool, capped by `GORGON_NUM_THREADS`.

/// How many threads kernels may use.
pub fn num_threads() -> usize {
    todo!()
}
