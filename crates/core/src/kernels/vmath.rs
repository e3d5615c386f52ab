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

// ---------------------------------------------------------------------------------------
// The SIMD vector abstraction. All methods are `#[inline(always)]` and get compiled with the
// features of the `#[target_feature]` function they are inlined into.
// ---------------------------------------------------------------------------------------

#[allow(dead_code)]
trait Vf: Copy {
    type E: Copy + Default;
    type M: Copy;
    const LANES: usize;
    unsafe fn splat(v: f64) -> Self;
    unsafe fn load(p: *const Self::E) -> Self;
    unsafe fn store(self, p: *mut Self::E);
    unsafe fn add(self, b: Self) -> Self;
    unsafe fn sub(self, b: Self) -> Self;
    unsafe fn mul(self, b: Self) -> Self;
    unsafe fn div(self, b: Self) -> Self;
    /// self·b + c, one rounding.
    unsafe fn fma(self, b: Self, c: Self) -> Self;
    /// Unspecified when an operand is NaN.
    unsafe fn min(self, b: Self) -> Self;
    /// Unspecified when an operand is NaN.
    unsafe fn max(self, b: Self) -> Self;
    unsafe fn abs(self) -> Self;
    /// |self| with the sign of `s`.
    unsafe fn copysign(self, s: Self) -> Self;
    /// Round to nearest, ties to even.
    unsafe fn round(self) -> Self;
    unsafe fn lt(self, b: Self) -> Self::M;
    unsafe fn gt(self, b: Self) -> Self::M;
    unsafe fn ge(self, b: Self) -> Self::M;
    unsafe fn eq(self, b: Self) -> Self::M;
    unsafe fn is_nan(self) -> Self::M;
    /// m ? a : b per lane.
    unsafe fn select(m: Self::M, a: Self, b: Self) -> Self;
    /// 2ⁿ for integral `n` in the normal exponent range.
    unsafe fn pow2n(n: Self) -> Self;
    /// For positive normal x: (mantissa in [1, 2), unbiased exponent).
    unsafe fn split_exp(self) -> (Self, Self);
}

#[inline(always)]
unsafe fn c<V: Vf>(v: f64) -> V {
    V::splat(v)
}

/// Horner evaluation with coefficients from highest degree to lowest.
#[inline(always)]
unsafe fn horner<V: Vf>(x: V, coefs: &[f64]) -> V {
    let mut p = c::<V>(coefs[0]);
    for &k in &coefs[1..] {
        p = p.fma(x, c::<V>(k));
    }
    p
}

/// Constants that differ between f32 and f64 versions of the same algorithm.
struct Consts {
    exp_lo: f64,
    exp_hi: f64,
    ln2_hi: f64,
    ln2_lo: f64,
    /// exp(r) Taylor coefficients, highest degree first (ending with 1, 1).
    exp_poly: &'static [f64],
    /// (expm1(r) − r)/r² Taylor coefficients, highest degree first (ending with 1/2).
    expm1_poly: &'static [f64],
    expm1_lo: f64,
    /// log: fdlibm's Lg coefficients, highest first: R(z) = z·poly(z).
    log_poly: &'static [f64],
    log_ln2_hi: f64,
    log_ln2_lo: f64,
    min_positive: f64,
    /// 2^(mantissa bits) and the exponent shift to undo it.
    sub_scale: f64,
    sub_shift: f64,
}

const INV_FACT: [f64; 16] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362880.0,
    1.0 / 3628800.0,
    1.0 / 39916800.0,
    1.0 / 479001600.0,
    1.0 / 6227020800.0,
    1.0 / 87178291200.0,
    1.0 / 1307674368000.0,
];

const EXP_POLY_F32: [f64; 8] = [
    INV_FACT[7], INV_FACT[6], INV_FACT[5], INV_FACT[4], INV_FACT[3], INV_FACT[2], INV_FACT[1], INV_FACT[0],
];
const EXP_POLY_F64: [f64; 14] = [
    INV_FACT[13], INV_FACT[12], INV_FACT[11], INV_FACT[10], INV_FACT[9], INV_FACT[8], INV_FACT[7],
    INV_FACT[6], INV_FACT[5], INV_FACT[4], INV_FACT[3], INV_FACT[2], INV_FACT[1], INV_FACT[0],
];
const EXPM1_POLY_F32: [f64; 7] =
    [INV_FACT[8], INV_FACT[7], INV_FACT[6], INV_FACT[5], INV_FACT[4], INV_FACT[3], INV_FACT[2]];
const EXPM1_POLY_F64: [f64; 12] = [
    INV_FACT[13], INV_FACT[12], INV_FACT[11], INV_FACT[10], INV_FACT[9], INV_FACT[8], INV_FACT[7],
    INV_FACT[6], INV_FACT[5], INV_FACT[4], INV_FACT[3], INV_FACT[2],
];
// FreeBSD e_logf.c.
#[allow(clippy::excessive_precision)]
const LOG_POLY_F32: [f64; 4] = [
    0.242_790_788_412_094_116_21, // 0xf89e26.0p-26
    0.284_987_866_878_509_521_48, // 0x91e9ee.0p-25
    0.400_009_721_517_562_866_21, // 0xccce13.0p-25
    0.666_666_626_930_236_816_41, // 0xaaaaaa.0p-24
];
// fdlibm e_log.c.
#[allow(clippy::excessive_precision)]
const LOG_POLY_F64: [f64; 7] = [
    1.479_819_860_511_658_591e-01,
    1.531_383_769_920_937_332e-01,
    1.818_357_216_161_805_012e-01,
    2.222_219_843_214_978_396e-01,
    2.857_142_874_366_239_149e-01,
    3.999_999_999_940_941_908e-01,
    6.666_666_666_666_735_130e-01,
];

#[allow(clippy::excessive_precision)]
const K32: Consts = Consts {
    exp_lo: -104.0,
    exp_hi: 88.8,
    ln2_hi: 0.693_359_375,
    ln2_lo: -2.121_944_400_546_905_827_68e-4,
    exp_poly: &EXP_POLY_F32,
    expm1_poly: &EXPM1_POLY_F32,
    expm1_lo: -30.0,
    log_poly: &LOG_POLY_F32,
    log_ln2_hi: 6.931_381_225_6e-01, // 0x3f317180
    log_ln2_lo: 9.058_000_614_5e-06, // 0x3717f7d1
    min_positive: f32::MIN_POSITIVE as f64,
    sub_scale: 8_388_608.0, // 2^23
    sub_shift: -23.0,
};

#[allow(clippy::excessive_precision)]
const K64: Consts = Consts {
    exp_lo: -746.0,
    exp_hi: 710.0,
    ln2_hi: 6.931_457_519_531_25e-1,
    ln2_lo: 1.428_606_820_309_417_232_12e-6,
    exp_poly: &EXP_POLY_F64,
    expm1_poly: &EXPM1_POLY_F64,
    expm1_lo: -60.0,
    log_poly: &LOG_POLY_F64,
    log_ln2_hi: 6.931_471_803_691_238_164_90e-01,
    log_ln2_lo: 1.908_214_929_270_587_700_02e-10,
    min_positive: f64::MIN_POSITIVE,
    sub_scale: 4_503_599_627_370_496.0, // 2^52
    sub_shift: -52.0,
};

#[inline(always)]
unsafe fn nan_fix<V: Vf>(x: V, r: V) -> V {
    V::select(x.is_nan(), x, r)
}

/// exp without the NaN fix-up (NaN lanes hold garbage).
#[inline(always)]
unsafe fn exp_core<V: Vf>(x: V, k: &Consts) -> V {
    let xc = x.max(c(k.exp_lo)).min(c(k.exp_hi));
    let n = xc.mul(c(std::f64::consts::LOG2_E)).round();
    let r = n.fma(c(-k.ln2_hi), xc);
    let r = n.fma(c(-k.ln2_lo), r);
    let p = horner(r, k.exp_poly);
    let n1 = n.mul(c(0.5)).round();
    let n2 = n.sub(n1);
    p.mul(V::pow2n(n1)).mul(V::pow2n(n2))
}

#[inline(always)]
unsafe fn exp_body<V: Vf>(x: V, k: &Consts) -> V {
    nan_fix(x, exp_core(x, k))
}

/// expm1 without the NaN fix-up; `hi` is the upper clamp (k.exp_hi).
#[inline(always)]
unsafe fn expm1_core<V: Vf>(x: V, k: &Consts) -> V {
    let xc = x.max(c(k.expm1_lo)).min(c(k.exp_hi));
    let n = xc.mul(c(std::f64::consts::LOG2_E)).round();
    let r = n.fma(c(-k.ln2_hi), xc);
    let r = n.fma(c(-k.ln2_lo), r);
    let q = horner(r, k.expm1_poly);
    let em = r.mul(r).fma(q, r);
    let p = V::pow2n(n.sub(c(1.0)));
    let res = p.fma(em, p.sub(c(0.5))).mul(c(2.0));
    V::select(n.eq(c(0.0)), em, res)
}

#[inline(always)]
unsafe fn expm1_body<V: Vf>(x: V, k: &Consts) -> V {
    nan_fix(x, expm1_core(x, k))
}

/// The shared tail of ln/log1p: `k·ln2 + ln(m)` for `m = 1 + f ∈ [√½, √2)`, plus `corr`.
#[inline(always)]
unsafe fn log_reduced<V: Vf>(m: V, e: V, corr: V, k: &Consts) -> V {
    let big = m.gt(c(std::f64::consts::SQRT_2));
    let m = V::select(big, m.mul(c(0.5)), m);
    let e = V::select(big, e.add(c(1.0)), e);
    let f = m.sub(c(1.0));
    let s = f.div(f.add(c(2.0)));
    let z = s.mul(s);
    let r = horner(z, k.log_poly).mul(z);
    let hfsq = c::<V>(0.5).mul(f).mul(f);
    let t = s.fma(hfsq.add(r), e.fma(c(k.log_ln2_lo), corr));
    e.fma(c(k.log_ln2_hi), f.sub(hfsq.sub(t)))
}

#[inline(always)]
unsafe fn ln_body<V: Vf>(x: V, k: &Consts) -> V {
    let zero = c::<V>(0.0);
    let tiny = x.lt(c(k.min_positive));
    let xs = V::select(tiny, x.mul(c(k.sub_scale)), x);
    let (m, e) = xs.split_exp();
    let e = e.add(V::select(tiny, c(k.sub_shift), zero));
    let res = log_reduced(m, e, zero, k);
    let res = V::select(x.eq(zero), c(f64::NEG_INFINITY), res);
    let res = V::select(x.lt(zero), c(f64::NAN), res);
    let res = V::select(x.eq(c(f64::INFINITY)), x, res);
    nan_fix(x, res)
}

#[inline(always)]
unsafe fn log1p_body<V: Vf>(x: V, k: &Consts) -> V {
    let one = c::<V>(1.0);
    let u = one.add(x);
    // Exact rounding error of 1 + x (Knuth's two-sum).
    let bb = u.sub(one);
    let err = one.sub(u.sub(bb)).add(x.sub(bb));
    let (m, e) = u.split_exp();
    let res = log_reduced(m, e, err.div(u), k);
    let res = V::select(x.eq(c(-1.0)), c(f64::NEG_INFINITY), res);
    let res = V::select(x.lt(c(-1.0)), c(f64::NAN), res);
    let res = V::select(x.eq(c(f64::INFINITY)), x, res);
    nan_fix(x, res)
}

#[inline(always)]
unsafe fn tanh_body<V: Vf>(x: V, k: &Consts) -> V {
    let em = expm1_core(x.abs().mul(c(-2.0)), k);
    let t = em.div(em.add(c(2.0)));
    nan_fix(x, t.copysign(x))
}

#[inline(always)]
unsafe fn sigmoid_body<V: Vf>(x: V, k: &Consts) -> V {
    let one = c::<V>(1.0);
    let e = exp_core(c::<V>(0.0).sub(x.abs()), k);
    let num = V::select(x.ge(c(0.0)), one, e);
    nan_fix(x, num.div(one.add(e)))
}

/// One of the vector functions, as a type (closures would not inherit the target features of
/// the function they are created in, and would not be inlined into its loop).
trait Body {
    unsafe fn eval<V: Vf>(x: V, k: &Consts) -> V;
}

macro_rules! bodies {
    ($($name:ident => $f:ident),*) => {$(
        struct $name;
        impl Body for $name {
            #[inline(always)]
            unsafe fn eval<V: Vf>(x: V, k: &Consts) -> V {
                $f(x, k)
            }
        }
    )*};
}
bodies!(ExpB => exp_body, LnB => ln_body, Log1pB => log1p_body, Expm1B => expm1_body, TanhB => tanh_body, SigmoidB => sigmoid_body);

/// Applies `B` over `n` elements; the tail goes through a zero-padded buffer so every
/// element sees the same vector code. `x` and `out` may be the same pointer.
#[inline(always)]
unsafe fn run<V: Vf, B: Body>(x: *const V::E, out: *mut V::E, n: usize, k: &Consts) {
    let l = V::LANES;
    let mut i = 0;
    while i + 2 * l <= n {
        let a = V::load(x.add(i));
        let b = V::load(x.add(i + l));
        B::eval(a, k).store(out.add(i));
        B::eval(b, k).store(out.add(i + l));
        i += 2 * l;
    }
    while i + l <= n {
        B::eval(V::load(x.add(i)), k).store(out.add(i));
        i += l;
    }
    if i < n {
        let rem = n - i;
        let mut buf = [V::E::default(); 16];
        std::ptr::copy_nonoverlapping(x.add(i), buf.as_mut_ptr(), rem);
        B::eval(V::load(buf.as_ptr()), k).store(buf.as_mut_ptr());
        std::ptr::copy_nonoverlapping(buf.as_ptr(), out.add(i), rem);
    }
}

#[inline(always)]
unsafe fn dispatch<V: Vf>(f: VFunc, x: *const V::E, out: *mut V::E, n: usize, k: &Consts) {
    match f {
        VFunc::Exp => run::<V, ExpB>(x, out, n, k),
        VFunc::Ln => run::<V, LnB>(x, out, n, k),
        VFunc::Log1p => run::<V, Log1pB>(x, out, n, k),
        VFunc::Expm1 => run::<V, Expm1B>(x, out, n, k),
        VFunc::Tanh => run::<V, TanhB>(x, out, n, k),
        VFunc::Sigmoid => run::<V, SigmoidB>(x, out, n, k),
    }
}

// ---------------------------------------------------------------------------------------
// x86-64: AVX2+FMA and AVX-512F.
// ---------------------------------------------------------------------------------------

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{dispatch, VFunc, Vf, K32, K64};
    use std::arch::x86_64::*;

    const RN: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

    #[derive(Clone, Copy)]
    pub(super) struct F32x8(__m256);
    #[derive(Clone, Copy)]
    pub(super) struct F64x4(__m256d);
    #[derive(Clone, Copy)]
    pub(super) struct F32x16(__m512);
    #[derive(Clone, Copy)]
    pub(super) struct F64x8(__m512d);

    impl Vf for F32x8 {
        type E = f32;
        type M = __m256;
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn splat(v: f64) -> Self {
            F32x8(_mm256_set1_ps(v as f32))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            F32x8(_mm256_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm256_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            F32x8(_mm256_add_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            F32x8(_mm256_sub_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            F32x8(_mm256_mul_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn div(self, b: Self) -> Self {
            F32x8(_mm256_div_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn fma(self, b: Self, c: Self) -> Self {
            F32x8(_mm256_fmadd_ps(self.0, b.0, c.0))
        }
        #[inline(always)]
        unsafe fn min(self, b: Self) -> Self {
            F32x8(_mm256_min_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn max(self, b: Self) -> Self {
            F32x8(_mm256_max_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            F32x8(_mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0))
        }
        #[inline(always)]
        unsafe fn copysign(self, s: Self) -> Self {
            let sign = _mm256_set1_ps(-0.0);
            F32x8(_mm256_or_ps(_mm256_andnot_ps(sign, self.0), _mm256_and_ps(sign, s.0)))
        }
        #[inline(always)]
        unsafe fn round(self) -> Self {
            F32x8(_mm256_round_ps::<RN>(self.0))
        }
        #[inline(always)]
        unsafe fn lt(self, b: Self) -> __m256 {
            _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn gt(self, b: Self) -> __m256 {
            _mm256_cmp_ps::<_CMP_GT_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn ge(self, b: Self) -> __m256 {
            _mm256_cmp_ps::<_CMP_GE_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn eq(self, b: Self) -> __m256 {
            _mm256_cmp_ps::<_CMP_EQ_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn is_nan(self) -> __m256 {
            _mm256_cmp_ps::<_CMP_UNORD_Q>(self.0, self.0)
        }
        #[inline(always)]
        unsafe fn select(m: __m256, a: Self, b: Self) -> Self {
            F32x8(_mm256_blendv_ps(b.0, a.0, m))
        }
        #[inline(always)]
        unsafe fn pow2n(n: Self) -> Self {
            let t = _mm256_add_ps(n.0, _mm256_set1_ps(8_388_735.0)); // 2^23 + 127
            F32x8(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_castps_si256(t))))
        }
        #[inline(always)]
        unsafe fn split_exp(self) -> (Self, Self) {
            let bits = _mm256_castps_si256(self.0);
            let e = _mm256_cvtepi32_ps(_mm256_srli_epi32::<23>(bits));
            let e = _mm256_sub_ps(e, _mm256_set1_ps(127.0));
            let m = _mm256_or_si256(
                _mm256_and_si256(bits, _mm256_set1_epi32(0x007f_ffff)),
                _mm256_set1_epi32(0x3f80_0000),
            );
            (F32x8(_mm256_castsi256_ps(m)), F32x8(e))
        }
    }

    impl Vf for F64x4 {
        type E = f64;
        type M = __m256d;
        const LANES: usize = 4;
        #[inline(always)]
        unsafe fn splat(v: f64) -> Self {
            F64x4(_mm256_set1_pd(v))
        }
        #[inline(always)]
        unsafe fn load(p: *const f64) -> Self {
            F64x4(_mm256_loadu_pd(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f64) {
            _mm256_storeu_pd(p, self.0)
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            F64x4(_mm256_add_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            F64x4(_mm256_sub_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            F64x4(_mm256_mul_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn div(self, b: Self) -> Self {
            F64x4(_mm256_div_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn fma(self, b: Self, c: Self) -> Self {
            F64x4(_mm256_fmadd_pd(self.0, b.0, c.0))
        }
        #[inline(always)]
        unsafe fn min(self, b: Self) -> Self {
            F64x4(_mm256_min_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn max(self, b: Self) -> Self {
            F64x4(_mm256_max_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            F64x4(_mm256_andnot_pd(_mm256_set1_pd(-0.0), self.0))
        }
        #[inline(always)]
        unsafe fn copysign(self, s: Self) -> Self {
            let sign = _mm256_set1_pd(-0.0);
            F64x4(_mm256_or_pd(_mm256_andnot_pd(sign, self.0), _mm256_and_pd(sign, s.0)))
        }
        #[inline(always)]
        unsafe fn round(self) -> Self {
            F64x4(_mm256_round_pd::<RN>(self.0))
        }
        #[inline(always)]
        unsafe fn lt(self, b: Self) -> __m256d {
            _mm256_cmp_pd::<_CMP_LT_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn gt(self, b: Self) -> __m256d {
            _mm256_cmp_pd::<_CMP_GT_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn ge(self, b: Self) -> __m256d {
            _mm256_cmp_pd::<_CMP_GE_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn eq(self, b: Self) -> __m256d {
            _mm256_cmp_pd::<_CMP_EQ_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn is_nan(self) -> __m256d {
            _mm256_cmp_pd::<_CMP_UNORD_Q>(self.0, self.0)
        }
        #[inline(always)]
        unsafe fn select(m: __m256d, a: Self, b: Self) -> Self {
            F64x4(_mm256_blendv_pd(b.0, a.0, m))
        }
        #[inline(always)]
        unsafe fn pow2n(n: Self) -> Self {
            let t = _mm256_add_pd(n.0, _mm256_set1_pd(4_503_599_627_371_519.0)); // 2^52 + 1023
            F64x4(_mm256_castsi256_pd(_mm256_slli_epi64::<52>(_mm256_castpd_si256(t))))
        }
        #[inline(always)]
        unsafe fn split_exp(self) -> (Self, Self) {
            let bits = _mm256_castpd_si256(self.0);
            let ei = _mm256_or_si256(_mm256_srli_epi64::<52>(bits), _mm256_set1_epi64x(0x4330_0000_0000_0000));
            let e = _mm256_sub_pd(_mm256_castsi256_pd(ei), _mm256_set1_pd(4_503_599_627_371_519.0));
            let m = _mm256_or_si256(
                _mm256_and_si256(bits, _mm256_set1_epi64x(0x000f_ffff_ffff_ffff)),
                _mm256_set1_epi64x(0x3ff0_0000_0000_0000),
            );
            (F64x4(_mm256_castsi256_pd(m)), F64x4(e))
        }
    }

    impl Vf for F32x16 {
        type E = f32;
        type M = __mmask16;
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn splat(v: f64) -> Self {
            F32x16(_mm512_set1_ps(v as f32))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            F32x16(_mm512_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm512_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            F32x16(_mm512_add_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            F32x16(_mm512_sub_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            F32x16(_mm512_mul_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn div(self, b: Self) -> Self {
            F32x16(_mm512_div_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn fma(self, b: Self, c: Self) -> Self {
            F32x16(_mm512_fmadd_ps(self.0, b.0, c.0))
        }
        #[inline(always)]
        unsafe fn min(self, b: Self) -> Self {
            F32x16(_mm512_min_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn max(self, b: Self) -> Self {
            F32x16(_mm512_max_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            F32x16(_mm512_abs_ps(self.0))
        }
        #[inline(always)]
        unsafe fn copysign(self, s: Self) -> Self {
            let sign = _mm512_set1_epi32(i32::MIN);
            let m = _mm512_andnot_si512(sign, _mm512_castps_si512(self.0));
            let sg = _mm512_and_si512(sign, _mm512_castps_si512(s.0));
            F32x16(_mm512_castsi512_ps(_mm512_or_si512(m, sg)))
        }
        #[inline(always)]
        unsafe fn round(self) -> Self {
            F32x16(_mm512_roundscale_ps::<RN>(self.0))
        }
        #[inline(always)]
        unsafe fn lt(self, b: Self) -> __mmask16 {
            _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn gt(self, b: Self) -> __mmask16 {
            _mm512_cmp_ps_mask::<_CMP_GT_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn ge(self, b: Self) -> __mmask16 {
            _mm512_cmp_ps_mask::<_CMP_GE_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn eq(self, b: Self) -> __mmask16 {
            _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn is_nan(self) -> __mmask16 {
            _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(self.0, self.0)
        }
        #[inline(always)]
        unsafe fn select(m: __mmask16, a: Self, b: Self) -> Self {
            F32x16(_mm512_mask_blend_ps(m, b.0, a.0))
        }
        #[inline(always)]
        unsafe fn pow2n(n: Self) -> Self {
            let t = _mm512_add_ps(n.0, _mm512_set1_ps(8_388_735.0));
            F32x16(_mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_castps_si512(t))))
        }
        #[inline(always)]
        unsafe fn split_exp(self) -> (Self, Self) {
            let bits = _mm512_castps_si512(self.0);
            let e = _mm512_cvtepi32_ps(_mm512_srli_epi32::<23>(bits));
            let e = _mm512_sub_ps(e, _mm512_set1_ps(127.0));
            let m = _mm512_or_si512(
                _mm512_and_si512(bits, _mm512_set1_epi32(0x007f_ffff)),
                _mm512_set1_epi32(0x3f80_0000),
            );
            (F32x16(_mm512_castsi512_ps(m)), F32x16(e))
        }
    }

    impl Vf for F64x8 {
        type E = f64;
        type M = __mmask8;
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn splat(v: f64) -> Self {
            F64x8(_mm512_set1_pd(v))
        }
        #[inline(always)]
        unsafe fn load(p: *const f64) -> Self {
            F64x8(_mm512_loadu_pd(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f64) {
            _mm512_storeu_pd(p, self.0)
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            F64x8(_mm512_add_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            F64x8(_mm512_sub_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            F64x8(_mm512_mul_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn div(self, b: Self) -> Self {
            F64x8(_mm512_div_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn fma(self, b: Self, c: Self) -> Self {
            F64x8(_mm512_fmadd_pd(self.0, b.0, c.0))
        }
        #[inline(always)]
        unsafe fn min(self, b: Self) -> Self {
            F64x8(_mm512_min_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn max(self, b: Self) -> Self {
            F64x8(_mm512_max_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            F64x8(_mm512_abs_pd(self.0))
        }
        #[inline(always)]
        unsafe fn copysign(self, s: Self) -> Self {
            let sign = _mm512_set1_epi64(i64::MIN);
            let m = _mm512_andnot_si512(sign, _mm512_castpd_si512(self.0));
            let sg = _mm512_and_si512(sign, _mm512_castpd_si512(s.0));
            F64x8(_mm512_castsi512_pd(_mm512_or_si512(m, sg)))
        }
        #[inline(always)]
        unsafe fn round(self) -> Self {
            F64x8(_mm512_roundscale_pd::<RN>(self.0))
        }
        #[inline(always)]
        unsafe fn lt(self, b: Self) -> __mmask8 {
            _mm512_cmp_pd_mask::<_CMP_LT_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn gt(self, b: Self) -> __mmask8 {
            _mm512_cmp_pd_mask::<_CMP_GT_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn ge(self, b: Self) -> __mmask8 {
            _mm512_cmp_pd_mask::<_CMP_GE_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn eq(self, b: Self) -> __mmask8 {
            _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn is_nan(self) -> __mmask8 {
            _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(self.0, self.0)
        }
        #[inline(always)]
        unsafe fn select(m: __mmask8, a: Self, b: Self) -> Self {
            F64x8(_mm512_mask_blend_pd(m, b.0, a.0))
        }
        #[inline(always)]
        unsafe fn pow2n(n: Self) -> Self {
            let t = _mm512_add_pd(n.0, _mm512_set1_pd(4_503_599_627_371_519.0));
            F64x8(_mm512_castsi512_pd(_mm512_slli_epi64::<52>(_mm512_castpd_si512(t))))
        }
        #[inline(always)]
        unsafe fn split_exp(self) -> (Self, Self) {
            let bits = _mm512_castpd_si512(self.0);
            let ei = _mm512_or_si512(_mm512_srli_epi64::<52>(bits), _mm512_set1_epi64(0x4330_0000_0000_0000));
            let e = _mm512_sub_pd(_mm512_castsi512_pd(ei), _mm512_set1_pd(4_503_599_627_371_519.0));
            let m = _mm512_or_si512(
                _mm512_and_si512(bits, _mm512_set1_epi64(0x000f_ffff_ffff_ffff)),
                _mm512_set1_epi64(0x3ff0_0000_0000_0000),
            );
            (F64x8(_mm512_castsi512_pd(m)), F64x8(e))
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn f32_avx2(f: VFunc, x: *const f32, out: *mut f32, n: usize) {
        dispatch::<F32x8>(f, x, out, n, &K32)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn f64_avx2(f: VFunc, x: *const f64, out: *mut f64, n: usize) {
        dispatch::<F64x4>(f, x, out, n, &K64)
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn f32_avx512(f: VFunc, x: *const f32, out: *mut f32, n: usize) {
        dispatch::<F32x16>(f, x, out, n, &K32)
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn f64_avx512(f: VFunc, x: *const f64, out: *mut f64, n: usize) {
        dispatch::<F64x8>(f, x, out, n, &K64)
    }
}

// ---------------------------------------------------------------------------------------
// aarch64: NEON.
// ---------------------------------------------------------------------------------------

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::{dispatch, VFunc, Vf, K32, K64};
    use std::arch::aarch64::*;

    #[derive(Clone, Copy)]
    pub(super) struct F32x4(float32x4_t);
    #[derive(Clone, Copy)]
    pub(super) struct F64x2(float64x2_t);

    impl Vf for F32x4 {
        type E = f32;
        type M = uint32x4_t;
        const LANES: usize = 4;
        #[inline(always)]
        unsafe fn splat(v: f64) -> Self {
            F32x4(vdupq_n_f32(v as f32))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            F32x4(vld1q_f32(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            vst1q_f32(p, self.0)
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            F32x4(vaddq_f32(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            F32x4(vsubq_f32(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            F32x4(vmulq_f32(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn div(self, b: Self) -> Self {
            F32x4(vdivq_f32(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn fma(self, b: Self, c: Self) -> Self {
            F32x4(vfmaq_f32(c.0, self.0, b.0))
        }
        #[inline(always)]
        unsafe fn min(self, b: Self) -> Self {
            F32x4(vminq_f32(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn max(self, b: Self) -> Self {
            F32x4(vmaxq_f32(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            F32x4(vabsq_f32(self.0))
        }
        #[inline(always)]
        unsafe fn copysign(self, s: Self) -> Self {
            F32x4(vbslq_f32(vdupq_n_u32(0x8000_0000), s.0, self.0))
        }
        #[inline(always)]
        unsafe fn round(self) -> Self {
            F32x4(vrndnq_f32(self.0))
        }
        #[inline(always)]
        unsafe fn lt(self, b: Self) -> uint32x4_t {
            vcltq_f32(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn gt(self, b: Self) -> uint32x4_t {
            vcgtq_f32(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn ge(self, b: Self) -> uint32x4_t {
            vcgeq_f32(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn eq(self, b: Self) -> uint32x4_t {
            vceqq_f32(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn is_nan(self) -> uint32x4_t {
            vmvnq_u32(vceqq_f32(self.0, self.0))
        }
        #[inline(always)]
        unsafe fn select(m: uint32x4_t, a: Self, b: Self) -> Self {
            F32x4(vbslq_f32(m, a.0, b.0))
        }
        #[inline(always)]
        unsafe fn pow2n(n: Self) -> Self {
            let t = vaddq_f32(n.0, vdupq_n_f32(8_388_735.0));
            F32x4(vreinterpretq_f32_u32(vshlq_n_u32::<23>(vreinterpretq_u32_f32(t))))
        }
        #[inline(always)]
        unsafe fn split_exp(self) -> (Self, Self) {
            let bits = vreinterpretq_u32_f32(self.0);
            let e = vsubq_f32(vcvtq_f32_u32(vshrq_n_u32::<23>(bits)), vdupq_n_f32(127.0));
            let m = vorrq_u32(vandq_u32(bits, vdupq_n_u32(0x007f_ffff)), vdupq_n_u32(0x3f80_0000));
            (F32x4(vreinterpretq_f32_u32(m)), F32x4(e))
        }
    }

    impl Vf for F64x2 {
        type E = f64;
        type M = uint64x2_t;
        const LANES: usize = 2;
        #[inline(always)]
        unsafe fn splat(v: f64) -> Self {
            F64x2(vdupq_n_f64(v))
        }
        #[inline(always)]
        unsafe fn load(p: *const f64) -> Self {
            F64x2(vld1q_f64(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f64) {
            vst1q_f64(p, self.0)
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            F64x2(vaddq_f64(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            F64x2(vsubq_f64(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            F64x2(vmulq_f64(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn div(self, b: Self) -> Self {
            F64x2(vdivq_f64(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn fma(self, b: Self, c: Self) -> Self {
            F64x2(vfmaq_f64(c.0, self.0, b.0))
        }
        #[inline(always)]
        unsafe fn min(self, b: Self) -> Self {
            F64x2(vminq_f64(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn max(self, b: Self) -> Self {
            F64x2(vmaxq_f64(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            F64x2(vabsq_f64(self.0))
        }
        #[inline(always)]
        unsafe fn copysign(self, s: Self) -> Self {
            F64x2(vbslq_f64(vdupq_n_u64(0x8000_0000_0000_0000), s.0, self.0))
        }
        #[inline(always)]
        unsafe fn round(self) -> Self {
            F64x2(vrndnq_f64(self.0))
        }
        #[inline(always)]
        unsafe fn lt(self, b: Self) -> uint64x2_t {
            vcltq_f64(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn gt(self, b: Self) -> uint64x2_t {
            vcgtq_f64(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn ge(self, b: Self) -> uint64x2_t {
            vcgeq_f64(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn eq(self, b: Self) -> uint64x2_t {
            vceqq_f64(self.0, b.0)
        }
        #[inline(always)]
        unsafe fn is_nan(self) -> uint64x2_t {
            veorq_u64(vceqq_f64(self.0, self.0), vdupq_n_u64(u64::MAX))
        }
        #[inline(always)]
        unsafe fn select(m: uint64x2_t, a: Self, b: Self) -> Self {
            F64x2(vbslq_f64(m, a.0, b.0))
        }
        #[inline(always)]
        unsafe fn pow2n(n: Self) -> Self {
            let t = vaddq_f64(n.0, vdupq_n_f64(4_503_599_627_371_519.0));
            F64x2(vreinterpretq_f64_u64(vshlq_n_u64::<52>(vreinterpretq_u64_f64(t))))
        }
        #[inline(always)]
        unsafe fn split_exp(self) -> (Self, Self) {
            let bits = vreinterpretq_u64_f64(self.0);
            let e = vsubq_f64(vcvtq_f64_u64(vshrq_n_u64::<52>(bits)), vdupq_n_f64(1023.0));
            let m = vorrq_u64(
                vandq_u64(bits, vdupq_n_u64(0x000f_ffff_ffff_ffff)),
                vdupq_n_u64(0x3ff0_0000_0000_0000),
            );
            (F64x2(vreinterpretq_f64_u64(m)), F64x2(e))
        }
    }

    #[target_feature(enable = "neon")]
    pub(super) unsafe fn f32_neon(f: VFunc, x: *const f32, out: *mut f32, n: usize) {
        dispatch::<F32x4>(f, x, out, n, &K32)
    }
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn f64_neon(f: VFunc, x: *const f64, out: *mut f64, n: usize) {
        dispatch::<F64x2>(f, x, out, n, &K64)
    }
}

// ---------------------------------------------------------------------------------------
// Dispatch and the public API.
// ---------------------------------------------------------------------------------------

/// # Safety
/// `x` must be valid for `n` reads and `out` for `n` writes; they may be equal but must not
/// otherwise overlap.
unsafe fn raw_f32(level: SimdLevel, f: VFunc, x: *const f32, out: *mut f32, n: usize) {
    match effective_level(level) {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => x86::f32_avx512(f, x, out, n),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2Fma => x86::f32_avx2(f, x, out, n),
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => neon::f32_neon(f, x, out, n),
        _ => {
            for i in 0..n {
                *out.add(i) = scalar_f32(f, *x.add(i));
            }
        }
    }
}

/// # Safety
/// As [`raw_f32`].
unsafe fn raw_f64(level: SimdLevel, f: VFunc, x: *const f64, out: *mut f64, n: usize) {
    match effective_level(level) {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => x86::f64_avx512(f, x, out, n),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2Fma => x86::f64_avx2(f, x, out, n),
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => neon::f64_neon(f, x, out, n),
        _ => {
            for i in 0..n {
                *out.add(i) = scalar_f64(f, *x.add(i));
            }
        }
    }
}

impl VMath for f32 {
    fn vapply_with(level: SimdLevel, f: VFunc, x: &[f32], out: &mut [f32]) {
        let n = x.len().min(out.len());
        // SAFETY: both slices hold at least n elements and cannot overlap (borrow rules).
        unsafe { raw_f32(level, f, x.as_ptr(), out.as_mut_ptr(), n) }
    }
    fn vapply_inplace_with(level: SimdLevel, f: VFunc, x: &mut [f32]) {
        let p = x.as_mut_ptr();
        // SAFETY: in = out exactly; every kernel loads a block before storing it.
        unsafe { raw_f32(level, f, p, p, x.len()) }
    }
    fn scalar(f: VFunc, x: f32) -> f32 {
        scalar_f32(f, x)
    }
}

impl VMath for f64 {
    fn vapply_with(level: SimdLevel, f: VFunc, x: &[f64], out: &mut [f64]) {
        let n = x.len().min(out.len());
        // SAFETY: both slices hold at least n elements and cannot overlap (borrow rules).
        unsafe { raw_f64(level, f, x.as_ptr(), out.as_mut_ptr(), n) }
    }
    fn vapply_inplace_with(level: SimdLevel, f: VFunc, x: &mut [f64]) {
        let p = x.as_mut_ptr();
        // SAFETY: in = out exactly; every kernel loads a block before storing it.
        unsafe { raw_f64(level, f, p, p, x.len()) }
    }
    fn scalar(f: VFunc, x: f64) -> f64 {
        scalar_f64(f, x)
    }
}

/// `out[i] = f(x[i])` for f32 at [`simd::level`] (common prefix of the two slices).
pub fn apply_f32(f: VFunc, x: &[f32], out: &mut [f32]) {
    f32::vapply(f, x, out)
}

/// `out[i] = f(x[i])` for f64 at [`simd::level`] (common prefix of the two slices).
pub fn apply_f64(f: VFunc, x: &[f64], out: &mut [f64]) {
    f64::vapply(f, x, out)
}

/// `x[i] = f(x[i])` for f32 at [`simd::level`].
pub fn apply_f32_inplace(f: VFunc, x: &mut [f32]) {
    f32::vapply_inplace(f, x)
}

/// `x[i] = f(x[i])` for f64 at [`simd::level`].
pub fn apply_f64_inplace(f: VFunc, x: &mut [f64]) {
    f64::vapply_inplace(f, x)
}

/// `out[i] = f(x[i])` for f32 with an explicit SIMD level (lowered to what the CPU supports;
/// see [`effective_level`]). Lets tests and benchmarks exercise every implementation.
pub fn apply_f32_with(level: SimdLevel, f: VFunc, x: &[f32], out: &mut [f32]) {
    f32::vapply_with(level, f, x, out)
}

/// `out[i] = f(x[i])` for f64 with an explicit SIMD level (lowered to what the CPU supports).
pub fn apply_f64_with(level: SimdLevel, f: VFunc, x: &[f64], out: &mut [f64]) {
    f64::vapply_with(level, f, x, out)
}

macro_rules! named {
    ($($name:ident, $t:ty, $f:expr, $doc:literal;)*) => {$(
        #[doc = $doc]
        pub fn $name(x: &[$t], out: &mut [$t]) {
            <$t as VMath>::vapply($f, x, out)
        }
    )*};
}

named! {
    exp_f32, f32, VFunc::Exp, "`out[i] = exp(x[i])`.";
    exp_f64, f64, VFunc::Exp, "`out[i] = exp(x[i])`.";
    ln_f32, f32, VFunc::Ln, "`out[i] = ln(x[i])`.";
    ln_f64, f64, VFunc::Ln, "`out[i] = ln(x[i])`.";
    log1p_f32, f32, VFunc::Log1p, "`out[i] = ln(1 + x[i])`.";
    log1p_f64, f64, VFunc::Log1p, "`out[i] = ln(1 + x[i])`.";
    expm1_f32, f32, VFunc::Expm1, "`out[i] = exp(x[i]) − 1`.";
    expm1_f64, f64, VFunc::Expm1, "`out[i] = exp(x[i]) − 1`.";
    tanh_f32, f32, VFunc::Tanh, "`out[i] = tanh(x[i])`.";
    tanh_f64, f64, VFunc::Tanh, "`out[i] = tanh(x[i])`.";
    sigmoid_f32, f32, VFunc::Sigmoid, "`out[i] = 1/(1 + exp(−x[i]))`, stable for both signs.";
    sigmoid_f64, f64, VFunc::Sigmoid, "`out[i] = 1/(1 + exp(−x[i]))`, stable for both signs.";
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
