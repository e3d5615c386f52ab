//! Folds of contiguous slices: the lane folds, the pairwise (cascade) sums, and the
//! per-row values of every [`ReduceOp`], threaded for long rows.

use super::elem::RElem;
use super::{ReduceOp, LANES, LEAF, PAR_MIN};
use crate::kernels::arith::{vmax, vmin};
use rayon::prelude::*;

/// The elementary folds every reduction is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Basic {
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
pub(super) fn fold_lanes<T: RElem>(
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

/// Merges partial results pairwise, in order (a binary counter: a level-k entry covers 2^k
/// parts), so the rounding error of a sum grows with the logarithm of the number of parts.
/// Public so that other kernels summing block by block (the fused reductions of
/// `gorgon-autodiff`) round like this crate's reductions.
///
/// ```
/// use gorgon_core::kernels::reduce::Cascade;
/// let mut c = Cascade::new(0.0f32);
/// for _ in 0..1_000_000 {
///     c.push(0.1, |a, b| a + b);
/// }
/// assert!((c.finish(|a, b| a + b) - 100_000.0).abs() < 1.0);
/// ```
pub struct Cascade<T> {
    /// (level, value); a level-k entry covers 2^k parts. 64 levels cover any count.
    stack: [(u32, T); 64],
    top: usize,
    empty: T,
}

impl<T: Copy> Cascade<T> {
    /// An empty cascade; `finish` returns `empty` if nothing was pushed.
    #[inline(always)]
    pub fn new(empty: T) -> Self {
        Cascade {
            stack: [(0, empty); 64],
            top: 0,
            empty,
        }
    }

    /// Adds the next part, merging equal levels with `c`.
    #[inline(always)]
    pub fn push(&mut self, p: T, c: impl Fn(T, T) -> T) {
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

    /// Combines what is left, in order.
    #[inline(always)]
    pub fn finish(&self, c: impl Fn(T, T) -> T) -> T {
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
    pub(super) fn fold_basic<T: RElem>(b: Basic, x: &[T], shift: T) -> T => fold_basic_impl
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
pub(super) fn row_value<T: RElem>(op: ReduceOp, x: &[T]) -> T {
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
pub(super) fn fold_basic_par<T: RElem>(b: Basic, x: &[T], shift: T, nt: usize) -> T {
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
pub(super) fn row_value_par<T: RElem>(op: ReduceOp, x: &[T], nt: usize) -> T {
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
