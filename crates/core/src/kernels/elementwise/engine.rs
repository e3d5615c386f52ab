//! The strided loop engine every elementwise kernel runs on: an iteration plan that drops
//! size-1 axes and merges axes contiguous for every operand, visits the output row by row
//! (tile by tile when an operand walks its rows with a large stride) and splits it across
//! threads; plus the simple maps, compiled for the baseline and AVX2 and chosen at run time.

#[cfg(target_arch = "x86_64")]
use crate::kernels::simd::{self, SimdLevel};
use crate::kernels::threads;
use crate::error::fmt_shape;
use crate::tensor::try_alloc;
use crate::{Element, Result};
use ndarray::{ArrayD, ArrayViewD, IxDyn};

use super::shape_err;

/// Smallest piece of output handed to one thread.
pub(super) const MIN_CHUNK: usize = threads::DEFAULT_MIN_CHUNK;

/// Iteration plan for `N` input operands against a contiguous output: the output shape with
/// size-1 axes dropped and mergeable axes merged; the last axis is the inner loop.
pub(super) struct Plan<const N: usize> {
    outer_shape: Vec<usize>,
    outer_strides: Vec<[isize; N]>,
    inner: usize,
    pub(super) inner_strides: [isize; N],
    /// Visit full rows in `TILE_ROWS × TILE_COLS` tiles (an operand walks its rows with a
    /// large stride, e.g. a transpose: tiles keep its cache lines hot across rows).
    tiled: bool,
}

/// Rows per tile in tiled traversal.
const TILE_ROWS: usize = 32;
/// Columns per tile in tiled traversal.
const TILE_COLS: usize = 128;

#[allow(clippy::needless_range_loop)]
impl<const N: usize> Plan<N> {
    /// `shape` is the output shape; `strides[k]` the element strides of operand k viewed with
    /// that shape (0 on broadcast axes).
    pub(super) fn new(shape: &[usize], strides: [&[isize]; N]) -> Plan<N> {
        let mut dims: Vec<(usize, [isize; N])> = Vec::with_capacity(shape.len());
        for (ax, &d) in shape.iter().enumerate() {
            if d == 1 {
                continue;
            }
            let mut st = [0isize; N];
            for k in 0..N {
                st[k] = strides[k][ax];
            }
            if let Some(last) = dims.last_mut() {
                if (0..N).all(|k| last.1[k] == st[k].wrapping_mul(d as isize)) {
                    last.0 *= d;
                    last.1 = st;
                    continue;
                }
            }
            dims.push((d, st));
        }
        let (inner, inner_strides) = dims.pop().unwrap_or((1, [0; N]));
        let tiled = !dims.is_empty() && inner >= 2 * TILE_COLS && inner_strides.iter().any(|s| s.unsigned_abs() > 1);
        Plan {
            outer_shape: dims.iter().map(|d| d.0).collect(),
            outer_strides: dims.iter().map(|d| d.1).collect(),
            inner,
            inner_strides,
            tiled,
        }
    }

    /// Calls `f(offsets, rel, n)` for the elements `e0..e1` of the flattened output, one call
    /// per (piece of an) inner row: `offsets` are the operands' element offsets of the row's
    /// first element, `rel` its position relative to `e0`, `n` the element count.
    fn run_range(&self, e0: usize, e1: usize, f: &mut dyn FnMut([isize; N], usize, usize)) {
        if e0 >= e1 || self.inner == 0 {
            return;
        }
        let nd = self.outer_shape.len();
        let inner = self.inner;
        let mut idx = vec![0usize; nd];
        let mut rem = e0 / inner;
        let mut base = [0isize; N];
        for d in (0..nd).rev() {
            let sz = self.outer_shape[d];
            idx[d] = rem % sz;
            rem /= sz;
            for k in 0..N {
                base[k] += idx[d] as isize * self.outer_strides[d][k];
            }
        }
        let mut j = e0 % inner;
        let mut e = e0;
        // Full rows waiting to be visited tile by tile: (row offsets, position rel. to e0).
        let mut group: Vec<([isize; N], usize)> = Vec::new();
        while e < e1 {
            let n = (inner - j).min(e1 - e);
            if self.tiled && j == 0 && n == inner {
                group.push((base, e - e0));
                if group.len() == TILE_ROWS {
                    self.flush_tiles(&group, f);
                    group.clear();
                }
            } else {
                let mut offs = base;
                for k in 0..N {
                    offs[k] += j as isize * self.inner_strides[k];
                }
                f(offs, e - e0, n);
            }
            e += n;
            j = 0;
            for d in (0..nd).rev() {
                idx[d] += 1;
                for k in 0..N {
                    base[k] += self.outer_strides[d][k];
                }
                if idx[d] < self.outer_shape[d] {
                    break;
                }
                for k in 0..N {
                    base[k] -= self.outer_strides[d][k] * self.outer_shape[d] as isize;
                }
                idx[d] = 0;
            }
        }
        self.flush_tiles(&group, f);
    }

    /// Visits a group of full rows column-tile by column-tile.
    fn flush_tiles(&self, group: &[([isize; N], usize)], f: &mut dyn FnMut([isize; N], usize, usize)) {
        let mut jc = 0;
        while jc < self.inner && !group.is_empty() {
            let c = TILE_COLS.min(self.inner - jc);
            for &(b, rel) in group {
                let mut offs = b;
                for k in 0..N {
                    offs[k] += jc as isize * self.inner_strides[k];
                }
                f(offs, rel + jc, c);
            }
            jc += c;
        }
    }

    /// Runs `kern(offsets, out_row)` over every inner row of `out` (contiguous, of the plan's
    /// shape), splitting across threads when `out` is large.
    pub(super) fn run<T: Send, F>(&self, out: &mut [T], kern: F)
    where
        F: Fn([isize; N], &mut [T]) + Sync + Send,
    {
        self.run_dyn(out, &kern)
    }

    /// [`Plan::run`] with the kernel type-erased (one instantiation per element type).
    pub(super) fn run_dyn<T: Send>(&self, out: &mut [T], kern: &(dyn Fn([isize; N], &mut [T]) + Sync)) {
        threads::par_chunks_mut_dyn(out, MIN_CHUNK, &|start, chunk: &mut [T]| {
            let len = chunk.len();
            self.run_range(start, start + len, &mut |offs, rel, n| kern(offs, &mut chunk[rel..rel + n]));
        });
    }
}

/// Runs `f` on `out`'s elements as one contiguous slice; a non-standard-layout `out` goes
/// through a temporary.
pub(super) fn with_out_slice<T: Element>(out: &mut ArrayD<T>, f: impl FnOnce(&mut [T])) -> Result<()> {
    if let Some(s) = out.as_slice_mut() {
        f(s);
        return Ok(());
    }
    let shape = out.shape().to_vec();
    let mut tmp = try_alloc::<T>(out.len(), &shape)?;
    f(&mut tmp);
    for (o, v) in out.iter_mut().zip(tmp) {
        *o = v;
    }
    Ok(())
}

pub(super) fn broadcast_view<'a, T: Element>(op: &'static str, v: &'a ArrayViewD<'_, T>, shape: &[usize]) -> Result<ArrayViewD<'a, T>> {
    v.broadcast(IxDyn(shape)).ok_or_else(|| {
        shape_err(op, format!("cannot broadcast {} to {}", fmt_shape(v.shape()), fmt_shape(shape)))
    })
}

/// # Safety
/// `p` must be valid for reading `n` elements.
#[inline(always)]
pub(super) unsafe fn slice_at<'a, T>(p: *const T, n: usize) -> &'a [T] {
    std::slice::from_raw_parts(p, n)
}

// =========================================================================================
// Simple maps, compiled twice (baseline and AVX2) and chosen at run time.
// =========================================================================================

#[inline(always)]
fn map1_body<S: Copy, D, F: Fn(S) -> D>(x: &[S], out: &mut [D], f: &F) {
    for (o, &v) in out.iter_mut().zip(x.iter()) {
        *o = f(v);
    }
}

#[inline(always)]
fn map2_body<S: Copy, D, F: Fn(S, S) -> D>(a: &[S], b: &[S], out: &mut [D], f: &F) {
    let n = out.len().min(a.len()).min(b.len());
    let (a, b, out) = (&a[..n], &b[..n], &mut out[..n]);
    for i in 0..n {
        out[i] = f(a[i], b[i]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn map1_avx2<S: Copy, D, F: Fn(S) -> D>(x: &[S], out: &mut [D], f: &F) {
    map1_body(x, out, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn map2_avx2<S: Copy, D, F: Fn(S, S) -> D>(a: &[S], b: &[S], out: &mut [D], f: &F) {
    map2_body(a, b, out, f)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn use_avx2() -> bool {
    matches!(simd::level(), SimdLevel::Avx2Fma | SimdLevel::Avx512)
}

/// `out[i] = f(x[i])` over the common prefix.
#[inline]
pub(super) fn map1<S: Copy, D, F: Fn(S) -> D>(x: &[S], out: &mut [D], f: F) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked by `simd::level`).
        unsafe { map1_avx2(x, out, &f) };
        return;
    }
    map1_body(x, out, &f)
}

/// `out[i] = f(a[i], b[i])` over the common prefix.
#[inline]
pub(super) fn map2<S: Copy, D, F: Fn(S, S) -> D>(a: &[S], b: &[S], out: &mut [D], f: F) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked by `simd::level`).
        unsafe { map2_avx2(a, b, out, &f) };
        return;
    }
    map2_body(a, b, out, &f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_merges_contiguous_and_broadcast_axes() {
        // (2,3,4) contiguous against a (1,1,4)-broadcast row: all axes merge for the first
        // operand only where the second allows.
        let p = Plan::<2>::new(&[2, 3, 4], [&[12, 4, 1], &[0, 0, 1]]);
        assert_eq!(p.inner, 4);
        assert_eq!(p.outer_shape, vec![6]);
        let p = Plan::<1>::new(&[2, 3, 4], [&[12, 4, 1]]);
        assert_eq!((p.inner, p.outer_shape.len()), (24, 0));
        let p = Plan::<1>::new(&[], [&[]]);
        assert_eq!((p.inner, p.inner_strides), (1, [0]));
        let p = Plan::<2>::new(&[5, 1, 7], [&[7, 99, 1], &[0, 3, 0]]);
        assert_eq!((p.inner, p.outer_shape.len(), p.inner_strides), (35, 0, [1, 0]));
    }

    #[test]
    fn run_range_visits_every_row_piece() {
        let p = Plan::<1>::new(&[3, 5], [&[1, 3]]); // a transposed (5,3) array
        let mut seen = vec![];
        p.run_range(2, 13, &mut |offs, rel, n| seen.push((offs[0], rel, n)));
        // rows of 5 with stride 3; row r starts at offset r.
        assert_eq!(seen, vec![(6, 0, 3), (1, 3, 5), (2, 8, 3)]);
    }

    #[test]
    fn tiled_traversal_covers_each_element_once() {
        // A transposed (300, 5, 70) operand against a contiguous one: rows of 300.
        let shape = [70usize, 5, 300];
        let t = [1isize, 70 * 300, 70];
        let c = [1500isize, 300, 1];
        let p = Plan::<2>::new(&shape, [&t, &c]);
        assert!(p.tiled);
        let total: usize = shape.iter().product();
        for (e0, e1) in [(0, total), (17, total - 33), (299, 301), (1000, 1000 + 64 * 300 + 5)] {
            let mut hits = vec![0u8; e1 - e0];
            p.run_range(e0, e1, &mut |offs, rel, n| {
                for i in 0..n {
                    hits[rel + i] += 1;
                    // The contiguous operand's offset is the flat output index.
                    assert_eq!(offs[1] as usize + i, e0 + rel + i);
                }
            });
            assert!(hits.iter().all(|&h| h == 1));
        }
    }
}
