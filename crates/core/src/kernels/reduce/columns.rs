//! The column kernel: folds the rows of an `(outer, r, inner)` array into `inner`-wide
//! output rows, block by block, with cascade summation.

use super::elem::RElem;
use super::fold::Basic;
use super::{COL_BLOCK, PAR_MIN, ROW_BLOCK};
use crate::kernels::arith::{vmax, vmin};
use rayon::prelude::*;
use std::ops::Range;

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
    fn col_block<T: RElem>(b: Basic, slab: &[T], stride: usize, rows: Range<usize>, c0: usize, acc: &mut [T], shift: &[T]) -> () => col_block_impl
}

#[inline(always)]
fn col_block_impl<T: RElem>(b: Basic, slab: &[T], stride: usize, rows: Range<usize>, c0: usize, acc: &mut [T], shift: &[T]) {
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
pub(super) fn cols_basic<T: RElem>(
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
