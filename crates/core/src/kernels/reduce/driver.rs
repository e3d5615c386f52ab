//! Drives a typed reduction: brings the input to `(outer, r, inner)` form (no copy when its
//! memory order allows) and runs the row, column or full kernel.

use super::columns::cols_basic;
use super::elem::RElem;
use super::fold::{row_value, row_value_par, Basic};
use super::{max_threads, not_contiguous, ReduceOp, PAR_MIN};
use crate::error::{fmt_shape, CoreError, Result};
use crate::Element;
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;

/// Merges adjacent axes of the same kind (dropping length-1 axes) and returns
/// `(outer, r, inner)` when the reduced axes form one block.
pub(super) fn as_triple(shape: &[usize], red: &[bool]) -> Option<(usize, usize, usize)> {
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

pub(super) fn reduce_typed<T: RElem>(
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
