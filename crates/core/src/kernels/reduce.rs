//! Reductions over any set of axes: sum, mean, max, min, prod, logsumexp; argmax/argmin.
//!
//! # Strategy
//! The input is brought to a contiguous slice plus a shape (no copy when it is standard
//! layout, or a pure axis permutation of it that keeps the kept axes in order, e.g. `x.T`
//! reduced over one axis), adjacent axes of the same kind (kept / reduced) are merged, and
//! when the result has the form `(outer, r, inner)` — reduced axes forming one block — one of
//! three kernels runs:
//!
//! * **full** (`outer = inner = 1`): one pass over the slice. f32/f64 sum, max and min use
//!   explicit AVX2 loops on x86-64 (4 vectors of independent accumulators; max/min track NaN
//!   in a mask so it propagates); other cases use 16-lane folds. Sums are pairwise over
//!   2048-element leaves (cascade), so the f32 rounding error grows like `log n`, not `n`.
//! * **rows** (`inner = 1`, reduce the last axis): the same kernel per row.
//! * **columns** (`inner > 1`, e.g. reducing the leading axis): rows are folded into a
//!   1024-wide block of the output, so both stay in L1 while the input streams by; sums are
//!   accumulated 64 rows at a time into a scratch block and the block sums merged pairwise
//!   (cascade summation), again for accuracy. These element-wise loops are compiled for
//!   AVX-512 / AVX2 as well and picked at run time (`multiversion!`).
//!
//! LogSumExp is `m + ln Σ exp(x − m)` with `m` the max (0 when it is not finite), using the
//! vectorized `exp` of [`vmath`](crate::kernels::vmath).
//!
//! Anything else (several separated reduced blocks, negative strides, broadcasts) is copied
//! once into `(kept..., reduced...)` order and reduced as rows. Inputs of at least 2^18
//! elements are split across rayon threads (over rows, column blocks, or chunks of a full
//! reduction, combined in a fixed order so results do not depend on scheduling).

use crate::error::{fmt_shape, CoreError, Result};
use crate::kernels::vmath::{VFunc, VMath};
use crate::{DType, Element, Tensor, TensorView};
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};
use rayon::prelude::*;

/// A reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Σ
    Sum,
    /// Σ / n
    Mean,
    /// maximum (NaN-propagating)
    Max,
    /// minimum (NaN-propagating)
    Min,
    /// Π
    Prod,
    /// log Σ exp, computed stably (max-shifted)
    LogSumExp,
}

impl ReduceOp {
    fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::Prod => "prod",
            ReduceOp::LogSumExp => "logsumexp",
        }
    }
}

/// Inputs at least this large are split across threads.
const PAR_MIN: usize = 1 << 18;
/// Independent accumulators in the lane kernels.
const LANES: usize = 16;
/// Leaf size of the pairwise summation.
const LEAF: usize = 2048;
/// Width of an output block in the column kernel.
const COL_BLOCK: usize = 1024;
/// Rows summed into a scratch block before it is added to the output (column kernel).
const ROW_BLOCK: usize = 64;

/// Threads the kernels may use (rayon's pool, capped by `GORGON_NUM_THREADS`).
fn max_threads() -> usize {
    crate::kernels::threads::num_threads().max(1)
}

/// Defines `fn $name<T: $bound>(args) -> ret` that runs the `#[inline(always)]` generic
/// `$imp` compiled for AVX-512F or AVX2+FMA when [`simd::level`](crate::kernels::simd::level)
/// allows (LLVM then vectorizes the lane loops with wide registers), else at the build's
/// baseline (SSE2 on x86-64). `GORGON_SIMD=scalar` selects the baseline build.
macro_rules! multiversion {
    ($(#[$m:meta])* fn $name:ident<$T:ident: $B:path>($($a:ident: $t:ty),* $(,)?) -> $r:ty => $imp:ident) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments, clippy::unused_unit)]
        fn $name<$T: $B>($($a: $t),*) -> $r {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                #[allow(clippy::too_many_arguments, clippy::unused_unit)]
                unsafe fn v512<$T: $B>($($a: $t),*) -> $r {
                    $imp::<$T>($($a),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments, clippy::unused_unit)]
                unsafe fn v256<$T: $B>($($a: $t),*) -> $r {
                    $imp::<$T>($($a),*)
                }
                match crate::kernels::simd::level() {
                    // SAFETY: `simd::level()` reports Avx512 only when avx512f, avx2 and fma
                    // were detected at run time, Avx2Fma only when avx2 and fma were.
                    crate::kernels::simd::SimdLevel::Avx512 => return unsafe { v512::<$T>($($a),*) },
                    crate::kernels::simd::SimdLevel::Avx2Fma => return unsafe { v256::<$T>($($a),*) },
                    _ => {}
                }
            }
            $imp::<$T>($($a),*)
        }
    };
}
pub(crate) use multiversion;

/// Reduces `x` over `axes` (sorted, unique, in range) into `out`, whose element count equals
/// the product of the kept dimensions (its shape may be the keepdims or the squeezed form;
/// elements are written in row-major order of the kept axes). Same dtype in and out;
/// Sum/Prod/Max/Min accept ints too. Max/Min over an empty axis is an error.
///
/// Empty reductions follow NumPy: Sum → 0, Prod → 1, Mean → NaN, LogSumExp → −∞.
/// Integer Sum/Prod wrap on overflow, as NumPy's do.
///
/// ```
/// use gorgon_core::{Tensor, DType, kernels::reduce::{reduce, ReduceOp}};
/// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
/// let mut out = Tensor::zeros(DType::F32, &[3]);
/// reduce(ReduceOp::Sum, &x.view(), &[0], &mut out).unwrap();
/// assert_eq!(out.to_vec_f64(), vec![5.0, 7.0, 9.0]);
/// ```
pub fn reduce(op: ReduceOp, x: &TensorView, axes: &[usize], out: &mut Tensor) -> Result<()> {
    let name = op.name();
    let shape = x.shape();
    check_axes(name, axes, shape.len())?;
    let dt = x.dtype();
    if out.dtype() != dt {
        return Err(CoreError::DType {
            op: name,
            dtype: out.dtype(),
            detail: format!("out must have the input dtype {}", dt),
        });
    }
    let float_only = matches!(op, ReduceOp::Mean | ReduceOp::LogSumExp);
    if dt == DType::Bool || (float_only && !dt.is_float()) {
        return Err(CoreError::DType {
            op: name,
            dtype: dt,
            detail: if float_only {
                "needs a float dtype".into()
            } else {
                "needs a numeric dtype".into()
            },
        });
    }
    let kept: Vec<usize> = (0..shape.len())
        .filter(|a| !axes.contains(a))
        .map(|a| shape[a])
        .collect();
    check_out(name, out, &kept)?;
    match (x, out) {
        (TensorView::F32(a), Tensor::F32(o)) => reduce_typed(op, a.view(), axes, o),
        (TensorView::F64(a), Tensor::F64(o)) => reduce_typed(op, a.view(), axes, o),
        (TensorView::I32(a), Tensor::I32(o)) => reduce_typed(op, a.view(), axes, o),
        (TensorView::I64(a), Tensor::I64(o)) => reduce_typed(op, a.view(), axes, o),
        _ => Err(CoreError::DType {
            op: name,
            dtype: dt,
            detail: String::new(),
        }),
    }
}

/// Index of the max (`is_max`) or min along `axis` (`None`: over the flattened array) into
/// an int64 `out`. First occurrence wins; NaN counts as the extreme, like NumPy.
///
/// `out` holds one element per position of the other axes (keepdims or squeezed shape) or,
/// for `axis = None`, exactly one element. An empty reduced extent is a `CoreError::Shape`.
///
/// ```
/// use gorgon_core::{Tensor, DType, kernels::reduce::arg_reduce};
/// let x = Tensor::from_vec(vec![1.0f32, 7.0, 7.0, 0.0], &[2, 2]).unwrap();
/// let mut out = Tensor::zeros(DType::I64, &[2]);
/// arg_reduce(true, &x.view(), Some(1), &mut out).unwrap();
/// assert_eq!(out.to_vec_f64(), vec![1.0, 0.0]);
/// ```
pub fn arg_reduce(
    is_max: bool,
    x: &TensorView,
    axis: Option<usize>,
    out: &mut Tensor,
) -> Result<()> {
    let name = if is_max { "argmax" } else { "argmin" };
    let shape = x.shape();
    if out.dtype() != DType::I64 {
        return Err(CoreError::DType {
            op: name,
            dtype: out.dtype(),
            detail: "out must be int64".into(),
        });
    }
    let kept: Vec<usize> = match axis {
        None => vec![],
        Some(a) => {
            check_axes(name, &[a], shape.len())?;
            (0..shape.len())
                .filter(|&d| d != a)
                .map(|d| shape[d])
                .collect()
        }
    };
    check_out(name, out, &kept)?;
    let red_len = match axis {
        None => x.len(),
        Some(a) => shape[a],
    };
    if red_len == 0 {
        return Err(CoreError::Shape {
            op: name,
            detail: format!(
                "attempt to get {} of an empty sequence (shape {})",
                name,
                fmt_shape(shape)
            ),
        });
    }
    let o = match out {
        Tensor::I64(o) => o,
        _ => unreachable_dtype(name)?,
    };
    let os = o.as_slice_mut().ok_or_else(|| not_contiguous(name))?;
    if os.is_empty() {
        return Ok(());
    }
    crate::match_tensor!(TensorView, x, a => arg_typed(is_max, a.view(), axis, os));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// validation helpers

fn check_axes(name: &'static str, axes: &[usize], ndim: usize) -> Result<()> {
    if let Some(&bad) = axes.iter().find(|&&a| a >= ndim) {
        return Err(CoreError::Index {
            op: name,
            detail: format!(
                "axis {} is out of bounds for an array of dimension {}",
                bad, ndim
            ),
        });
    }
    if axes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(CoreError::Index {
            op: name,
            detail: format!("axes {:?} must be sorted and unique", axes),
        });
    }
    Ok(())
}

fn check_out(name: &'static str, out: &Tensor, kept: &[usize]) -> Result<()> {
    let want: usize = kept.iter().product();
    if out.len() != want {
        return Err(CoreError::Shape {
            op: name,
            detail: format!(
                "out has shape {} but the result has shape {}",
                fmt_shape(out.shape()),
                fmt_shape(kept)
            ),
        });
    }
    let contiguous = crate::match_tensor!(Tensor, out, o => o.is_standard_layout());
    if !contiguous {
        return Err(not_contiguous(name));
    }
    Ok(())
}

fn not_contiguous(name: &'static str) -> CoreError {
    CoreError::Shape {
        op: name,
        detail: "out must be contiguous (row-major)".into(),
    }
}

fn unreachable_dtype<T>(name: &'static str) -> Result<T> {
    Err(CoreError::DType {
        op: name,
        dtype: DType::Bool,
        detail: "internal dtype mismatch".into(),
    })
}

// ---------------------------------------------------------------------------------------
// element operations

/// What the reduction kernels need from an element type. Integer `exp_inplace`/`ln_`/`div_count` are
/// never called (Mean and LogSumExp reject ints before dispatch). Shared with the softmax
/// kernels.
pub(crate) trait RElem: Element {
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
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
#[inline(always)]
fn avx2_ok() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::kernels::simd::{level, SimdLevel};
        matches!(level(), SimdLevel::Avx2Fma | SimdLevel::Avx512)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
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
            fn add(self, o: Self) -> Self {
                self + o
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                self - o
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self * o
            }
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
            #[inline(always)]
            fn slice_max(x: &[Self]) -> Self {
                #[cfg(target_arch = "x86_64")]
                if avx2_ok() && !x.is_empty() {
                    // SAFETY: AVX2+FMA checked at run time; x is non-empty.
                    return unsafe { x86::$max(x) };
                }
                match x.first() {
                    Some(&f) => fold_lanes(x, f, vmax, vmax),
                    None => <$t>::NEG_INFINITY,
                }
            }
            #[inline(always)]
            fn slice_min(x: &[Self]) -> Self {
                #[cfg(target_arch = "x86_64")]
                if avx2_ok() && !x.is_empty() {
                    // SAFETY: AVX2+FMA checked at run time; x is non-empty.
                    return unsafe { x86::$min(x) };
                }
                match x.first() {
                    Some(&f) => fold_lanes(x, f, vmin, vmin),
                    None => <$t>::INFINITY,
                }
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
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
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

/// NaN-propagating max: a NaN operand wins (the first NaN seen stays).
#[inline(always)]
#[allow(clippy::eq_op)]
fn vmax<T: Element>(acc: T, x: T) -> T {
    if (x > acc) | (x != x) {
        x
    } else {
        acc
    }
}

/// NaN-propagating min.
#[inline(always)]
#[allow(clippy::eq_op)]
fn vmin<T: Element>(acc: T, x: T) -> T {
    if (x < acc) | (x != x) {
        x
    } else {
        acc
    }
}

/// The elementary folds every reduction is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Basic {
    Sum,
    Prod,
    Max,
    Min,
    /// Σ exp(x − shift)
    SumExp,
}

impl Basic {
    #[inline(always)]
    fn combine<T: RElem>(self, a: T, b: T) -> T {
        match self {
            Basic::Sum | Basic::SumExp => a.add(b),
            Basic::Prod => a.mul(b),
            Basic::Max => vmax(a, b),
            Basic::Min => vmin(a, b),
        }
    }
}

// ---------------------------------------------------------------------------------------
// contiguous 1-D kernels

/// Folds `x` with `f` into `LANES` independent accumulators started at `init`, then combines
/// them (and the tail) with `c`.
#[inline(always)]
fn fold_lanes<T: RElem>(
    x: &[T],
    init: T,
    f: impl Fn(T, T) -> T + Copy,
    c: impl Fn(T, T) -> T + Copy,
) -> T {
    let mut acc = [init; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for ch in &mut chunks {
        for j in 0..LANES {
            acc[j] = f(acc[j], ch[j]);
        }
    }
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for j in 0..w {
            acc[j] = c(acc[j], acc[j + w]);
        }
    }
    let mut r = acc[0];
    for &v in chunks.remainder() {
        r = f(r, v);
    }
    r
}

/// Pairwise Σ of a slice (SIMD leaves on x86-64), for other kernels of this crate.
#[inline(always)]
pub(crate) fn sum_slice<T: RElem>(x: &[T]) -> T {
    sum_pairwise(x)
}

/// NaN-propagating max of a non-empty slice (SIMD on x86-64), for other kernels.
#[inline(always)]
pub(crate) fn max_slice<T: RElem>(x: &[T]) -> T {
    T::slice_max(x)
}

/// Pairwise Σ: [`RElem::leaf_sum`] over `LEAF`-sized leaves, merged by a [`Cascade`].
#[inline(always)]
fn sum_pairwise<T: RElem>(x: &[T]) -> T {
    let add = |a: T, v: T| a.add(v);
    let mut cas = Cascade::new(T::zero());
    let mut rest = x;
    while !rest.is_empty() {
        let (leaf, tail) = rest.split_at(rest.len().min(LEAF));
        cas.push(T::leaf_sum(leaf), add);
        rest = tail;
    }
    cas.finish(add)
}

/// Merges partial results pairwise, in order (binary-counter cascade).
struct Cascade<T> {
    /// (level, value); a level-k entry covers 2^k parts. 64 levels cover any count.
    stack: [(u32, T); 64],
    top: usize,
    empty: T,
}

impl<T: Copy> Cascade<T> {
    #[inline(always)]
    fn new(empty: T) -> Self {
        Cascade {
            stack: [(0, empty); 64],
            top: 0,
            empty,
        }
    }

    #[inline(always)]
    fn push(&mut self, p: T, c: impl Fn(T, T) -> T) {
        let mut cur = (0u32, p);
        while self.top > 0 && self.stack[self.top - 1].0 == cur.0 {
            self.top -= 1;
            cur = (cur.0 + 1, c(self.stack[self.top].1, cur.1));
        }
        if self.top < self.stack.len() {
            self.stack[self.top] = cur;
            self.top += 1;
        }
    }

    #[inline(always)]
    fn finish(&self, c: impl Fn(T, T) -> T) -> T {
        if self.top == 0 {
            return self.empty;
        }
        let mut acc = self.stack[self.top - 1].1;
        for k in (0..self.top - 1).rev() {
            acc = c(self.stack[k].1, acc);
        }
        acc
    }
}

multiversion! {
    /// One basic fold over a non-empty slice (for Max/Min) or any slice (Sum, Prod, SumExp).
    fn fold_basic<T: RElem>(b: Basic, x: &[T], shift: T) -> T => fold_basic_impl
}

#[inline(always)]
fn fold_basic_impl<T: RElem>(b: Basic, x: &[T], shift: T) -> T {
    match b {
        Basic::Sum => sum_pairwise(x),
        Basic::Prod => fold_lanes(x, T::one(), |a, v| a.mul(v), |a, v| a.mul(v)),
        Basic::Max => T::slice_max(x),
        Basic::Min => T::slice_min(x),
        Basic::SumExp => sum_exp_pairwise(x, shift),
    }
}

/// Σ exp(x − shift), pairwise over `LEAF`-sized leaves, each exponentiated with the
/// vectorized `exp` into a stack buffer.
#[inline(always)]
fn sum_exp_pairwise<T: RElem>(x: &[T], shift: T) -> T {
    let mut buf = [T::zero(); LEAF];
    let add = |a: T, v: T| a.add(v);
    let mut cas = Cascade::new(T::zero());
    let mut rest = x;
    while !rest.is_empty() {
        let (leaf, tail) = rest.split_at(rest.len().min(LEAF));
        let b = &mut buf[..leaf.len()];
        for (d, &v) in b.iter_mut().zip(leaf) {
            *d = v.sub(shift);
        }
        T::exp_inplace(b);
        cas.push(T::leaf_sum(b), add);
        rest = tail;
    }
    cas.finish(add)
}

/// A full `op` reduction of one non-empty row.
fn row_value<T: RElem>(op: ReduceOp, x: &[T]) -> T {
    match op {
        ReduceOp::Sum => fold_basic(Basic::Sum, x, T::zero()),
        ReduceOp::Mean => fold_basic(Basic::Sum, x, T::zero()).div_count(x.len()),
        ReduceOp::Max => fold_basic(Basic::Max, x, T::zero()),
        ReduceOp::Min => fold_basic(Basic::Min, x, T::zero()),
        ReduceOp::Prod => fold_basic(Basic::Prod, x, T::zero()),
        ReduceOp::LogSumExp => {
            let m = fold_basic(Basic::Max, x, T::zero()).finite_or_zero();
            m.add(fold_basic(Basic::SumExp, x, m).ln_())
        }
    }
}

/// A basic fold of a long slice, split into chunks across threads when large; partials are
/// combined in chunk order.
fn fold_basic_par<T: RElem>(b: Basic, x: &[T], shift: T, nt: usize) -> T {
    if nt <= 1 || x.len() < PAR_MIN {
        return fold_basic(b, x, shift);
    }
    let chunk = x.len().div_ceil(nt * 2).div_ceil(LEAF) * LEAF;
    let parts: Vec<T> = x
        .par_chunks(chunk)
        .map(|c| fold_basic(b, c, shift))
        .collect();
    let mut it = parts.into_iter();
    let first = it.next().unwrap_or_else(|| fold_basic(b, &[], shift));
    it.fold(first, |a, v| b.combine(a, v))
}

/// `row_value` for one long row, threaded.
fn row_value_par<T: RElem>(op: ReduceOp, x: &[T], nt: usize) -> T {
    match op {
        ReduceOp::Sum => fold_basic_par(Basic::Sum, x, T::zero(), nt),
        ReduceOp::Mean => fold_basic_par(Basic::Sum, x, T::zero(), nt).div_count(x.len()),
        ReduceOp::Max => fold_basic_par(Basic::Max, x, T::zero(), nt),
        ReduceOp::Min => fold_basic_par(Basic::Min, x, T::zero(), nt),
        ReduceOp::Prod => fold_basic_par(Basic::Prod, x, T::zero(), nt),
        ReduceOp::LogSumExp => {
            let m = fold_basic_par(Basic::Max, x, T::zero(), nt).finite_or_zero();
            m.add(fold_basic_par(Basic::SumExp, x, m, nt).ln_())
        }
    }
}

// ---------------------------------------------------------------------------------------
// column kernel: acc[j] = fold over rows i of slab[i * stride + j]

/// `dst[j] = b(dst[j], row[j])` (with `row` replaced by `exp(row - shift)` for SumExp).
#[inline(always)]
fn combine_row<T: RElem>(b: Basic, dst: &mut [T], row: &[T]) {
    match b {
        Basic::Sum | Basic::SumExp => dst.iter_mut().zip(row).for_each(|(d, &v)| *d = d.add(v)),
        Basic::Prod => dst.iter_mut().zip(row).for_each(|(d, &v)| *d = d.mul(v)),
        Basic::Max => dst.iter_mut().zip(row).for_each(|(d, &v)| *d = vmax(*d, v)),
        Basic::Min => dst.iter_mut().zip(row).for_each(|(d, &v)| *d = vmin(*d, v)),
    }
}

multiversion! {
    /// Folds rows `rows` of a row-major slab (row stride `stride`), columns `c0 .. c0 +
    /// acc.len()`, into `acc` (overwritten). `shift` (same length as `acc`) is used by SumExp.
    fn col_block<T: RElem>(
        b: Basic,
        slab: &[T],
        stride: usize,
        rows: std::ops::Range<usize>,
        c0: usize,
        acc: &mut [T],
        shift: &[T],
    ) -> () => col_block_impl
}

#[inline(always)]
fn col_block_impl<T: RElem>(
    b: Basic,
    slab: &[T],
    stride: usize,
    rows: std::ops::Range<usize>,
    c0: usize,
    acc: &mut [T],
    shift: &[T],
) {
    let w = acc.len();
    let row = |i: usize| &slab[i * stride + c0..i * stride + c0 + w];
    if rows.is_empty() {
        let init = match b {
            Basic::Prod => T::one(),
            _ => T::zero(),
        };
        acc.fill(init);
        return;
    }
    let mut expbuf: Vec<T> = if b == Basic::SumExp {
        vec![T::zero(); w]
    } else {
        Vec::new()
    };
    let exp_row = |i: usize, buf: &mut [T]| {
        for ((e, &v), &s) in buf.iter_mut().zip(row(i)).zip(shift) {
            *e = v.sub(s);
        }
        T::exp_inplace(buf);
    };
    match b {
        Basic::Sum | Basic::SumExp => {
            // Cascade summation: blocks of ROW_BLOCK rows are summed into a scratch row, and
            // block sums are merged like a binary counter (a pairwise tree built on the fly),
            // so the error grows like (ROW_BLOCK + log2(rows / ROW_BLOCK)) ε, not rows·ε.
            let mut stack: Vec<(u32, Vec<T>)> = Vec::new();
            let mut pool: Vec<Vec<T>> = Vec::new();
            let mut i = rows.start;
            while i < rows.end {
                let end = (i + ROW_BLOCK).min(rows.end);
                let mut tmp = pool.pop().unwrap_or_else(|| vec![T::zero(); w]);
                if b == Basic::SumExp {
                    exp_row(i, &mut expbuf);
                    tmp.copy_from_slice(&expbuf);
                } else {
                    tmp.copy_from_slice(row(i));
                }
                for r in i + 1..end {
                    if b == Basic::SumExp {
                        exp_row(r, &mut expbuf);
                        combine_row(Basic::Sum, &mut tmp, &expbuf);
                    } else {
                        combine_row(Basic::Sum, &mut tmp, row(r));
                    }
                }
                let mut cur = (0u32, tmp);
                while stack.last().is_some_and(|t| t.0 == cur.0) {
                    let Some((lvl, mut t)) = stack.pop() else {
                        break;
                    };
                    combine_row(Basic::Sum, &mut t, &cur.1);
                    pool.push(cur.1);
                    cur = (lvl + 1, t);
                }
                stack.push(cur);
                i = end;
            }
            let mut parts = stack.into_iter().rev();
            if let Some((_, first)) = parts.next() {
                acc.copy_from_slice(&first);
                for (_, p) in parts {
                    combine_row(Basic::Sum, acc, &p);
                }
            }
        }
        _ => {
            acc.copy_from_slice(row(rows.start));
            for r in rows.start + 1..rows.end {
                combine_row(b, acc, row(r));
            }
        }
    }
}

/// Folds an `(outer, r, inner)` contiguous array over `r` into `out` (`outer * inner`),
/// threaded over (outer, column block) tasks, or over row ranges when there are too few.
#[allow(clippy::too_many_arguments)]
fn cols_basic<T: RElem>(
    b: Basic,
    data: &[T],
    outer: usize,
    r: usize,
    inner: usize,
    out: &mut [T],
    shift: &[T],
    nt: usize,
) {
    let slab_len = r * inner;
    let big = nt > 1 && data.len() >= PAR_MIN;
    let tasks = outer * inner.div_ceil(COL_BLOCK);
    let shift_of = |o: usize, c0: usize, w: usize| -> &[T] {
        if shift.is_empty() {
            &[]
        } else {
            &shift[o * inner + c0..o * inner + c0 + w]
        }
    };
    if big && tasks < nt && outer == 1 && r >= 4 * nt {
        // Few columns, many rows: each thread folds a range of rows, partials combined in order.
        let nparts = nt.min(r);
        let per = r.div_ceil(nparts);
        let parts: Vec<Vec<T>> = (0..nparts)
            .into_par_iter()
            .map(|p| {
                let rows = (p * per).min(r)..((p + 1) * per).min(r);
                let mut acc = vec![T::zero(); inner];
                for (bi, blk) in acc.chunks_mut(COL_BLOCK).enumerate() {
                    let c0 = bi * COL_BLOCK;
                    col_block(
                        b,
                        data,
                        inner,
                        rows.clone(),
                        c0,
                        blk,
                        shift_of(0, c0, blk.len()),
                    );
                }
                acc
            })
            .collect();
        let mut it = parts.into_iter();
        if let Some(first) = it.next() {
            out.copy_from_slice(&first);
            for p in it {
                let cb = if b == Basic::SumExp { Basic::Sum } else { b };
                combine_row(cb, out, &p);
            }
        }
        return;
    }
    let work = |o: usize, bi: usize, blk: &mut [T]| {
        let c0 = bi * COL_BLOCK;
        let slab = &data[o * slab_len..(o + 1) * slab_len];
        col_block(b, slab, inner, 0..r, c0, blk, shift_of(o, c0, blk.len()));
    };
    if big && tasks >= 2 {
        out.par_chunks_mut(inner).enumerate().for_each(|(o, orow)| {
            orow.par_chunks_mut(COL_BLOCK)
                .enumerate()
                .for_each(|(bi, blk)| work(o, bi, blk));
        });
    } else {
        for (o, orow) in out.chunks_mut(inner).enumerate() {
            for (bi, blk) in orow.chunks_mut(COL_BLOCK).enumerate() {
                work(o, bi, blk);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// drivers

/// Merges adjacent axes of the same kind (dropping length-1 axes) and returns
/// `(outer, r, inner)` when the reduced axes form one block.
fn as_triple(shape: &[usize], red: &[bool]) -> Option<(usize, usize, usize)> {
    let mut groups: Vec<(usize, bool)> = Vec::new();
    for (&d, &rd) in shape.iter().zip(red) {
        if d == 1 {
            continue;
        }
        match groups.last_mut() {
            Some(g) if g.1 == rd => g.0 *= d,
            _ => groups.push((d, rd)),
        }
    }
    let kinds: Vec<bool> = groups.iter().map(|g| g.1).collect();
    let len = |i: usize| groups[i].0;
    Some(match kinds.as_slice() {
        [] => (1, 1, 1),
        [false] => (len(0), 1, 1),
        [true] => (1, len(0), 1),
        [false, true] => (len(0), len(1), 1),
        [true, false] => (1, len(0), len(1)),
        [false, true, false] => (len(0), len(1), len(2)),
        _ => return None,
    })
}

/// Reduces contiguous `data` of logical `(outer, r, inner)` into `out`.
fn reduce_triple<T: RElem>(
    op: ReduceOp,
    data: &[T],
    (outer, r, inner): (usize, usize, usize),
    out: &mut [T],
) {
    let nt = max_threads();
    let big = nt > 1 && data.len() >= PAR_MIN;
    if inner == 1 {
        if outer == 1 {
            out[0] = row_value_par(op, data, nt);
        } else if big && outer >= nt {
            let per = outer.div_ceil(nt * 4).max(1);
            out.par_chunks_mut(per)
                .zip(data.par_chunks(per * r))
                .for_each(|(o, d)| {
                    for (ov, row) in o.iter_mut().zip(d.chunks_exact(r)) {
                        *ov = row_value(op, row);
                    }
                });
        } else {
            for (ov, row) in out.iter_mut().zip(data.chunks_exact(r)) {
                *ov = if big {
                    row_value_par(op, row, nt)
                } else {
                    row_value(op, row)
                };
            }
        }
        return;
    }
    match op {
        ReduceOp::Sum => cols_basic(Basic::Sum, data, outer, r, inner, out, &[], nt),
        ReduceOp::Prod => cols_basic(Basic::Prod, data, outer, r, inner, out, &[], nt),
        ReduceOp::Max => cols_basic(Basic::Max, data, outer, r, inner, out, &[], nt),
        ReduceOp::Min => cols_basic(Basic::Min, data, outer, r, inner, out, &[], nt),
        ReduceOp::Mean => {
            cols_basic(Basic::Sum, data, outer, r, inner, out, &[], nt);
            out.iter_mut().for_each(|v| *v = v.div_count(r));
        }
        ReduceOp::LogSumExp => {
            cols_basic(Basic::Max, data, outer, r, inner, out, &[], nt);
            let shift: Vec<T> = out.iter().map(|m| m.finite_or_zero()).collect();
            cols_basic(Basic::SumExp, data, outer, r, inner, out, &shift, nt);
            for (o, &m) in out.iter_mut().zip(&shift) {
                *o = m.add(o.ln_());
            }
        }
    }
}

/// If `x` is a permutation of a row-major array (positive strides) whose memory order keeps
/// the kept axes in their logical order, its memory slice and the permuted shape/flags.
fn memory_order<'a, T: Element>(
    x: &ArrayViewD<'a, T>,
    red: &[bool],
) -> Option<(&'a [T], Vec<usize>, Vec<bool>)> {
    let x2 = x.clone();
    let data: &'a [T] = x2.to_slice_memory_order()?;
    let mut order: Vec<usize> = (0..x.ndim()).filter(|&a| x.shape()[a] != 1).collect();
    if order.iter().any(|&a| x.strides()[a] <= 0) {
        return None;
    }
    order.sort_by_key(|&a| std::cmp::Reverse(x.strides()[a]));
    let kept: Vec<usize> = order.iter().copied().filter(|&a| !red[a]).collect();
    if kept.windows(2).any(|w| w[0] > w[1]) {
        return None;
    }
    let shape = order.iter().map(|&a| x.shape()[a]).collect();
    let flags = order.iter().map(|&a| red[a]).collect();
    Some((data, shape, flags))
}

/// Copies `x` into a row-major `(kept..., reduced...)` buffer.
fn copy_kept_first<T: Element>(x: &ArrayViewD<T>, red: &[bool]) -> Vec<T> {
    let mut perm: Vec<usize> = (0..x.ndim()).filter(|&a| !red[a]).collect();
    perm.extend((0..x.ndim()).filter(|&a| red[a]));
    let p = x.clone().permuted_axes(IxDyn(&perm));
    p.iter().copied().collect()
}

fn reduce_typed<T: RElem>(
    op: ReduceOp,
    x: ArrayViewD<T>,
    axes: &[usize],
    out: &mut ArrayD<T>,
) -> Result<()> {
    let name = op.name();
    let shape = x.shape().to_vec();
    let red: Vec<bool> = (0..shape.len()).map(|a| axes.contains(&a)).collect();
    let n_red: usize = axes.iter().map(|&a| shape[a]).product();
    let o = out.as_slice_mut().ok_or_else(|| not_contiguous(name))?;
    if n_red == 0 {
        let fill = match op {
            ReduceOp::Max | ReduceOp::Min => {
                return Err(CoreError::Shape {
                    op: name,
                    detail: format!(
                        "zero-size array to reduction operation {} which has no identity (shape {}, axes {:?})",
                        name,
                        fmt_shape(&shape),
                        axes
                    ),
                })
            }
            ReduceOp::Sum => T::zero(),
            ReduceOp::Prod => T::one(),
            ReduceOp::Mean => T::nan(),
            ReduceOp::LogSumExp => T::neg_inf(),
        };
        o.fill(fill);
        return Ok(());
    }
    if o.is_empty() {
        return Ok(());
    }
    if let Some(data) = x.as_slice() {
        if let Some(t) = as_triple(&shape, &red) {
            reduce_triple(op, data, t, o);
            return Ok(());
        }
    } else if let Some((data, pshape, pred)) = memory_order(&x, &red) {
        if let Some(t) = as_triple(&pshape, &pred) {
            reduce_triple(op, data, t, o);
            return Ok(());
        }
    }
    if let Some(data) = x.as_slice() {
        // Non-adjacent axes of a contiguous array (e.g. (0, 2, 3) of NCHW: a conv bias
        // gradient): reduce the last run of reduced axes in place-order first, then the rest.
        // Every op here is decomposable (a mean of equal-size means is the mean; logsumexp
        // of logsumexps is the logsumexp), and both passes are contiguous.
        let hi = *axes.last().expect("n_red > 0 implies axes");
        let mut lo = hi;
        while lo > 0 && red[lo - 1] {
            lo -= 1;
        }
        let outer: usize = shape[..lo].iter().product();
        let r: usize = shape[lo..=hi].iter().product();
        let inner: usize = shape[hi + 1..].iter().product();
        let mut tmp = vec![T::zero(); outer * inner];
        reduce_triple(op, data, (outer, r, inner), &mut tmp);
        let mut rest_shape = shape[..lo].to_vec();
        rest_shape.extend_from_slice(&shape[hi + 1..]);
        let rest_axes: Vec<usize> = axes.iter().copied().filter(|&a| a < lo).collect();
        let tv = ArrayViewD::from_shape(IxDyn(&rest_shape), &tmp[..]).map_err(|_| not_contiguous(name))?;
        return reduce_typed(op, tv, &rest_axes, out);
    }
    let buf = copy_kept_first(&x, &red);
    reduce_triple(op, &buf, (o.len(), n_red, 1), o);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// arg reductions

/// True when `v` should replace the current best `b` (strictly better, or the first NaN).
#[inline(always)]
#[allow(clippy::eq_op)]
fn arg_better<T: Element>(is_max: bool, v: T, b: T) -> bool {
    let nan_new = v != v && b == b;
    if is_max {
        v > b || nan_new
    } else {
        v < b || nan_new
    }
}

/// (index, value) of the extreme of a non-empty iterator; first occurrence wins.
#[inline(always)]
fn arg_iter<T: Element>(is_max: bool, mut it: impl Iterator<Item = T>) -> (usize, T) {
    let mut best = match it.next() {
        Some(v) => v,
        None => return (0, T::zero()),
    };
    let mut bi = 0usize;
    for (i, v) in it.enumerate() {
        if arg_better(is_max, v, best) {
            best = v;
            bi = i + 1;
        }
    }
    (bi, best)
}

fn arg_typed<T: Element>(is_max: bool, x: ArrayViewD<T>, axis: Option<usize>, out: &mut [i64]) {
    let nt = max_threads();
    let big = nt > 1 && x.len() >= PAR_MIN;
    match axis {
        None => {
            out[0] = match x.as_slice() {
                Some(d) if big => {
                    let chunk = d.len().div_ceil(nt * 2);
                    let parts: Vec<(usize, T)> = d
                        .par_chunks(chunk)
                        .enumerate()
                        .map(|(ci, c)| {
                            let (i, v) = arg_iter(is_max, c.iter().copied());
                            (ci * chunk + i, v)
                        })
                        .collect();
                    let mut best = parts[0];
                    for &p in &parts[1..] {
                        if arg_better(is_max, p.1, best.1) {
                            best = p;
                        }
                    }
                    best.0 as i64
                }
                Some(d) => arg_iter(is_max, d.iter().copied()).0 as i64,
                None => arg_iter(is_max, x.iter().copied()).0 as i64,
            };
        }
        Some(ax) => {
            let shape = x.shape();
            let r = shape[ax];
            let outer: usize = shape[..ax].iter().product();
            let inner: usize = shape[ax + 1..].iter().product();
            match x.as_slice() {
                Some(d) if inner == 1 => {
                    let f = |o: &mut [i64], rows: &[T]| {
                        for (ov, row) in o.iter_mut().zip(rows.chunks_exact(r)) {
                            *ov = arg_iter(is_max, row.iter().copied()).0 as i64;
                        }
                    };
                    if big && outer >= nt {
                        let per = outer.div_ceil(nt * 4).max(1);
                        out.par_chunks_mut(per)
                            .zip(d.par_chunks(per * r))
                            .for_each(|(o, rows)| f(o, rows));
                    } else {
                        f(out, d);
                    }
                }
                Some(d) => {
                    // columns: track best value/index per output element, rows streaming by
                    let f = |o: usize, oi: &mut [i64]| {
                        let slab = &d[o * r * inner..(o + 1) * r * inner];
                        let mut best: Vec<T> = slab[..inner].to_vec();
                        oi.fill(0);
                        for i in 1..r {
                            let row = &slab[i * inner..(i + 1) * inner];
                            for ((b, bi), &v) in best.iter_mut().zip(oi.iter_mut()).zip(row) {
                                if arg_better(is_max, v, *b) {
                                    *b = v;
                                    *bi = i as i64;
                                }
                            }
                        }
                    };
                    if big && outer >= 2 {
                        out.par_chunks_mut(inner)
                            .enumerate()
                            .for_each(|(o, oi)| f(o, oi));
                    } else {
                        for (o, oi) in out.chunks_mut(inner).enumerate() {
                            f(o, oi);
                        }
                    }
                }
                None => {
                    for (ov, lane) in out.iter_mut().zip(x.lanes(Axis(ax))) {
                        *ov = arg_iter(is_max, lane.iter().copied()).0 as i64;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triples() {
        assert_eq!(
            as_triple(&[2, 3, 4], &[false, true, false]),
            Some((2, 3, 4))
        );
        assert_eq!(as_triple(&[2, 3, 4], &[true, true, false]), Some((1, 6, 4)));
        assert_eq!(
            as_triple(&[2, 1, 4], &[false, true, false]),
            Some((8, 1, 1))
        );
        assert_eq!(as_triple(&[2, 3, 4], &[true, false, true]), None);
        assert_eq!(as_triple(&[], &[]), Some((1, 1, 1)));
    }

    #[test]
    fn pairwise_sum_is_accurate() {
        let n = 10_000_000usize;
        let x = vec![0.1f32; n];
        let s = fold_basic_par(Basic::Sum, &x, 0.0, 2) as f64;
        let exact = 0.1f32 as f64 * n as f64;
        assert!((s - exact).abs() / exact < 1e-6, "{s} vs {exact}");
    }

    #[test]
    fn nan_rules() {
        let x = [1.0f32, f32::NAN, 5.0, f32::NAN];
        assert!(fold_basic(Basic::Max, &x, 0.0).is_nan());
        assert!(fold_basic(Basic::Min, &x, 0.0).is_nan());
        assert_eq!(arg_iter(true, x.iter().copied()).0, 1);
        assert_eq!(arg_iter(false, x.iter().copied()).0, 1);
        assert_eq!(arg_iter(true, [3, 7, 7, 1].iter().copied()).0, 1);
    }
}
