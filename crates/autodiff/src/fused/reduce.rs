//! A fused elementwise tree reduced by the sum or mean that consumes it, in one pass:
//! `sum(x * x)` or `mean((y - t) ** 2)` read their operands once and never write the
//! elementwise values anywhere but the L1-sized block registers.
//!
//! The reduction runs over *rows*: `row_len` consecutive elements of the expression (its last
//! axes) fold into one output element; a full reduction is one row. Each block of a row is
//! summed with 16 independent lanes and the block sums are merged pairwise, so the rounding
//! error grows like that of a pairwise sum (`O(log n)`), as core's unfused reductions do.
//! Long single rows are split across threads; many rows are spread over threads by rows. The
//! block sums merge through core's [`Cascade`], as core's own reductions do.

use super::{eval_block, sources, FusedExpr, Scratch, Src, BLOCK};
use crate::error::{Error, Result};
use gorgon_core::kernels::reduce::Cascade;
use gorgon_core::kernels::simd::{self, SimdLevel};
use gorgon_core::kernels::threads;
use gorgon_core::kernels::vmath::VMath;
use gorgon_core::{Float, Tensor, TensorView};
use rayon::prelude::*;

/// The fold of a fused reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowFold {
    /// Σ over each row.
    Sum,
    /// Σ / row length over each row.
    Mean,
}

/// A single row at least this long is split across threads.
const PAR_ROW: usize = 1 << 17;

/// `out[r] = fold(expr over elements [r·row_len, (r+1)·row_len))` for every element `r` of
/// `out` (float32/float64, contiguous); the expression's full operands hold
/// `out.len() · row_len` elements.
///
/// ```
/// use gorgon_autodiff::fused::{FusedExpr, Step, reduce::{eval, RowFold}};
/// use gorgon_core::kernels::elementwise::BinaryOp;
/// use gorgon_core::{DType, Tensor};
/// // Σ x·x over rows of 3
/// let e = FusedExpr { steps: vec![Step::Input(0), Step::Binary(BinaryOp::Mul, 0, 0)] };
/// let x = Tensor::from_vec_f64(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
/// let mut out = Tensor::zeros(DType::F64, &[2]);
/// eval(&e, RowFold::Sum, 3, &[x.view()], &mut out).unwrap();
/// assert_eq!(out.to_vec_f64(), vec![14.0, 77.0]);
/// ```
pub fn eval(expr: &FusedExpr, fold: RowFold, row_len: usize, ins: &[TensorView], out: &mut Tensor) -> Result<()> {
    match out {
        Tensor::F32(_) => eval_t::<f32>(expr, fold, row_len, ins, out),
        Tensor::F64(_) => eval_t::<f64>(expr, fold, row_len, ins, out),
        other => Err(Error::DType(format!("fused reduction: unsupported dtype {}", other.dtype()))),
    }
}

fn eval_t<T: Float + VMath + Scratch>(expr: &FusedExpr, fold: RowFold, row_len: usize, ins: &[TensorView], out: &mut Tensor) -> Result<()> {
    let rows = out.len();
    let n = rows.checked_mul(row_len).ok_or_else(|| Error::Internal("fused reduction: size overflows".into()))?;
    // Operands are full-size or single elements here (the compiler fuses no broadcast
    // operand into a reduction), so the expression is seen as one flat row of `n`.
    let srcs = sources::<T>(expr, ins, &[n])?;
    let o = T::tensor_mut(out).and_then(|a| a.as_slice_mut()).ok_or_else(|| Error::Internal("fused reduction: output is not contiguous".into()))?;
    let regs_len = expr.steps.len() * BLOCK;
    let level = simd::level();
    if rows == 1 && row_len >= PAR_ROW && threads::num_threads() > 1 {
        let parts = threads::split_count(row_len, PAR_ROW / 2).max(1);
        let piece = row_len.div_ceil(parts).div_ceil(BLOCK) * BLOCK;
        let partials: Vec<T> = (0..row_len.div_ceil(piece))
            .into_par_iter()
            .map(|p| {
                let at = p * piece;
                T::with(regs_len, |regs| sum_range(level, expr, &srcs, at, piece.min(row_len - at), regs))
            })
            .collect();
        o[0] = partials.into_iter().fold(T::zero(), |a, b| a + b);
    } else {
        let min_rows = (32 * 1024 / row_len.max(1)).max(1);
        threads::par_chunks_mut(o, min_rows, |r0, chunk| {
            T::with(regs_len, |regs| {
                for (i, d) in chunk.iter_mut().enumerate() {
                    *d = sum_range(level, expr, &srcs, (r0 + i) * row_len, row_len, regs);
                }
            })
        });
    }
    if fold == RowFold::Mean {
        // 0 / 0 = NaN for empty rows, as NumPy's mean.
        let div = T::from_f64(row_len as f64);
        o.iter_mut().for_each(|v| *v = *v / div);
    }
    Ok(())
}

/// Σ of the expression over elements `[at, at + len)`, at the given SIMD level.
fn sum_range<T: Float + VMath>(level: SimdLevel, expr: &FusedExpr, srcs: &[Src<T>], at: usize, len: usize, regs: &mut [T]) -> T {
    #[cfg(target_arch = "x86_64")]
    if matches!(level, SimdLevel::Avx2Fma | SimdLevel::Avx512) {
        // SAFETY: the level is only reported when the CPU has AVX2 and FMA.
        return unsafe { sum_range_avx2(expr, srcs, at, len, regs) };
    }
    let _ = level;
    sum_range_impl(expr, srcs, at, len, regs)
}

/// [`sum_range_impl`] compiled for AVX2+FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sum_range_avx2<T: Float + VMath>(expr: &FusedExpr, srcs: &[Src<T>], at: usize, len: usize, regs: &mut [T]) -> T {
    sum_range_impl(expr, srcs, at, len, regs)
}

#[inline(always)]
fn sum_range_impl<T: Float + VMath>(expr: &FusedExpr, srcs: &[Src<T>], at: usize, len: usize, regs: &mut [T]) -> T {
    let last = (expr.steps.len() - 1) * BLOCK;
    let add = |a: T, b: T| a + b;
    let mut cascade = Cascade::new(T::zero());
    let mut off = 0;
    while off < len {
        let l = BLOCK.min(len - off);
        eval_block(expr, srcs, at + off, l, regs, None);
        cascade.push(lane_sum(&regs[last..last + l]), add);
        off += l;
    }
    cascade.finish(add)
}

/// Σ of a block with 16 independent accumulators (vectorizes; no loop-carried dependency
/// longer than one add per 16 elements).
#[inline(always)]
fn lane_sum<T: Float>(x: &[T]) -> T {
    const L: usize = 16;
    let mut acc = [T::zero(); L];
    let mut chunks = x.chunks_exact(L);
    for c in &mut chunks {
        for j in 0..L {
            acc[j] = acc[j] + c[j];
        }
    }
    let mut w = L;
    while w > 1 {
        w /= 2;
        for j in 0..w {
            acc[j] = acc[j] + acc[j + w];
        }
    }
    chunks.remainder().iter().fold(acc[0], |a, &v| a + v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::Step;
    use gorgon_core::kernels::elementwise::{BinaryOp, UnaryOp};
    use gorgon_core::DType;

    fn data(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
            })
            .collect()
    }

    /// tanh(a·b + c) with a scalar c.
    fn expr() -> FusedExpr {
        FusedExpr {
            steps: vec![
                Step::Input(0),
                Step::Input(1),
                Step::Binary(BinaryOp::Mul, 0, 1),
                Step::Input(2),
                Step::Binary(BinaryOp::Add, 2, 3),
                Step::Unary(UnaryOp::Tanh, 4),
            ],
        }
    }

    fn check(rows: usize, row_len: usize, fold: RowFold) {
        let n = rows * row_len;
        let (a, b) = (data(n, 1), data(n, 2));
        let c = 0.25;
        let ta = Tensor::from_vec_f64(a.clone(), &[n]).unwrap();
        let tb = Tensor::from_vec_f64(b.clone(), &[n]).unwrap();
        let tc = Tensor::from_vec_f64(vec![c], &[]).unwrap();
        let mut out = Tensor::zeros(DType::F64, &[rows]);
        eval(&expr(), fold, row_len, &[ta.view(), tb.view(), tc.view()], &mut out).unwrap();
        let got = out.to_vec_f64();
        for r in 0..rows {
            let vals = (r * row_len..(r + 1) * row_len).map(|i| (a[i] * b[i] + c).tanh());
            let mut want: f64 = vals.sum();
            if fold == RowFold::Mean {
                want /= row_len as f64;
            }
            let tol = 1e-12 * (row_len as f64).max(1.0);
            assert!((got[r] - want).abs() <= tol, "rows {rows} len {row_len} row {r}: {} vs {want}", got[r]);
        }
    }

    #[test]
    fn rows_and_whole_arrays_match_a_plain_sum() {
        for &(rows, len) in &[(1, 1), (1, 1023), (1, 1025), (3, 7), (17, 2049), (1, 300_001), (2, 70_000), (1000, 10)] {
            check(rows, len, RowFold::Sum);
            check(rows, len, RowFold::Mean);
        }
    }

    #[test]
    fn empty_rows_sum_to_zero_and_average_to_nan() {
        let e = FusedExpr { steps: vec![Step::Input(0), Step::Unary(UnaryOp::Neg, 0)] };
        let x = Tensor::zeros(DType::F32, &[0]);
        let mut out = Tensor::zeros(DType::F32, &[2]);
        eval(&e, RowFold::Sum, 0, &[x.view()], &mut out).unwrap();
        assert_eq!(out.to_vec_f64(), vec![0.0, 0.0]);
        eval(&e, RowFold::Mean, 0, &[x.view()], &mut out).unwrap();
        assert!(out.to_vec_f64().iter().all(|v| v.is_nan()));
    }

    #[test]
    fn float32_sum_is_accurate() {
        // One million 0.1f32: a sequential f32 sum drifts by ~1%; pairwise blocks do not.
        let n = 1 << 20;
        let e = FusedExpr { steps: vec![Step::Input(0), Step::Unary(UnaryOp::Abs, 0)] };
        let x = Tensor::from_vec(vec![0.1f32; n], &[n]).unwrap();
        let mut out = Tensor::zeros(DType::F32, &[]);
        eval(&e, RowFold::Sum, n, &[x.view()], &mut out).unwrap();
        let got = out.to_vec_f64()[0];
        assert!((got - 0.1f32 as f64 * n as f64).abs() / (n as f64 * 0.1) < 1e-5, "{got}");
    }
}
