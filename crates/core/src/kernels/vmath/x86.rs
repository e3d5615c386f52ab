//! x86-64 implementations of the [`Vf`] vector abstraction: AVX2+FMA (`F32x8`, `F64x4`) and
//! AVX-512F (`F32x16`, `F64x8`), and the `#[target_feature]` entry points that instantiate
//! the algorithms for them.

use super::algo::{dispatch, entry_points, vf_impl, Vf, K32, K64};
use super::VFunc;
use std::arch::x86_64::*;

const RN: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// The x86 part of a [`Vf`] implementation (see [`vf_impl!`]): `fma`, `round`
/// (`$round::<RN>`), the comparisons (`$cmp::<predicate>` into the mask type `$M`) and what
/// differs between the two families:
///
/// * `[avx2 $andnot $and $or $blendv]`: `abs`/`copysign` clear or copy the sign bit with
///   float bitwise ops; masks are vectors and `select` is `$blendv(if_false, if_true, mask)`;
/// * `[avx512 $abs $blend $andnot $sign]`: `abs` is one intrinsic, `copysign` uses integer
///   bitwise ops with the sign-bit constant `$sign`; masks are bit masks and `select` is
///   `$blend(mask, if_false, if_true)`.
macro_rules! x86_ops {
    ($V:ident, $M:ty, $splat:ident, $bits:ident, $float:ident, $iand:ident, $ior:ident, $isplat:ident;
     $fma:ident $round:ident $cmp:ident, $family:tt) => {
        #[inline(always)]
        unsafe fn fma(self, b: Self, c: Self) -> Self {
            $V($fma(self.0, b.0, c.0))
        }
        #[inline(always)]
        unsafe fn round(self) -> Self {
            $V($round::<RN>(self.0))
        }
        x86_ops!(@compare $M, $cmp: lt _CMP_LT_OQ, gt _CMP_GT_OQ, ge _CMP_GE_OQ, eq _CMP_EQ_OQ);
        #[inline(always)]
        unsafe fn is_nan(self) -> $M {
            $cmp::<_CMP_UNORD_Q>(self.0, self.0)
        }
        x86_ops!(@family $V, $M, $splat, $bits, $float, $iand, $ior, $isplat, $family);
    };
    (@compare $M:ty, $cmp:ident: $($name:ident $pred:ident),*) => {$(
        #[inline(always)]
        unsafe fn $name(self, b: Self) -> $M {
            $cmp::<$pred>(self.0, b.0)
        }
    )*};
    (@family $V:ident, $M:ty, $splat:ident, $bits:ident, $float:ident, $iand:ident, $ior:ident, $isplat:ident,
     [avx2 $andnot:ident $and:ident $or:ident $blendv:ident]) => {
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            $V($andnot($splat(-0.0), self.0))
        }
        #[inline(always)]
        unsafe fn copysign(self, s: Self) -> Self {
            let sign = $splat(-0.0);
            $V($or($andnot(sign, self.0), $and(sign, s.0)))
        }
        #[inline(always)]
        unsafe fn select(m: $M, a: Self, b: Self) -> Self {
            $V($blendv(b.0, a.0, m))
        }
    };
    (@family $V:ident, $M:ty, $splat:ident, $bits:ident, $float:ident, $iand:ident, $ior:ident, $isplat:ident,
     [avx512 $abs:ident $blend:ident $iandnot:ident $sign:expr]) => {
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            $V($abs(self.0))
        }
        #[inline(always)]
        unsafe fn copysign(self, s: Self) -> Self {
            let sign = $isplat($sign);
            let m = $iandnot(sign, $bits(self.0));
            let sg = $iand(sign, $bits(s.0));
            $V($float($ior(m, sg)))
        }
        #[inline(always)]
        unsafe fn select(m: $M, a: Self, b: Self) -> Self {
            $V($blend(m, b.0, a.0))
        }
    };
}

vf_impl!(F32x8(__m256): 8 x f32, __m256;
    _mm256_set1_ps _mm256_loadu_ps _mm256_storeu_ps _mm256_add_ps _mm256_sub_ps _mm256_mul_ps _mm256_div_ps _mm256_min_ps _mm256_max_ps;
    _mm256_castps_si256 _mm256_castsi256_ps _mm256_slli_epi32 _mm256_srli_epi32 _mm256_and_si256 _mm256_or_si256 _mm256_set1_epi32;
    23, 8_388_735.0, 127.0, 0x007f_ffff, 0x3f80_0000, [convert _mm256_cvtepi32_ps];
    x86_ops!(_mm256_fmadd_ps _mm256_round_ps _mm256_cmp_ps, [avx2 _mm256_andnot_ps _mm256_and_ps _mm256_or_ps _mm256_blendv_ps]));

// f64 exponents need the magic-number route: AVX2 has no int64 → double conversion.
vf_impl!(F64x4(__m256d): 4 x f64, __m256d;
    _mm256_set1_pd _mm256_loadu_pd _mm256_storeu_pd _mm256_add_pd _mm256_sub_pd _mm256_mul_pd _mm256_div_pd _mm256_min_pd _mm256_max_pd;
    _mm256_castpd_si256 _mm256_castsi256_pd _mm256_slli_epi64 _mm256_srli_epi64 _mm256_and_si256 _mm256_or_si256 _mm256_set1_epi64x;
    52, 4_503_599_627_371_519.0, 1023.0, 0x000f_ffff_ffff_ffff, 0x3ff0_0000_0000_0000, [magic 0x4330_0000_0000_0000];
    x86_ops!(_mm256_fmadd_pd _mm256_round_pd _mm256_cmp_pd, [avx2 _mm256_andnot_pd _mm256_and_pd _mm256_or_pd _mm256_blendv_pd]));

vf_impl!(F32x16(__m512): 16 x f32, __mmask16;
    _mm512_set1_ps _mm512_loadu_ps _mm512_storeu_ps _mm512_add_ps _mm512_sub_ps _mm512_mul_ps _mm512_div_ps _mm512_min_ps _mm512_max_ps;
    _mm512_castps_si512 _mm512_castsi512_ps _mm512_slli_epi32 _mm512_srli_epi32 _mm512_and_si512 _mm512_or_si512 _mm512_set1_epi32;
    23, 8_388_735.0, 127.0, 0x007f_ffff, 0x3f80_0000, [convert _mm512_cvtepi32_ps];
    x86_ops!(_mm512_fmadd_ps _mm512_roundscale_ps _mm512_cmp_ps_mask, [avx512 _mm512_abs_ps _mm512_mask_blend_ps _mm512_andnot_si512 i32::MIN]));

// int64 → double conversion is AVX-512DQ, not F: the magic-number route again.
vf_impl!(F64x8(__m512d): 8 x f64, __mmask8;
    _mm512_set1_pd _mm512_loadu_pd _mm512_storeu_pd _mm512_add_pd _mm512_sub_pd _mm512_mul_pd _mm512_div_pd _mm512_min_pd _mm512_max_pd;
    _mm512_castpd_si512 _mm512_castsi512_pd _mm512_slli_epi64 _mm512_srli_epi64 _mm512_and_si512 _mm512_or_si512 _mm512_set1_epi64;
    52, 4_503_599_627_371_519.0, 1023.0, 0x000f_ffff_ffff_ffff, 0x3ff0_0000_0000_0000, [magic 0x4330_0000_0000_0000];
    x86_ops!(_mm512_fmadd_pd _mm512_roundscale_pd _mm512_cmp_pd_mask, [avx512 _mm512_abs_pd _mm512_mask_blend_pd _mm512_andnot_si512 i64::MIN]));

entry_points! {
    "avx2,fma": f32_avx2(f32) => F32x8, K32;
    "avx2,fma": f64_avx2(f64) => F64x4, K64;
    "avx512f,avx2,fma": f32_avx512(f32) => F32x16, K32;
    "avx512f,avx2,fma": f64_avx512(f64) => F64x8, K64;
}
