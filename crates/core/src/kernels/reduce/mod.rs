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
use crate::kernels::checks::{check_contiguous, not_contiguous, result_shape_err};
use crate::{DType, Tensor, TensorView};

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
    ($(#[$m:meta])* $vis:vis fn $name:ident<$T:ident: $B:path>($($a:ident: $t:ty),* $(,)?) -> $r:ty => $imp:ident) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments, clippy::unused_unit)]
        $vis fn $name<$T: $B>($($a: $t),*) -> $r {
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

mod arg;
mod columns;
mod driver;
mod elem;
mod fold;

use arg::arg_typed;
use driver::reduce_typed;
pub(crate) use elem::RElem;
pub use fold::Cascade;
pub(crate) use fold::{max_slice, sum_slice};

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
        return Err(result_shape_err(name, out.shape(), kept));
    }
    check_contiguous(name, out)
}

fn unreachable_dtype<T>(name: &'static str) -> Result<T> {
    Err(CoreError::DType {
        op: name,
        dtype: DType::Bool,
        detail: "internal dtype mismatch".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::arg::arg_iter;
    use super::driver::as_triple;
    use super::fold::{fold_basic, fold_basic_par, Basic};

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
