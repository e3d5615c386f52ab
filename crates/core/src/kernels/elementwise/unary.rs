//! Unary kernels: the strided driver and the per-slice maps for floats (simple maps, the
//! vectorized transcendental functions, and the composite softplus / mish ops) and ints.

use super::UnaryOp;
use super::elem::{EwFloat, IntOps};
use super::engine::{map1, slice_at, with_out_slice, Plan, MIN_CHUNK};
use crate::kernels::threads::{self, SendPtr};
use crate::kernels::vmath::VFunc;
use crate::{Element, Result};
use ndarray::{ArrayD, ArrayViewD};

/// Applies a slice kernel to a contiguous or strided view, writing a contiguous output.
pub(super) fn unary_t<T, K>(x: &ArrayViewD<'_, T>, out: &mut ArrayD<T>, kern: K) -> Result<()>
where
    T: Element,
    K: Fn(&[T], &mut [T]) + Sync + Send,
{
    with_out_slice(out, |o| {
        if let Some(xs) = x.as_slice() {
            threads::par_chunks_mut(o, MIN_CHUNK, |start, chunk| {
                let n = chunk.len();
                kern(&xs[start..start + n], chunk)
            });
        } else {
            let plan = Plan::new(x.shape(), [x.strides()]);
            let px = SendPtr(x.as_ptr());
            let s = plan.inner_strides[0];
            plan.run(o, |offs, dst| {
                // SAFETY: the plan's offsets and strides stay inside `x` (they come from its
                // own shape and strides), for exactly dst.len() elements along the row.
                unsafe { unary_row(px.get().offset(offs[0]), s, dst, &kern) }
            });
        }
    })
}

/// One strided row through a slice kernel.
///
/// # Safety
/// `p.offset(i * s)` must be readable for `i < dst.len()`.
unsafe fn unary_row<T: Element, K: Fn(&[T], &mut [T])>(p: *const T, s: isize, dst: &mut [T], kern: &K) {
    let n = dst.len();
    if n == 0 {
        return;
    }
    if s == 1 {
        kern(slice_at(p, n), dst);
    } else if s == 0 {
        let v = [*p];
        let mut r = [*p];
        kern(&v, &mut r);
        dst.fill(r[0]);
    } else {
        const B: usize = 256;
        let mut buf = [T::default(); B];
        let mut i = 0;
        while i < n {
            let m = (n - i).min(B);
            for (t, slot) in buf[..m].iter_mut().enumerate() {
                *slot = *p.offset((i + t) as isize * s);
            }
            kern(&buf[..m], &mut dst[i..i + m]);
            i += m;
        }
    }
}

/// Block size for composite ops (several passes over L1-resident blocks).
const BLK: usize = 512;

#[inline]
fn softplus_block<T: EwFloat>(x: &[T], out: &mut [T]) {
    T::vapply(VFunc::Exp, x, out);
    T::vapply_inplace(VFunc::Log1p, out);
    let th = T::from_f64(20.0);
    for (o, &v) in out.iter_mut().zip(x) {
        if v > th {
            *o = v;
        }
    }
}

fn softplus_slice<T: EwFloat>(x: &[T], out: &mut [T]) {
    for (xc, oc) in x.chunks(BLK).zip(out.chunks_mut(BLK)) {
        softplus_block(xc, oc);
    }
}

fn mish_slice<T: EwFloat>(x: &[T], out: &mut [T]) {
    let ninf = T::neg_infinity();
    for (xc, oc) in x.chunks(BLK).zip(out.chunks_mut(BLK)) {
        softplus_block(xc, oc);
        T::vapply_inplace(VFunc::Tanh, oc);
        for (o, &v) in oc.iter_mut().zip(xc) {
            *o = if v == ninf { T::zero() } else { v * *o };
        }
    }
}

/// d/dx [x·tanh(sp(x))] = tanh(sp) + x·(1 − tanh²(sp))·σ(x).
fn mish_grad_slice<T: EwFloat>(x: &[T], out: &mut [T]) {
    let (one, zero) = (T::one(), T::zero());
    let (inf, ninf) = (T::infinity(), T::neg_infinity());
    let mut sig = [zero; BLK];
    for (xc, oc) in x.chunks(BLK).zip(out.chunks_mut(BLK)) {
        let s = &mut sig[..xc.len()];
        T::vapply(VFunc::Sigmoid, xc, s);
        softplus_block(xc, oc);
        T::vapply_inplace(VFunc::Tanh, oc);
        for ((o, &v), &sg) in oc.iter_mut().zip(xc).zip(s.iter()) {
            let t = *o;
            *o = if v == inf {
                one
            } else if v == ninf {
                zero
            } else {
                t + v * (one - t * t) * sg
            };
        }
    }
}

pub(super) fn unary_float_slice<T: EwFloat>(op: UnaryOp, x: &[T], out: &mut [T]) {
    let (zero, one) = (T::zero(), T::one());
    match op {
        UnaryOp::Neg => map1(x, out, |v: T| -v),
        UnaryOp::Abs => map1(x, out, |v: T| v.abs()),
        UnaryOp::Sign => map1(x, out, move |v: T| {
            if v > zero {
                one
            } else if v < zero {
                -one
            } else {
                v
            }
        }),
        UnaryOp::Exp => T::vapply(VFunc::Exp, x, out),
        UnaryOp::Log => T::vapply(VFunc::Ln, x, out),
        UnaryOp::Log1p => T::vapply(VFunc::Log1p, x, out),
        UnaryOp::Expm1 => T::vapply(VFunc::Expm1, x, out),
        UnaryOp::Tanh => T::vapply(VFunc::Tanh, x, out),
        UnaryOp::Sigmoid => T::vapply(VFunc::Sigmoid, x, out),
        UnaryOp::Log2 => map1(x, out, |v: T| v.log2()),
        UnaryOp::Sqrt => map1(x, out, |v: T| v.sqrt()),
        UnaryOp::Square => map1(x, out, |v: T| v * v),
        UnaryOp::Cube => map1(x, out, |v: T| v * v * v),
        UnaryOp::Inverse => map1(x, out, move |v: T| one / v),
        UnaryOp::InverseSqrt => map1(x, out, move |v: T| one / v.sqrt()),
        UnaryOp::Sin => map1(x, out, |v: T| v.sin()),
        UnaryOp::Cos => map1(x, out, |v: T| v.cos()),
        UnaryOp::Floor => map1(x, out, |v: T| v.floor()),
        UnaryOp::Ceil => map1(x, out, |v: T| v.ceil()),
        UnaryOp::Relu => map1(x, out, move |v: T| if v < zero { zero } else { v }),
        UnaryOp::Softplus => softplus_slice(x, out),
        UnaryOp::Mish => mish_slice(x, out),
        UnaryOp::MishGrad => mish_grad_slice(x, out),
        UnaryOp::LeakyRelu(alpha) => {
            let a = T::from_f64(alpha);
            map1(x, out, move |v: T| if v > zero { v } else { a * v })
        }
        UnaryOp::Clip(lo, hi) => {
            let (lo, hi) = (T::from_f64(lo), T::from_f64(hi));
            // NumPy's clip is minimum(maximum(x, lo), hi): hi wins when lo > hi; NaN stays NaN.
            map1(x, out, move |v: T| {
                let m = if v < lo { lo } else { v };
                if m > hi {
                    hi
                } else {
                    m
                }
            })
        }
        UnaryOp::Step => map1(x, out, move |v: T| if v > zero { one } else { zero }),
        UnaryOp::InRange(lo, hi) => {
            let (lo, hi) = (T::from_f64(lo), T::from_f64(hi));
            map1(x, out, move |v: T| if v >= lo && v <= hi { one } else { zero })
        }
        UnaryOp::LeakyStep(alpha) => {
            let a = T::from_f64(alpha);
            map1(x, out, move |v: T| if v > zero { one } else { a })
        }
    }
}

pub(super) fn unary_int_slice<T: IntOps>(op: UnaryOp, x: &[T], out: &mut [T]) {
    let zero = T::zero();
    match op {
        UnaryOp::Neg => map1(x, out, |v: T| v.wneg()),
        UnaryOp::Abs => map1(x, out, |v: T| v.wabs()),
        UnaryOp::Sign => map1(x, out, |v: T| v.sign()),
        UnaryOp::Square => map1(x, out, |v: T| v.mul(v)),
        UnaryOp::Cube => map1(x, out, |v: T| v.mul(v).mul(v)),
        UnaryOp::Relu => map1(x, out, move |v: T| if v < zero { zero } else { v }),
        // Rejected by `UnaryOp::supports` before we get here; copy to stay total.
        _ => map1(x, out, |v: T| v),
    }
}
