//! Run-time SIMD level detection. `GORGON_SIMD=scalar` forces the scalar fallback.

/// The instruction set a kernel may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Portable scalar code.
    Scalar,
    /// x86-64 AVX2 + FMA.
    Avx2Fma,
    /// x86-64 AVX-512F.
    Avx512,
    /// aarch64 NEON.
    Neon,
}

/// The level in force (detected once, overridable with `GORGON_SIMD`).
pub fn level() -> SimdLevel {
    todo!()
}
