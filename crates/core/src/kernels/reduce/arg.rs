//! Arg reductions (argmax / argmin): first occurrence wins, NaN counts as the extreme.

use super::{max_threads, PAR_MIN};
use crate::Element;
use ndarray::{ArrayViewD, Axis};
use rayon::prelude::*;

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
pub(super) fn arg_iter<T: Element>(is_max: bool, mut it: impl Iterator<Item = T>) -> (usize, T) {
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

pub(super) fn arg_typed<T: Element>(is_max: bool, x: ArrayViewD<T>, axis: Option<usize>, out: &mut [i64]) {
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
