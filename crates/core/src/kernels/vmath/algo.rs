//! The algorithms of [`vmath`](super), written once over a small SIMD vector abstraction
//! ([`Vf`]) and instantiated per instruction set by the `x86` and `neon` modules: the
//! per-precision constants, the branch-free function bodies and the slice loop.

use super::VFunc;

// ---------------------------------------------------------------------------------------
// The SIMD vector abstraction. All methods are `#[inline(always)]` and get compiled with the
// features of the `#[target_feature]` function they are inlined into.
// ---------------------------------------------------------------------------------------

#[allow(dead_code)]
pub(super) trait Vf: Copy {
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

/// Defines `$V`, a wrapper of one vector register `$R` holding `$lanes` `$E`s with the mask
/// type `$M`, and implements [`Vf`] for it. The methods with the same shape on every
/// instruction set are written here:
///
/// * `splat`, `load`, `store` and the lane-wise `add sub mul div min max` map onto one
///   intrinsic each;
/// * `pow2n` adds `$bias` (2^`$mbits` plus the exponent bias) in float arithmetic, which puts
///   `n + bias` in the low mantissa bits, and shifts them into the exponent field (`$bits` /
///   `$float` reinterpret between the float and the integer vector; `$shl`, `$shr` shift the
///   integer lanes; `$and`, `$or`, `$isplat` are the integer and, or and splat);
/// * `split_exp` keeps the mantissa bits (`$mmask`) under the exponent of 1.0 (`$one`) and
///   reads the biased exponent as a float either with a conversion (`[convert $cvt]`, then
///   subtracts `$ebias`) or, where the ISA has no integer-to-float conversion of that width,
///   by or-ing it into the mantissa of `$magic` = 2^`$mbits` and subtracting `$bias`
///   (`[magic $magic]`).
///
/// The rest (`fma abs copysign round lt gt ge eq is_nan select`) comes from the ISA's own
/// macro `$isa!`, called with `$V, $M, $splat, $bits, $float, $and, $or, $isplat;` and then
/// its own arguments.
macro_rules! vf_impl {
    ($V:ident($R:ty): $lanes:literal x $E:ty, $M:ty;
     $splat:ident $load:ident $store:ident $add:ident $sub:ident $mul:ident $div:ident $min:ident $max:ident;
     $bits:ident $float:ident $shl:ident $shr:ident $and:ident $or:ident $isplat:ident;
     $mbits:literal, $bias:literal, $ebias:literal, $mmask:literal, $one:literal, $split:tt;
     $isa:ident!($($isa_args:tt)*)) => {
        #[derive(Clone, Copy)]
        pub(super) struct $V($R);

        impl Vf for $V {
            type E = $E;
            type M = $M;
            const LANES: usize = $lanes;
            #[inline(always)]
            #[allow(clippy::unnecessary_cast)]
            unsafe fn splat(v: f64) -> Self {
                $V($splat(v as $E))
            }
            #[inline(always)]
            unsafe fn load(p: *const $E) -> Self {
                $V($load(p))
            }
            #[inline(always)]
            unsafe fn store(self, p: *mut $E) {
                $store(p, self.0)
            }
            vf_impl!(@binary $V: add $add, sub $sub, mul $mul, div $div, min $min, max $max);
            #[inline(always)]
            unsafe fn pow2n(n: Self) -> Self {
                let t = $add(n.0, $splat($bias));
                $V($float($shl::<$mbits>($bits(t))))
            }
            #[inline(always)]
            unsafe fn split_exp(self) -> (Self, Self) {
                let bits = $bits(self.0);
                let e = vf_impl!(@exponent bits, $split, $shr::<$mbits>, $sub, $splat, $or, $isplat, $float, $bias, $ebias);
                let m = $or($and(bits, $isplat($mmask)), $isplat($one));
                ($V($float(m)), $V(e))
            }
            $isa!($V, $M, $splat, $bits, $float, $and, $or, $isplat; $($isa_args)*);
        }
    };
    (@binary $V:ident: $($name:ident $f:ident),*) => {$(
        #[inline(always)]
        unsafe fn $name(self, b: Self) -> Self {
            $V($f(self.0, b.0))
        }
    )*};
    (@exponent $b:ident, [convert $cvt:ident], $shr:expr, $sub:ident, $splat:ident, $or:ident, $isplat:ident, $float:ident, $bias:literal, $ebias:literal) => {
        $sub($cvt($shr($b)), $splat($ebias))
    };
    (@exponent $b:ident, [magic $magic:literal], $shr:expr, $sub:ident, $splat:ident, $or:ident, $isplat:ident, $float:ident, $bias:literal, $ebias:literal) => {
        $sub($float($or($shr($b), $isplat($magic))), $splat($bias))
    };
}
pub(super) use vf_impl;

/// Defines `#[target_feature]` entry points that run [`dispatch`] over raw slices for one
/// vector type: `"features": name(element type) => vector type, constants;`.
macro_rules! entry_points {
    ($($feat:literal: $name:ident($t:ty) => $V:ty, $k:expr;)*) => {$(
        #[target_feature(enable = $feat)]
        pub(super) unsafe fn $name(f: VFunc, x: *const $t, out: *mut $t, n: usize) {
            dispatch::<$V>(f, x, out, n, &$k)
        }
    )*};
}
pub(super) use entry_points;

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
pub(super) struct Consts {
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
pub(super) const K32: Consts = Consts {
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
pub(super) const K64: Consts = Consts {
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

/// Cody–Waite reduction of `x` clamped to `[lo, k.exp_hi]`: `(n, r)` with `x = n·ln2 + r`,
/// `n` integral and `|r| ≤ ln2/2`.
#[inline(always)]
unsafe fn reduce_ln2<V: Vf>(x: V, lo: f64, k: &Consts) -> (V, V) {
    let xc = x.max(c(lo)).min(c(k.exp_hi));
    let n = xc.mul(c(std::f64::consts::LOG2_E)).round();
    let r = n.fma(c(-k.ln2_hi), xc);
    (n, n.fma(c(-k.ln2_lo), r))
}

/// exp without the NaN fix-up (NaN lanes hold garbage).
#[inline(always)]
unsafe fn exp_core<V: Vf>(x: V, k: &Consts) -> V {
    let (n, r) = reduce_ln2(x, k.exp_lo, k);
    let p = horner(r, k.exp_poly);
    let n1 = n.mul(c(0.5)).round();
    let n2 = n.sub(n1);
    p.mul(V::pow2n(n1)).mul(V::pow2n(n2))
}

#[inline(always)]
unsafe fn exp_body<V: Vf>(x: V, k: &Consts) -> V {
    nan_fix(x, exp_core(x, k))
}

/// expm1 without the NaN fix-up.
#[inline(always)]
unsafe fn expm1_core<V: Vf>(x: V, k: &Consts) -> V {
    let (n, r) = reduce_ln2(x, k.expm1_lo, k);
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
pub(super) unsafe fn dispatch<V: Vf>(f: VFunc, x: *const V::E, out: *mut V::E, n: usize, k: &Consts) {
    match f {
        VFunc::Exp => run::<V, ExpB>(x, out, n, k),
        VFunc::Ln => run::<V, LnB>(x, out, n, k),
        VFunc::Log1p => run::<V, Log1pB>(x, out, n, k),
        VFunc::Expm1 => run::<V, Expm1B>(x, out, n, k),
        VFunc::Tanh => run::<V, TanhB>(x, out, n, k),
        VFunc::Sigmoid => run::<V, SigmoidB>(x, out, n, k),
    }
}
