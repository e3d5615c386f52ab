//! Vectorized transcendental functions on contiguous slices (exp, ln, tanh, sigmoid, ...),
//! with SIMD implementations chosen at run time and a scalar fallback; max relative error
//! ≤ 4 ulp against the f64 result.
//!
//! Every function is written once, generically over a small SIMD vector abstraction, and
//! instantiated for AVX-512F (16×f32 / 8×f64), AVX2+FMA (8×f32 / 4×f64) and NEON (4×f32 /
//! 2×f64) inside `#[target_feature]` functions, so the crate needs no `target-cpu` flag. The
//! scalar fallback (forced with `GORGON_SIMD=scalar`) calls the standard library (f32
//! functions are evaluated in f64 and rounded).
//!
//! Algorithms (all branch-free per lane, special values fixed up with selects):
//! * `exp`: Cody–Waite reduction `x = n·ln2 + r`, |r| ≤ ln2/2, Taylor polynomial, and the
//!   scale `2ⁿ` applied as two factors so subnormal results round once and overflow is exact.
//! * `ln`, `log1p`: fdlibm's reduction to `m ∈ [√½, √2)` and `ln m = 2·atanh(f/(2+f))`;
//!   subnormal inputs are pre-scaled; `log1p` adds the exact rounding error of `1+x`.
//! * `expm1`: the same reduction, `2ⁿ·expm1(r) + (2ⁿ − 1)` evaluated as
//!   `2·fma(2ⁿ⁻¹, expm1(r), 2ⁿ⁻¹ − ½)` (no cancellation, no spurious overflow).
//! * `tanh x = sign(x)·(−e)/(2+e)` with `e = expm1(−2|x|)`.
//! * `sigmoid x = (x ≥ 0 ? 1 : e)/(1+e)` with `e = exp(−|x|)` (stable for both signs).
//!
//! ```
//! use gorgon_core::kernels::vmath;
//! let x = [0.0f32, 1.0, -1.0];
//! let mut y = [0.0f32; 3];
//! vmath::exp_f32(&x, &mut y);
//! assert!((y[1] - std::f32::consts::E).abs() < 1e-6);
//! vmath::sigmoid_f32(&x, &mut y);
//! assert_eq!(y[0], 0.5);
//! ```

use super::simd::{self, SimdLevel};

/// A function this module vectorizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VFunc {
    /// eˣ
    Exp,
    /// ln x
    Ln,
    /// ln(1+x)
    Log1p,
    /// eˣ − 1
    Expm1,
    /// tanh x
    Tanh,
    /// 1/(1+e⁻ˣ)
    Sigmoid,
}

impl VFunc {
    /// All functions, in a fixed order.
    pub const ALL: [VFunc; 6] = [VFunc::Exp, VFunc::Ln, VFunc::Log1p, VFunc::Expm1, VFunc::Tanh, VFunc::Sigmoid];
}

/// Element types with vectorized math (f32 and f64), for kernels generic over the float
/// type. Slices of different lengths process the common prefix.
pub trait VMath: Copy + Send + Sync + 'static {
    /// `out[i] = f(x[i])` at the given SIMD level (lowered to what the CPU supports).
    fn vapply_with(level: SimdLevel, f: VFunc, x: &[Self], out: &mut [Self]);
    /// `x[i] = f(x[i])` at the given SIMD level (lowered to what the CPU supports).
    fn vapply_inplace_with(level: SimdLevel, f: VFunc, x: &mut [Self]);
    /// The scalar fallback for one element.
    fn scalar(f: VFunc, x: Self) -> Self;
    /// `out[i] = f(x[i])` at [`simd::level`].
    #[inline]
    fn vapply(f: VFunc, x: &[Self], out: &mut [Self]) {
        Self::vapply_with(simd::level(), f, x, out)
    }
    /// `x[i] = f(x[i])` at [`simd::level`].
    #[inline]
    fn vapply_inplace(f: VFunc, x: &mut [Self]) {
        Self::vapply_inplace_with(simd::level(), f, x)
    }
}

/// The level actually used for a requested one: the request, or the best lower level the CPU
/// supports.
pub fn effective_level(level: SimdLevel) -> SimdLevel {
    if simd::supports(level) {
        level
    } else if level == SimdLevel::Avx512 && simd::supports(SimdLevel::Avx2Fma) {
        SimdLevel::Avx2Fma
    } else {
        SimdLevel::Scalar
    }
}

// ---------------------------------------------------------------------------------------
// Scalar fallback.
// ---------------------------------------------------------------------------------------

/// The scalar fallback for one f32 element (the standard library; everything but exp and ln
/// is evaluated in f64 and rounded; all within 1 ulp).
#[inline]
pub fn scalar_f32(f: VFunc, x: f32) -> f32 {
    match f {
        // libm's expf/logf are already within 1 ulp and faster than the f64 route.
        VFunc::Exp => x.exp(),
        VFunc::Ln => x.ln(),
        _ => scalar_f64(f, x as f64) as f32,
    }
}

/// The scalar fallback for one f64 element (standard library).
#[inline]
pub fn scalar_f64(f: VFunc, x: f64) -> f64 {
    match f {
        VFunc::Exp => x.exp(),
        VFunc::Ln => x.ln(),
        VFunc::Log1p => x.ln_1p(),
        VFunc::Expm1 => x.exp_m1(),
        VFunc::Tanh => x.tanh(),
        VFunc::Sigmoid => {
            if x >= 0.0 {
                1.0 / (1.0 + (-x).exp())
            } else {
                let e = x.exp();
                e / (1.0 + e)
            }
        }
    }
}

mod algo;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

// ---------------------------------------------------------------------------------------
// Dispatch and the public API.
// ---------------------------------------------------------------------------------------

/// Implements [`VMath`] for `$t` on top of `$raw`, defined here too (the dispatch over SIMD
/// levels to the entry points of the `x86` / `neon` modules, with the scalar fallback
/// `$scalar`), and the public slice functions `$apply`, `$inplace` and `$with` for `$t`.
macro_rules! impl_vmath {
    ($t:ty, $raw:ident, $scalar:ident, $avx512:ident, $avx2:ident, $neon:ident, $apply:ident, $inplace:ident, $with:ident) => {
        /// # Safety
        /// `x` must be valid for `n` reads and `out` for `n` writes; they may be equal but must
        /// not otherwise overlap.
        unsafe fn $raw(level: SimdLevel, f: VFunc, x: *const $t, out: *mut $t, n: usize) {
            match effective_level(level) {
                #[cfg(target_arch = "x86_64")]
                SimdLevel::Avx512 => x86::$avx512(f, x, out, n),
                #[cfg(target_arch = "x86_64")]
                SimdLevel::Avx2Fma => x86::$avx2(f, x, out, n),
                #[cfg(target_arch = "aarch64")]
                SimdLevel::Neon => neon::$neon(f, x, out, n),
                _ => {
                    for i in 0..n {
                        *out.add(i) = $scalar(f, *x.add(i));
                    }
                }
            }
        }

        impl VMath for $t {
            fn vapply_with(level: SimdLevel, f: VFunc, x: &[$t], out: &mut [$t]) {
                let n = x.len().min(out.len());
                // SAFETY: both slices hold at least n elements and cannot overlap (borrow rules).
                unsafe { $raw(level, f, x.as_ptr(), out.as_mut_ptr(), n) }
            }
            fn vapply_inplace_with(level: SimdLevel, f: VFunc, x: &mut [$t]) {
                let p = x.as_mut_ptr();
                // SAFETY: in = out exactly; every kernel loads a block before storing it.
                unsafe { $raw(level, f, p, p, x.len()) }
            }
            fn scalar(f: VFunc, x: $t) -> $t {
                $scalar(f, x)
            }
        }

        #[doc = concat!("`out[i] = f(x[i])` for ", stringify!($t), " at [`simd::level`] (common prefix of the two slices).")]
        pub fn $apply(f: VFunc, x: &[$t], out: &mut [$t]) {
            <$t>::vapply(f, x, out)
        }

        #[doc = concat!("`x[i] = f(x[i])` for ", stringify!($t), " at [`simd::level`].")]
        pub fn $inplace(f: VFunc, x: &mut [$t]) {
            <$t>::vapply_inplace(f, x)
        }

        #[doc = concat!("`out[i] = f(x[i])` for ", stringify!($t), " with an explicit SIMD level (lowered to what the CPU supports;")]
        /// see [`effective_level`]). Lets tests and benchmarks exercise every implementation.
        pub fn $with(level: SimdLevel, f: VFunc, x: &[$t], out: &mut [$t]) {
            <$t>::vapply_with(level, f, x, out)
        }
    };
}

impl_vmath!(f32, raw_f32, scalar_f32, f32_avx512, f32_avx2, f32_neon, apply_f32, apply_f32_inplace, apply_f32_with);
impl_vmath!(f64, raw_f64, scalar_f64, f64_avx512, f64_avx2, f64_neon, apply_f64, apply_f64_inplace, apply_f64_with);

/// Defines the named slice functions `$f32` and `$f64` for one [`VFunc`].
macro_rules! named {
    ($($f32:ident, $f64:ident: $f:expr, $doc:literal;)*) => {$(
        #[doc = $doc]
        pub fn $f32(x: &[f32], out: &mut [f32]) {
            f32::vapply($f, x, out)
        }
        #[doc = $doc]
        pub fn $f64(x: &[f64], out: &mut [f64]) {
            f64::vapply($f, x, out)
        }
    )*};
}

named! {
    exp_f32, exp_f64: VFunc::Exp, "`out[i] = exp(x[i])`.";
    ln_f32, ln_f64: VFunc::Ln, "`out[i] = ln(x[i])`.";
    log1p_f32, log1p_f64: VFunc::Log1p, "`out[i] = ln(1 + x[i])`.";
    expm1_f32, expm1_f64: VFunc::Expm1, "`out[i] = exp(x[i]) − 1`.";
    tanh_f32, tanh_f64: VFunc::Tanh, "`out[i] = tanh(x[i])`.";
    sigmoid_f32, sigmoid_f64: VFunc::Sigmoid, "`out[i] = 1/(1 + exp(−x[i]))`, stable for both signs.";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels() -> Vec<SimdLevel> {
        let mut v = vec![SimdLevel::Scalar];
        for l in [SimdLevel::Avx2Fma, SimdLevel::Avx512, SimdLevel::Neon] {
            if simd::supports(l) {
                v.push(l);
            }
        }
        v
    }

    #[test]
    fn specials_all_levels() {
        let inf = f32::INFINITY;
        let x = [0.0f32, -0.0, 1.0, -1.0, inf, -inf, f32::NAN, 1e-45, -1e-45, 100.0, -100.0, 89.0, -110.0];
        for &l in &levels() {
            let mut y = [0.0f32; 13];
            apply_f32_with(l, VFunc::Exp, &x, &mut y);
            assert_eq!(y[0], 1.0);
            assert_eq!(y[4], inf);
            assert_eq!(y[5], 0.0);
            assert!(y[6].is_nan());
            assert_eq!(y[9], inf);
            assert_eq!(y[12], 0.0);
            apply_f32_with(l, VFunc::Ln, &x, &mut y);
            assert_eq!(y[0], -inf);
            assert_eq!(y[2], 0.0);
            assert!(y[3].is_nan());
            assert_eq!(y[4], inf);
            assert!(y[6].is_nan());
            assert!((y[7] as f64 - (x[7] as f64).ln()).abs() < 1e-4);
            apply_f32_with(l, VFunc::Tanh, &x, &mut y);
            assert_eq!(y[4], 1.0);
            assert_eq!(y[5], -1.0);
            assert_eq!(y[9], 1.0);
            assert_eq!(y[10], -1.0);
            assert!(y[1] == 0.0 && y[1].is_sign_negative());
            apply_f32_with(l, VFunc::Sigmoid, &x, &mut y);
            assert_eq!(y[0], 0.5);
            assert_eq!(y[4], 1.0);
            assert_eq!(y[5], 0.0);
            assert_eq!(y[9], 1.0);
            assert!(y[10] > 0.0 && y[10] < 1e-43);
            apply_f32_with(l, VFunc::Expm1, &x, &mut y);
            assert_eq!(y[4], inf);
            assert_eq!(y[5], -1.0);
            assert_eq!(y[7], 1e-45);
            apply_f32_with(l, VFunc::Log1p, &x, &mut y);
            assert_eq!(y[3], -inf);
            assert_eq!(y[7], 1e-45);
            assert!(y[10].is_nan());
        }
    }

    #[test]
    fn inplace_and_tails() {
        for &l in &levels() {
            for n in 0..40 {
                let x: Vec<f64> = (0..n).map(|i| i as f64 * 0.37 - 3.0).collect();
                let mut a = x.clone();
                f64::vapply_inplace_with(l, VFunc::Exp, &mut a);
                let mut b = vec![0.0; n];
                apply_f64_with(l, VFunc::Exp, &x, &mut b);
                assert_eq!(a, b);
                for (xi, bi) in x.iter().zip(&b) {
                    assert!((xi.exp() - bi).abs() <= 4.0 * f64::EPSILON * bi.abs());
                }
            }
        }
    }
}