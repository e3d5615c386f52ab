//! Accuracy of the vectorized math (`kernels::vmath`) against high-precision references,
//! for every SIMD implementation this CPU supports (called directly) and for the dispatch
//! path. f32 results are compared with the f64 standard library; f64 results with a
//! double-double reference. The bound is 4 ulp everywhere, special values included.
//!
//! Run with `GORGON_SIMD=scalar` too: then the dispatch path is the scalar fallback.

mod common;

use common::{sigmoid, Rng};
use gorgon_core::kernels::simd::{self, SimdLevel};
use gorgon_core::kernels::vmath::{self, VFunc};

// ----------------------------------------------------------------------------------------
// Ulp distance.
// ----------------------------------------------------------------------------------------

/// What the checks need of a precision (f32, f64).
trait Prec: Copy + std::fmt::LowerExp + 'static {
    const NAME: &'static str;
    /// f64: the inputs span the wider f64 ranges.
    const WIDE: bool;
    /// The position on the number line of bit patterns (sign-magnitude made two's complement).
    fn ord(self) -> i128;
    fn is_nan(self) -> bool;
    fn zero() -> Self;
    /// From random bits (the low 32 for f32).
    fn from_bits64(b: u64) -> Self;
    fn from_f64(v: f64) -> Self;
    /// `(k + ½)·ln 2`, computed in this precision.
    fn half_ln2(k: i32) -> Self;
    /// The neighbouring bit pattern above (`up`) or below.
    fn step(self, up: bool) -> Self;
}

macro_rules! impl_prec {
    ($($t:ident: $bits:ty, $sign:expr, $wide:literal;)*) => {$(
        impl Prec for $t {
            const NAME: &'static str = stringify!($t);
            const WIDE: bool = $wide;
            fn ord(self) -> i128 {
                let b = self.to_bits();
                if b & $sign != 0 {
                    -((b & !$sign) as i128)
                } else {
                    b as i128
                }
            }
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            fn zero() -> Self {
                0.0
            }
            fn from_bits64(b: u64) -> Self {
                <$t>::from_bits(b as $bits)
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn half_ln2(k: i32) -> Self {
                (k as $t + 0.5) * std::$t::consts::LN_2
            }
            fn step(self, up: bool) -> Self {
                let b = self.to_bits();
                <$t>::from_bits(if up { b.wrapping_add(1) } else { b.wrapping_sub(1) })
            }
        }
    )*};
}
impl_prec! {
    f32: u32, 0x8000_0000, false;
    f64: u64, 1 << 63, true;
}

fn ulps<T: Prec>(a: T, b: T) -> f64 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => 0.0,
        (false, false) => (a.ord() - b.ord()).unsigned_abs() as f64,
        _ => f64::INFINITY,
    }
}

// ----------------------------------------------------------------------------------------
// Double-double reference (for f64).
// ----------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct DD {
    hi: f64,
    lo: f64,
}

fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

fn quick_two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    (s, b - (s - a))
}

fn split(a: f64) -> (f64, f64) {
    let t = 134_217_729.0 * a;
    let hi = t - (t - a);
    (hi, a - hi)
}

fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    let (ah, al) = split(a);
    let (bh, bl) = split(b);
    (p, ((ah * bh - p) + ah * bl + al * bh) + al * bl)
}

impl DD {
    fn new(x: f64) -> DD {
        DD { hi: x, lo: 0.0 }
    }
    fn add(self, b: DD) -> DD {
        let (s, e) = two_sum(self.hi, b.hi);
        let (t, f) = two_sum(self.lo, b.lo);
        let (s, e) = quick_two_sum(s, e + t);
        let (hi, lo) = quick_two_sum(s, e + f);
        DD { hi, lo }
    }
    fn neg(self) -> DD {
        DD { hi: -self.hi, lo: -self.lo }
    }
    fn sub(self, b: DD) -> DD {
        self.add(b.neg())
    }
    fn mul(self, b: DD) -> DD {
        let (p, e) = two_prod(self.hi, b.hi);
        let e = e + (self.hi * b.lo + self.lo * b.hi);
        let (hi, lo) = quick_two_sum(p, e);
        DD { hi, lo }
    }
    fn div(self, b: DD) -> DD {
        let q1 = self.hi / b.hi;
        let r = self.sub(b.mul(DD::new(q1)));
        let q2 = r.hi / b.hi;
        let r = r.sub(b.mul(DD::new(q2)));
        let q3 = r.hi / b.hi;
        let (s, e) = quick_two_sum(q1, q2);
        DD { hi: s, lo: e }.add(DD::new(q3))
    }
    fn scale(self, n: i32) -> DD {
        DD { hi: ldexp(self.hi, n), lo: ldexp(self.lo, n) }
    }
    fn to_f64(self) -> f64 {
        self.hi + self.lo
    }
}

fn ldexp(x: f64, n: i32) -> f64 {
    let mut x = x;
    let mut n = n;
    while n > 1000 {
        x *= 2f64.powi(1000);
        n -= 1000;
    }
    while n < -1000 {
        x *= 2f64.powi(-1000);
        n += 1000;
    }
    // Apply the last factor in two halves so a subnormal result rounds (almost) once.
    let h = n / 2;
    x * 2f64.powi(h) * 2f64.powi(n - h)
}

#[allow(clippy::excessive_precision)]
const LN2: DD = DD { hi: std::f64::consts::LN_2, lo: 2.319_046_813_846_299_558e-17 };

/// e^x as (mantissa part, power of two): e^x = m · 2^n, m ∈ [0.7, 1.42]. Finite x only.
fn exp_dd_parts(x: f64) -> (DD, i32) {
    let n = (x / std::f64::consts::LN_2).round();
    let r = DD::new(x).sub(LN2.mul(DD::new(n)));
    let r = r.scale(-10);
    // Taylor series of e^r, |r| ≤ 3.4e-4.
    let mut term = DD::new(1.0);
    let mut sum = DD::new(1.0);
    for k in 1..=11 {
        term = term.mul(r).div(DD::new(k as f64));
        sum = sum.add(term);
    }
    for _ in 0..10 {
        sum = sum.mul(sum);
    }
    (sum, n as i32)
}

fn exp_dd(x: f64) -> DD {
    if x > 710.0 {
        return DD::new(f64::INFINITY);
    }
    if x < -746.0 {
        return DD::new(0.0);
    }
    let (m, n) = exp_dd_parts(x);
    m.scale(n)
}

fn ref_exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    exp_dd(x).to_f64()
}

/// ln of a positive finite double-double, by one Newton step from the libm value.
fn ln_dd(u: DD) -> DD {
    let y0 = u.hi.ln();
    let (m, n) = exp_dd_parts(-y0);
    // u · e^(−y0) − 1, with the power of two applied to u first (exact).
    let t = u.scale(n).mul(m).sub(DD::new(1.0));
    DD::new(y0).add(t)
}

fn ref_ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    ln_dd(DD::new(x)).to_f64()
}

fn ref_log1p(x: f64) -> f64 {
    if x.is_nan() || x < -1.0 {
        return f64::NAN;
    }
    if x == -1.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    if x.abs() < 1e-3 {
        // Σ (−1)^(k+1) x^k / k
        let xd = DD::new(x);
        let mut p = xd;
        let mut sum = xd;
        for k in 2..=14 {
            p = p.mul(xd).neg();
            sum = sum.add(p.div(DD::new(k as f64)));
        }
        return sum.to_f64();
    }
    let (hi, lo) = two_sum(1.0, x);
    ln_dd(DD { hi, lo }).to_f64()
}

fn expm1_dd(x: f64) -> DD {
    if x.abs() < 0.5 {
        let xd = DD::new(x);
        let mut term = xd;
        let mut sum = xd;
        for k in 2..=30 {
            term = term.mul(xd).div(DD::new(k as f64));
            sum = sum.add(term);
        }
        sum
    } else {
        let e = exp_dd(x);
        if e.to_f64().is_infinite() {
            return DD::new(f64::INFINITY);
        }
        e.sub(DD::new(1.0))
    }
}

fn ref_expm1(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 710.0 {
        return f64::INFINITY;
    }
    if x < -800.0 {
        return -1.0;
    }
    expm1_dd(x).to_f64()
}

fn ref_tanh(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let t = if a > 40.0 {
        1.0
    } else if a < 0.5 {
        let e = expm1_dd(2.0 * a);
        e.div(e.add(DD::new(2.0))).to_f64()
    } else {
        let e = exp_dd(2.0 * a);
        DD::new(1.0).sub(DD::new(2.0).div(e.add(DD::new(1.0)))).to_f64()
    };
    if x.is_sign_negative() {
        -t
    } else {
        t
    }
}

fn ref_sigmoid(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x >= 0.0 {
        if x > 800.0 {
            return 1.0;
        }
        DD::new(1.0).div(DD::new(1.0).add(exp_dd(-x))).to_f64()
    } else {
        if x < -800.0 {
            return 0.0;
        }
        let (m, n) = exp_dd_parts(x);
        if n < -60 {
            // 1 + e rounds to 1 at double-double precision: the result is e itself.
            return m.scale(n).to_f64();
        }
        let e = m.scale(n);
        e.div(DD::new(1.0).add(e)).to_f64()
    }
}

fn ref64(f: VFunc, x: f64) -> f64 {
    match f {
        VFunc::Exp => ref_exp(x),
        VFunc::Ln => ref_ln(x),
        VFunc::Log1p => ref_log1p(x),
        VFunc::Expm1 => ref_expm1(x),
        VFunc::Tanh => ref_tanh(x),
        VFunc::Sigmoid => ref_sigmoid(x),
    }
}

/// f32 reference: the function evaluated in f64 (standard library, ≤ 2 f64 ulp) and rounded.
fn ref32(f: VFunc, x: f32) -> f32 {
    let x = x as f64;
    let r = match f {
        VFunc::Exp => x.exp(),
        VFunc::Ln => x.ln(),
        VFunc::Log1p => x.ln_1p(),
        VFunc::Expm1 => x.exp_m1(),
        VFunc::Tanh => x.tanh(),
        VFunc::Sigmoid => sigmoid(x),
    };
    r as f32
}

// ----------------------------------------------------------------------------------------
// Test inputs.
// ----------------------------------------------------------------------------------------

/// Where each function is interesting: `[f32 range, f64 range]`.
fn range_of(f: VFunc) -> [(f64, f64); 2] {
    match f {
        VFunc::Exp => [(-110.0, 90.0), (-750.0, 712.0)],
        VFunc::Ln => [(0.0, 10.0), (0.0, 10.0)],
        VFunc::Log1p => [(-1.0, 10.0), (-1.0, 10.0)],
        VFunc::Expm1 => [(-20.0, 90.0), (-40.0, 712.0)],
        VFunc::Tanh => [(-12.0, 12.0), (-25.0, 25.0)],
        VFunc::Sigmoid => [(-110.0, 90.0), (-750.0, 40.0)],
    }
}

fn specials32() -> Vec<f32> {
    use std::f32::consts::{FRAC_1_SQRT_2, LN_2, SQRT_2};
    vec![
        0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN,
        f32::MIN_POSITIVE, -f32::MIN_POSITIVE, f32::from_bits(1), -f32::from_bits(1), f32::from_bits(0x007f_ffff),
        f32::MAX, f32::MIN, f32::EPSILON, -f32::EPSILON, 88.722_83, 88.722_84, 88.7229, 89.0, -87.336_55,
        -103.972_08, -103.972_09, -104.0, -1.0 + f32::EPSILON / 2.0, -0.999_999, SQRT_2, FRAC_1_SQRT_2, LN_2, -LN_2,
        9.0, 9.1, -9.1, 17.0, 20.0, 1e-8, -1e-8, 1e-30, -1e-30,
    ]
}

fn specials64() -> Vec<f64> {
    use std::f64::consts::{FRAC_1_SQRT_2, LN_2, SQRT_2};
    vec![
        0.0, -0.0, 1.0, -1.0, 0.5, -0.5, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE, f64::from_bits(1), -f64::from_bits(1), f64::from_bits(0x000f_ffff_ffff_ffff), f64::MAX,
        f64::MIN, f64::EPSILON, -f64::EPSILON, 709.782_712_893_383_9, 709.782_712_893_384_1, 710.0,
        -708.396_418_532_264_1, -745.133_219_101_941_1, -745.133_219_101_941_3, -746.0, -1.0 + f64::EPSILON / 2.0,
        SQRT_2, FRAC_1_SQRT_2, LN_2, 19.0, 19.1, -19.1, 37.0, 40.0, 1e-17, -1e-17, 1e-300, -1e-300,
    ]
}

/// ≥ 1e6 inputs: the specials, the neighbourhoods of the polynomial/reduction boundaries (n
/// changes at ±(k+½)·ln2), then random bit patterns (every magnitude, subnormals, ±inf, NaN),
/// a uniform range where the function is interesting, and log-uniform small magnitudes.
fn inputs<T: Prec>(f: VFunc, n: usize, seed: u64, specials: Vec<T>) -> Vec<T> {
    let mut v = specials;
    for k in -5..=5 {
        for up in [false, true] {
            let mut x = T::half_ln2(k);
            for _ in 0..20 {
                x = x.step(up);
                v.push(x);
            }
        }
    }
    let mut r = Rng(seed);
    let (lo, hi) = range_of(f)[T::WIDE as usize];
    let smallest = if T::WIDE { -300.0 } else { -40.0 };
    while v.len() < n {
        match v.len() % 4 {
            0 => v.push(T::from_bits64(r.next())),
            1 => v.push(T::from_f64(r.uniform(lo, hi))),
            2 => {
                let m = 10f64.powf(r.uniform(smallest, 1.0));
                v.push(T::from_f64(if r.next() & 1 == 0 { m } else { -m }))
            }
            _ => v.push(T::from_f64(r.uniform(-2.0, 2.0))),
        }
    }
    v
}

fn levels() -> Vec<SimdLevel> {
    let mut v = vec![SimdLevel::Scalar];
    for l in [SimdLevel::Avx2Fma, SimdLevel::Avx512, SimdLevel::Neon] {
        if simd::supports(l) {
            v.push(l);
        }
    }
    v
}

const MAX_ULP: f64 = 4.0;
const N32: usize = 1_000_000;
const N64: usize = 400_000;

/// The largest ulp error of `got` against `expect` (reported, and asserted ≤ [`MAX_ULP`]).
fn check<T: Prec>(f: VFunc, x: &[T], expect: &[T], got: &[T], what: &str) -> f64 {
    let mut worst = 0.0f64;
    let mut worst_i = 0;
    for i in 0..x.len() {
        let d = ulps(got[i], expect[i]);
        if d > worst {
            worst = d;
            worst_i = i;
        }
    }
    let (name, i) = (T::NAME, worst_i);
    eprintln!("{what} {f:?} {name}: max {worst} ulp (at x = {:e})", x[i]);
    assert!(worst <= MAX_ULP, "{what} {f:?} {name}: {worst} ulp at x = {:e}: got {:e} want {:e}", x[i], got[i], expect[i]);
    worst
}

/// One precision's entry points: the reference, the explicit-level and the dispatch path.
struct Api<T> {
    reference: fn(VFunc, T) -> T,
    with_level: fn(SimdLevel, VFunc, &[T], &mut [T]),
    dispatch: fn(VFunc, &[T], &mut [T]),
}

/// Checks every function at every level this CPU supports and through the dispatch path
/// (whatever GORGON_SIMD selects), then runs `after(f, inputs, dispatch result)`.
fn every_level<T: Prec>(n: usize, seed: u64, specials: fn() -> Vec<T>, api: Api<T>, after: impl Fn(VFunc, &[T], &[T])) {
    for (fi, &f) in VFunc::ALL.iter().enumerate() {
        let x = inputs(f, n, seed + fi as u64, specials());
        let expect: Vec<T> = x.iter().map(|&v| (api.reference)(f, v)).collect();
        let mut got = vec![T::zero(); x.len()];
        for &l in &levels() {
            (api.with_level)(l, f, &x, &mut got);
            check(f, &x, &expect, &got, l.name());
        }
        (api.dispatch)(f, &x, &mut got);
        check(f, &x, &expect, &got, "dispatch");
        after(f, &x, &got);
    }
}

#[test]
fn f32_every_level_within_4_ulp() {
    let api = Api { reference: ref32, with_level: vmath::apply_f32_with, dispatch: vmath::apply_f32 };
    every_level(N32, 0x1234, specials32, api, |f, x, got| {
        // In place gives the dispatch path's result.
        let mut inplace = x.to_vec();
        vmath::apply_f32_inplace(f, &mut inplace);
        assert!(inplace.iter().zip(got).all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())));
    });
}

#[test]
fn f64_every_level_within_4_ulp() {
    let api = Api { reference: ref64, with_level: vmath::apply_f64_with, dispatch: vmath::apply_f64 };
    every_level(N64, 0x5678, specials64, api, |_, _, _| {});
}

#[test]
fn named_functions_match_apply() {
    let x: Vec<f32> = (0..1000).map(|i| i as f32 * 0.01 - 5.0).collect();
    let mut a = vec![0.0f32; 1000];
    let mut b = vec![0.0f32; 1000];
    type F32Fn = fn(&[f32], &mut [f32]);
    let fs: [(F32Fn, VFunc); 6] = [
        (vmath::exp_f32, VFunc::Exp),
        (vmath::ln_f32, VFunc::Ln),
        (vmath::log1p_f32, VFunc::Log1p),
        (vmath::expm1_f32, VFunc::Expm1),
        (vmath::tanh_f32, VFunc::Tanh),
        (vmath::sigmoid_f32, VFunc::Sigmoid),
    ];
    for (g, f) in fs {
        g(&x, &mut a);
        vmath::apply_f32(f, &x, &mut b);
        assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    }
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut c = vec![0.0f64; 1000];
    vmath::sigmoid_f64(&xd, &mut c);
    assert!(c.iter().all(|&v| v > 0.0 && v < 1.0));
}

/// The reference itself, spot-checked against known values.
#[test]
fn reference_sanity() {
    assert_eq!(ref_exp(1.0), std::f64::consts::E);
    assert_eq!(ref_ln(std::f64::consts::E), 1.0);
    assert_eq!(ref_exp(0.0), 1.0);
    assert_eq!(ref_exp(-745.2), 0.0);
    assert_eq!(ref_exp(-745.1), f64::from_bits(1));
    assert_eq!(ref_exp(709.79), f64::INFINITY);
    assert_eq!(ref_log1p(1e-20), 1e-20);
    assert_eq!(ref_expm1(1e-20), 1e-20);
    assert_eq!(ref_tanh(1e-300), 1e-300);
    assert_eq!(ref_sigmoid(0.0), 0.5);
    for &x in &[0.1, 0.7, 1.3, 3.0, 20.0, -2.5, -30.0] {
        assert!(ulps(ref_exp(x), x.exp()) <= 1.0, "{x}");
        assert!(ulps(ref_tanh(x), x.tanh()) <= 2.0, "{x}");
        assert!(ulps(ref_expm1(x), x.exp_m1()) <= 1.0, "{x}");
        if x > -1.0 {
            assert!(ulps(ref_log1p(x), x.ln_1p()) <= 1.0, "{x}");
        }
        if x > 0.0 {
            assert!(ulps(ref_ln(x), x.ln()) <= 1.0, "{x}");
        }
    }
}

/// Throughput on 16M f32 (run with `cargo test --release --test vmath_accuracy -- --ignored
/// --nocapture bench`): each SIMD level single-threaded, a plain scalar `std` loop, and the
/// threaded `unary` kernel.
#[test]
#[ignore]
fn bench_exp_tanh_16m() {
    use gorgon_core::kernels::elementwise::{unary, UnaryOp};
    use gorgon_core::{DType, Tensor};
    use std::time::Instant;
    let n = 16 << 20;
    let mut r = Rng(42);
    let x: Vec<f32> = (0..n).map(|_| r.uniform(-10.0, 10.0) as f32).collect();
    let mut y = vec![0.0f32; n];
    let time = |f: &mut dyn FnMut()| {
        f();
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = Instant::now();
            f();
            best = best.min(t.elapsed().as_secs_f64() * 1e3);
        }
        best
    };
    {
        use gorgon_core::kernels::elementwise::{binary, BinaryOp};
        let a = Tensor::from_vec(x.clone(), &[4096, 4096]).unwrap();
        let b = Tensor::from_vec(x.iter().rev().copied().collect::<Vec<_>>(), &[4096, 4096]).unwrap();
        let row = Tensor::from_vec(x[..4096].to_vec(), &[4096]).unwrap();
        let mut out = Tensor::zeros(DType::F32, &[4096, 4096]);
        let ms = time(&mut || {
            for ((o, &p), &q) in y.iter_mut().zip(&x).zip(x.iter().rev()) {
                *o = p + q;
            }
        });
        eprintln!("add f32 16M: plain loop {ms:.1} ms ({})", y[7]);
        let ms = time(&mut || binary(BinaryOp::Add, &a.view(), &b.view(), &mut out).unwrap());
        eprintln!("add f32 16M: binary() same shape {ms:.1} ms");
        let ms = time(&mut || binary(BinaryOp::Add, &a.view(), &row.view(), &mut out).unwrap());
        eprintln!("add f32 16M: binary() row broadcast {ms:.1} ms");
        let at = a.view().permuted(&[1, 0]).unwrap();
        let ms = time(&mut || binary(BinaryOp::Add, &at, &b.view(), &mut out).unwrap());
        eprintln!("add f32 16M: binary() transposed operand {ms:.1} ms");
    }
    // In-cache throughput: 8k elements, 2048 times (same element count).
    for f in [VFunc::Exp, VFunc::Tanh] {
        for &l in &levels() {
            let ms = time(&mut || {
                for rep in 0..2048 {
                    let s = (rep % 8) * 8192;
                    vmath::apply_f32_with(l, f, &x[s..s + 8192], &mut y[..8192]);
                }
            });
            eprintln!("{f:?} f32 16M in L1/L2 blocks: vmath {} {ms:.1} ms", l.name());
        }
    }
    for (f, std_f) in [(VFunc::Exp, f32::exp as fn(f32) -> f32), (VFunc::Tanh, f32::tanh as fn(f32) -> f32)] {
        let ms = time(&mut || {
            for (o, &v) in y.iter_mut().zip(&x) {
                *o = std_f(v);
            }
        });
        eprintln!("{f:?} f32 16M: std scalar loop {ms:.1} ms");
        for &l in &levels() {
            let ms = time(&mut || vmath::apply_f32_with(l, f, &x, &mut y));
            eprintln!("{f:?} f32 16M: vmath {} (1 thread) {ms:.1} ms", l.name());
        }
        let xt = Tensor::from_vec(x.clone(), &[n]).unwrap();
        let mut out = Tensor::zeros(DType::F32, &[n]);
        let op = if f == VFunc::Exp { UnaryOp::Exp } else { UnaryOp::Tanh };
        let ms = time(&mut || unary(op, &xt.view(), &mut out).unwrap());
        eprintln!(
            "{f:?} f32 16M: unary() at {} with {} threads {ms:.1} ms",
            simd::level().name(),
            gorgon_core::kernels::threads::num_threads()
        );
    }
}
