//! Binary kernels with NumPy broadcasting: one broadcasting loop per element type, rows
//! specialized on the operand strides, and the scalar functions of every op per dtype class.

use super::elem::{EwFloat, IntOps};
use super::engine::{broadcast_view, map1, map2, slice_at, with_out_slice, Plan};
use super::{floor_divide_f64, BinaryOp};
use crate::error::CoreError;
use crate::kernels::threads::SendPtr;
use crate::{DType, Element, Result};
use ndarray::{ArrayD, ArrayViewD};

/// The broadcasting binary loop with a scalar function `f`.
fn binary_t<T, F>(name: &'static str, a: &ArrayViewD<'_, T>, b: &ArrayViewD<'_, T>, out: &mut ArrayD<T>, f: F) -> Result<()>
where
    T: Element,
    F: Fn(T, T) -> T + Copy + Sync + Send,
{
    let row = move |pa: *const T, sa: isize, pb: *const T, sb: isize, dst: &mut [T]| {
        // SAFETY: `binary_loop` only passes pointers/strides valid for dst.len() elements.
        unsafe { binary_row(pa, sa, pb, sb, dst, f) }
    };
    binary_loop(name, a, b, out, &row)
}

/// A binary row kernel: `(a, a_stride, b, b_stride, out_row)`.
type BinaryRow<'f, T> = dyn Fn(*const T, isize, *const T, isize, &mut [T]) + Sync + 'f;

/// The op-independent part of [`binary_t`] (broadcasting, planning, threading), instantiated
/// once per element type; `row` is called with valid pointers and strides for each row.
fn binary_loop<T: Element>(
    name: &'static str,
    a: &ArrayViewD<'_, T>,
    b: &ArrayViewD<'_, T>,
    out: &mut ArrayD<T>,
    row: &BinaryRow<'_, T>,
) -> Result<()> {
    let shape = out.shape().to_vec();
    let a = broadcast_view(name, a, &shape)?;
    let b = broadcast_view(name, b, &shape)?;
    with_out_slice(out, |o| {
        let plan = Plan::new(&shape, [a.strides(), b.strides()]);
        let (pa, pb) = (SendPtr(a.as_ptr()), SendPtr(b.as_ptr()));
        let [sa, sb] = plan.inner_strides;
        plan.run_dyn(o, &|offs: [isize; 2], dst: &mut [T]| {
            // Offsets/strides come from the broadcast views of the output's shape, so every
            // element `row` reads lies inside `a` / `b`. `offset` stays in bounds likewise.
            let (xa, xb) = unsafe { (pa.get().offset(offs[0]), pb.get().offset(offs[1])) };
            row(xa, sa, xb, sb, dst)
        });
    })
}

/// One inner row of a binary op, specialized on the operand strides.
///
/// # Safety
/// `pa.offset(i * sa)` and `pb.offset(i * sb)` must be readable for `i < dst.len()`.
#[inline]
unsafe fn binary_row<T: Element, F: Fn(T, T) -> T>(pa: *const T, sa: isize, pb: *const T, sb: isize, dst: &mut [T], f: F) {
    let n = dst.len();
    if n == 0 {
        return;
    }
    match (sa, sb) {
        (1, 1) => map2(slice_at(pa, n), slice_at(pb, n), dst, f),
        (0, 1) => {
            let a = *pa;
            map1(slice_at(pb, n), dst, move |y| f(a, y))
        }
        (1, 0) => {
            let b = *pb;
            map1(slice_at(pa, n), dst, move |x| f(x, b))
        }
        (0, 0) => dst.fill(f(*pa, *pb)),
        _ => {
            for (i, o) in dst.iter_mut().enumerate() {
                let i = i as isize;
                *o = f(*pa.offset(i * sa), *pb.offset(i * sb));
            }
        }
    }
}

#[inline(always)]
fn b2t<T: Element>(c: bool) -> T {
    if c { T::one() } else { T::zero() }
}

/// The comparison ops of floats and ints: 0/1 in the operand dtype. `op` must be a
/// comparison.
fn binary_cmp<T: Element>(op: BinaryOp, a: &ArrayViewD<'_, T>, b: &ArrayViewD<'_, T>, o: &mut ArrayD<T>) -> Result<()> {
    let n = op.name();
    match op {
        BinaryOp::Lt => binary_t(n, a, b, o, |x: T, y: T| b2t(x < y)),
        BinaryOp::Le => binary_t(n, a, b, o, |x: T, y: T| b2t(x <= y)),
        BinaryOp::Gt => binary_t(n, a, b, o, |x: T, y: T| b2t(x > y)),
        BinaryOp::Ge => binary_t(n, a, b, o, |x: T, y: T| b2t(x >= y)),
        BinaryOp::Eq => binary_t(n, a, b, o, |x: T, y: T| b2t(x == y)),
        // Ne (the callers pass comparisons only).
        _ => binary_t(n, a, b, o, |x: T, y: T| b2t(x != y)),
    }
}

pub(super) fn binary_float<T: EwFloat>(op: BinaryOp, a: &ArrayViewD<'_, T>, b: &ArrayViewD<'_, T>, o: &mut ArrayD<T>) -> Result<()> {
    let n = op.name();
    match op {
        BinaryOp::Add => binary_t(n, a, b, o, |x: T, y: T| x + y),
        BinaryOp::Sub => binary_t(n, a, b, o, |x: T, y: T| x - y),
        BinaryOp::Mul => binary_t(n, a, b, o, |x: T, y: T| x * y),
        BinaryOp::Div => binary_t(n, a, b, o, |x: T, y: T| x / y),
        BinaryOp::Pow => binary_t(n, a, b, o, |x: T, y: T| x.powf(y)),
        BinaryOp::FloorDiv => binary_t(n, a, b, o, |x: T, y: T| T::from_f64(floor_divide_f64(x.to_f64(), y.to_f64()))),
        BinaryOp::Maximum => binary_t(n, a, b, o, |x: T, y: T| if x > y || x.is_nan() { x } else { y }),
        BinaryOp::Minimum => binary_t(n, a, b, o, |x: T, y: T| if x < y || x.is_nan() { x } else { y }),
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Eq | BinaryOp::Ne => binary_cmp(op, a, b, o),
    }
}

pub(super) fn binary_int<T: IntOps>(op: BinaryOp, a: &ArrayViewD<'_, T>, b: &ArrayViewD<'_, T>, o: &mut ArrayD<T>) -> Result<()> {
    let n = op.name();
    match op {
        BinaryOp::Add => binary_t(n, a, b, o, |x: T, y: T| x.add(y)),
        BinaryOp::Sub => binary_t(n, a, b, o, |x: T, y: T| x.sub(y)),
        BinaryOp::Mul => binary_t(n, a, b, o, |x: T, y: T| x.mul(y)),
        BinaryOp::Div => Err(CoreError::DType {
            op: n,
            dtype: T::DTYPE,
            detail: "integer true division: cast the operands to a float dtype first".into(),
        }),
        BinaryOp::Pow => {
            let zero = T::zero();
            if b.iter().any(|&y| y < zero) {
                return Err(CoreError::DType {
                    op: n,
                    dtype: T::DTYPE,
                    detail: "integers to negative integer powers are not allowed".into(),
                });
            }
            binary_t(n, a, b, o, |x: T, y: T| x.wpow(y))
        }
        BinaryOp::FloorDiv => binary_t(n, a, b, o, |x: T, y: T| x.floordiv(y)),
        BinaryOp::Maximum => binary_t(n, a, b, o, |x: T, y: T| if x > y { x } else { y }),
        BinaryOp::Minimum => binary_t(n, a, b, o, |x: T, y: T| if x < y { x } else { y }),
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Eq | BinaryOp::Ne => binary_cmp(op, a, b, o),
    }
}

pub(super) fn binary_bool(op: BinaryOp, a: &ArrayViewD<'_, bool>, b: &ArrayViewD<'_, bool>, o: &mut ArrayD<bool>) -> Result<()> {
    let n = op.name();
    match op {
        BinaryOp::Add | BinaryOp::Maximum => binary_t(n, a, b, o, |x: bool, y: bool| x | y),
        BinaryOp::Mul | BinaryOp::Minimum => binary_t(n, a, b, o, |x: bool, y: bool| x & y),
        BinaryOp::Lt => binary_t(n, a, b, o, |x: bool, y: bool| !x & y),
        BinaryOp::Le => binary_t(n, a, b, o, |x: bool, y: bool| !x | y),
        BinaryOp::Gt => binary_t(n, a, b, o, |x: bool, y: bool| x & !y),
        BinaryOp::Ge => binary_t(n, a, b, o, |x: bool, y: bool| x | !y),
        BinaryOp::Eq => binary_t(n, a, b, o, |x: bool, y: bool| x == y),
        BinaryOp::Ne => binary_t(n, a, b, o, |x: bool, y: bool| x != y),
        BinaryOp::Sub | BinaryOp::Div | BinaryOp::Pow | BinaryOp::FloorDiv => Err(CoreError::DType {
            op: n,
            dtype: DType::Bool,
            detail: format!("{n} is not defined for bool"),
        }),
    }
}
