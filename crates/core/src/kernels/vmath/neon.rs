//! aarch64 implementations of the [`Vf`] vector abstraction with NEON (`F32x4`, `F64x2`), and
//! the `#[target_feature]` entry points that instantiate the algorithms for them.

use super::algo::{dispatch, entry_points, vf_impl, Vf, K32, K64};
use super::VFunc;
use std::arch::aarch64::*;

/// Lane-wise not of a 64-bit mask (NEON has `vmvnq` only up to 32-bit lanes).
#[inline(always)]
unsafe fn not_u64(m: uint64x2_t) -> uint64x2_t {
    veorq_u64(m, vdupq_n_u64(u64::MAX))
}

/// The NEON part of a [`Vf`] implementation (see [`vf_impl!`]): `fma` (`$fma(c, a, b)`),
/// `abs`, `copysign` (a bit select with the sign-bit constant `$sign`), `round`, `select`
/// (`$bsl`), the comparisons `$cmp` into the unsigned mask type `$M`, and `is_nan` (`$not`
/// of `x == x`).
macro_rules! neon_ops {
    ($V:ident, $M:ty, $splat:ident, $bits:ident, $float:ident, $iand:ident, $ior:ident, $isplat:ident;
     $fma:ident $abs:ident $round:ident $bsl:ident $sign:literal $not:ident, $($cmp:ident $cmpf:ident),*) => {
        #[inline(always)]
        unsafe fn fma(self, b: Self, c: Self) -> Self {
            $V($fma(c.0, self.0, b.0))
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            $V($abs(self.0))
        }
        #[inline(always)]
        unsafe fn copysign(self, s: Self) -> Self {
            $V($bsl($isplat($sign), s.0, self.0))
        }
        #[inline(always)]
        unsafe fn round(self) -> Self {
            $V($round(self.0))
        }
        #[inline(always)]
        unsafe fn select(m: $M, a: Self, b: Self) -> Self {
            $V($bsl(m, a.0, b.0))
        }
        $(
            #[inline(always)]
            unsafe fn $cmp(self, b: Self) -> $M {
                $cmpf(self.0, b.0)
            }
        )*
        #[inline(always)]
        unsafe fn is_nan(self) -> $M {
            $not(self.eq(self))
        }
    };
}

vf_impl!(F32x4(float32x4_t): 4 x f32, uint32x4_t;
    vdupq_n_f32 vld1q_f32 vst1q_f32 vaddq_f32 vsubq_f32 vmulq_f32 vdivq_f32 vminq_f32 vmaxq_f32;
    vreinterpretq_u32_f32 vreinterpretq_f32_u32 vshlq_n_u32 vshrq_n_u32 vandq_u32 vorrq_u32 vdupq_n_u32;
    23, 8_388_735.0, 127.0, 0x007f_ffff, 0x3f80_0000, [convert vcvtq_f32_u32];
    neon_ops!(vfmaq_f32 vabsq_f32 vrndnq_f32 vbslq_f32 0x8000_0000 vmvnq_u32, lt vcltq_f32, gt vcgtq_f32, ge vcgeq_f32, eq vceqq_f32));

vf_impl!(F64x2(float64x2_t): 2 x f64, uint64x2_t;
    vdupq_n_f64 vld1q_f64 vst1q_f64 vaddq_f64 vsubq_f64 vmulq_f64 vdivq_f64 vminq_f64 vmaxq_f64;
    vreinterpretq_u64_f64 vreinterpretq_f64_u64 vshlq_n_u64 vshrq_n_u64 vandq_u64 vorrq_u64 vdupq_n_u64;
    52, 4_503_599_627_371_519.0, 1023.0, 0x000f_ffff_ffff_ffff, 0x3ff0_0000_0000_0000, [convert vcvtq_f64_u64];
    neon_ops!(vfmaq_f64 vabsq_f64 vrndnq_f64 vbslq_f64 0x8000_0000_0000_0000 not_u64, lt vcltq_f64, gt vcgtq_f64, ge vcgeq_f64, eq vceqq_f64));

entry_points! {
    "neon": f32_neon(f32) => F32x4, K32;
    "neon": f64_neon(f64) => F64x2, K64;
}
