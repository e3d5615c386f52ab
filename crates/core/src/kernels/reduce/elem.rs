//! What the reduction (and softmax) kernels need from an element type ([`RElem`]): the
//! vectorized `exp`, and slice sums and NaN-propagating extremes with explicit AVX2 loops
//! for f32/f64 on x86-64.

use super::fold::fold_lanes;
use crate::kernels::arith::{vmax, vmin, Arith};
use crate::kernels::vmath::{VFunc, VMath};

/// What the reduction kernels need from an element type. Integer `exp_inplace`/`ln_`/`div_count` are
/// never called (Mean and LogSumExp reject ints before dispatch). Shared with the softmax
/// kernels.
pub(crate) trait RElem: Arith {
    /// `x[i] = exp(x[i])`, vectorized (see [`vmath`](crate::kernels::vmath)).
    fn exp_inplace(x: &mut [Self]);
    fn ln_(self) -> Self;
    fn div_count(self, n: usize) -> Self;
    fn finite_or_zero(self) -> Self;
    fn nan() -> Self;
    fn neg_inf() -> Self;
    /// Σ of a (leaf-sized) slice: explicit AVX2 for floats on x86-64 (32 f32 / 16 f64
    /// independent lanes), lane folds elsewhere.
    fn leaf_sum(x: &[Self]) -> Self;
    /// NaN-propagating max of a non-empty slice.
    fn slice_max(x: &[Self]) -> Self;
    /// NaN-propagating min of a non-empty slice.
    fn slice_min(x: &[Self]) -> Self;
}

/// True when the explicit AVX2 reductions may run.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn avx2_ok() -> bool {
    use crate::kernels::simd::{level, SimdLevel};
    matches!(level(), SimdLevel::Avx2Fma | SimdLevel::Avx512)
}

/// Explicit AVX2 sum / max / min of f32 and f64 slices. LLVM's SLP vectorizer does not
/// reliably turn the generic lane folds into full-width vectors for floats (strict FP
/// semantics forbid it from reassociating, and it gave only 128-bit or scalar code), so the
/// hottest folds are written out. 256-bit vectors are used under AVX-512 too: these loops are
/// memory-bound long before 512-bit arithmetic would matter.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    macro_rules! simd_folds {
        ($t:ty, $w:expr, $sum:ident, $max:ident, $min:ident,
         $zero:ident, $set1:ident, $load:ident, $store:ident, $add:ident, $vmax:ident, $vmin:ident,
         $cmp:ident, $or:ident, $mask:ident) => {
            /// Σ x with 4×W independent lanes, lanes combined pairwise.
            ///
            /// # Safety
            /// The CPU must support AVX2 and FMA.
            #[target_feature(enable = "avx2,fma")]
            pub(super) unsafe fn $sum(x: &[$t]) -> $t {
                let (n, p) = (x.len(), x.as_ptr());
                let (mut a0, mut a1, mut a2, mut a3) = ($zero(), $zero(), $zero(), $zero());
                let mut i = 0;
                while i + 4 * $w <= n {
                    a0 = $add(a0, $load(p.add(i)));
                    a1 = $add(a1, $load(p.add(i + $w)));
                    a2 = $add(a2, $load(p.add(i + 2 * $w)));
                    a3 = $add(a3, $load(p.add(i + 3 * $w)));
                    i += 4 * $w;
                }
                while i + $w <= n {
                    a0 = $add(a0, $load(p.add(i)));
                    i += $w;
                }
                let v = $add($add(a0, a1), $add(a2, a3));
                let mut lanes = [0.0 as $t; $w];
                $store(lanes.as_mut_ptr(), v);
                let mut w = $w;
                while w > 1 {
                    w /= 2;
                    for j in 0..w {
                        lanes[j] += lanes[j + w];
                    }
                }
                let mut s = lanes[0];
                while i < n {
                    s += *p.add(i);
                    i += 1;
                }
                s
            }

            simd_folds!(@ext $t, $w, $max, $vmax, >, $zero, $set1, $load, $store, $cmp, $or, $mask);
            simd_folds!(@ext $t, $w, $min, $vmin, <, $zero, $set1, $load, $store, $cmp, $or, $mask);
        };
        (@ext $t:ty, $w:expr, $name:ident, $op:ident, $cmpop:tt,
         $zero:ident, $set1:ident, $load:ident, $store:ident, $cmp:ident, $or:ident, $mask:ident) => {
            /// NaN-propagating extreme of a non-empty slice (NaNs tracked in a separate mask,
            /// since max/min instructions drop them).
            ///
            /// # Safety
            /// The CPU must support AVX2 and FMA; `x` must not be empty.
            #[target_feature(enable = "avx2,fma")]
            pub(super) unsafe fn $name(x: &[$t]) -> $t {
                let (n, p) = (x.len(), x.as_ptr());
                let f = $set1(*p);
                let (mut a0, mut a1, mut a2, mut a3) = (f, f, f, f);
                let mut nan = $zero();
                let mut i = 0;
                while i + 4 * $w <= n {
                    let (v0, v1, v2, v3) = ($load(p.add(i)), $load(p.add(i + $w)), $load(p.add(i + 2 * $w)), $load(p.add(i + 3 * $w)));
                    a0 = $op(a0, v0);
                    a1 = $op(a1, v1);
                    a2 = $op(a2, v2);
                    a3 = $op(a3, v3);
                    let u = $or($or($cmp::<_CMP_UNORD_Q>(v0, v1), $cmp::<_CMP_UNORD_Q>(v2, v3)), nan);
                    nan = u;
                    i += 4 * $w;
                }
                while i + $w <= n {
                    let v = $load(p.add(i));
                    a0 = $op(a0, v);
                    nan = $or(nan, $cmp::<_CMP_UNORD_Q>(v, v));
                    i += $w;
                }
                if $mask(nan) != 0 {
                    return <$t>::NAN;
                }
                let v = $op($op(a0, a1), $op(a2, a3));
                let mut lanes = [0.0 as $t; $w];
                $store(lanes.as_mut_ptr(), v);
                let mut m = lanes[0];
                for &l in &lanes[1..] {
                    if l $cmpop m {
                        m = l;
                    }
                }
                while i < n {
                    let v = *p.add(i);
                    if v.is_nan() {
                        return v;
                    }
                    if v $cmpop m {
                        m = v;
                    }
                    i += 1;
                }
                m
            }
        };
    }

    simd_folds!(
        f32,
        8,
        sum_f32,
        max_f32,
        min_f32,
        _mm256_setzero_ps,
        _mm256_set1_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_add_ps,
        _mm256_max_ps,
        _mm256_min_ps,
        _mm256_cmp_ps,
        _mm256_or_ps,
        _mm256_movemask_ps
    );
    simd_folds!(
        f64,
        4,
        sum_f64,
        max_f64,
        min_f64,
        _mm256_setzero_pd,
        _mm256_set1_pd,
        _mm256_loadu_pd,
        _mm256_storeu_pd,
        _mm256_add_pd,
        _mm256_max_pd,
        _mm256_min_pd,
        _mm256_cmp_pd,
        _mm256_or_pd,
        _mm256_movemask_pd
    );
}

macro_rules! relem_float {
    ($t:ty, $sum:ident, $max:ident, $min:ident) => {
        impl RElem for $t {
            #[inline(always)]
            fn exp_inplace(x: &mut [Self]) {
                <$t as VMath>::vapply_inplace(VFunc::Exp, x)
            }
            #[inline(always)]
            fn ln_(self) -> Self {
                self.ln()
            }
            #[inline(always)]
            fn div_count(self, n: usize) -> Self {
                self / (n as $t)
            }
            #[inline(always)]
            fn finite_or_zero(self) -> Self {
                if self.is_finite() {
                    self
                } else {
                    0.0
                }
            }
            #[inline(always)]
            fn nan() -> Self {
                <$t>::NAN
            }
            #[inline(always)]
            fn neg_inf() -> Self {
                <$t>::NEG_INFINITY
            }
            #[inline(always)]
            fn leaf_sum(x: &[Self]) -> Self {
                #[cfg(target_arch = "x86_64")]
                if avx2_ok() {
                    // SAFETY: avx2_ok() checked AVX2+FMA at run time.
                    return unsafe { x86::$sum(x) };
                }
                fold_lanes(x, 0.0, |a, v| a + v, |a, v| a + v)
            }
            relem_float!(@extreme slice_max, $max, vmax, NEG_INFINITY);
            relem_float!(@extreme slice_min, $min, vmin, INFINITY);
        }
    };
    (@extreme $name:ident, $simd:ident, $fold:ident, $empty:ident) => {
        #[inline(always)]
        fn $name(x: &[Self]) -> Self {
            #[cfg(target_arch = "x86_64")]
            if avx2_ok() && !x.is_empty() {
                // SAFETY: AVX2+FMA checked at run time; x is non-empty.
                return unsafe { x86::$simd(x) };
            }
            match x.first() {
                Some(&f) => fold_lanes(x, f, $fold, $fold),
                None => Self::$empty,
            }
        }
    };
}
relem_float!(f32, sum_f32, max_f32, min_f32);
relem_float!(f64, sum_f64, max_f64, min_f64);

macro_rules! relem_int {
    ($t:ty) => {
        impl RElem for $t {
            #[inline(always)]
            fn exp_inplace(_x: &mut [Self]) {}
            #[inline(always)]
            fn ln_(self) -> Self {
                self
            }
            #[inline(always)]
            fn div_count(self, n: usize) -> Self {
                if n == 0 {
                    0
                } else {
                    self / (n as $t)
                }
            }
            #[inline(always)]
            fn finite_or_zero(self) -> Self {
                self
            }
            #[inline(always)]
            fn nan() -> Self {
                0
            }
            #[inline(always)]
            fn neg_inf() -> Self {
                <$t>::MIN
            }
            #[inline(always)]
            fn leaf_sum(x: &[Self]) -> Self {
                // integer adds are associative: LLVM's loop vectorizer handles this fold
                x.iter().fold(0, |a, &v| a.wrapping_add(v))
            }
            #[inline(always)]
            fn slice_max(x: &[Self]) -> Self {
                x.iter().copied().max().unwrap_or(<$t>::MIN)
            }
            #[inline(always)]
            fn slice_min(x: &[Self]) -> Self {
                x.iter().copied().min().unwrap_or(<$t>::MAX)
            }
        }
    };
}
relem_int!(i32);
relem_int!(i64);
