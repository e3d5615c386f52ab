//! `where`, `cast` and strided copies.

use super::engine::{broadcast_view, map1, slice_at, with_out_slice, Plan};
use crate::kernels::threads::SendPtr;
use crate::{Element, Result};
use ndarray::{ArrayD, ArrayViewD};

pub(super) fn where_t<C: Element, T: Element>(
    cond: &ArrayViewD<'_, C>,
    a: &ArrayViewD<'_, T>,
    b: &ArrayViewD<'_, T>,
    out: &mut ArrayD<T>,
) -> Result<()> {
    let name = "where";
    let shape = out.shape().to_vec();
    let c = broadcast_view(name, cond, &shape)?;
    let a = broadcast_view(name, a, &shape)?;
    let b = broadcast_view(name, b, &shape)?;
    with_out_slice(out, |o| {
        let plan = Plan::new(&shape, [c.strides(), a.strides(), b.strides()]);
        let (pc, pa, pb) = (SendPtr(c.as_ptr()), SendPtr(a.as_ptr()), SendPtr(b.as_ptr()));
        let [sc, sa, sb] = plan.inner_strides;
        let zero = C::zero();
        plan.run(o, |offs, dst| {
            let n = dst.len();
            // SAFETY: offsets/strides come from views of the output's shape.
            unsafe {
                let (pc, pa, pb) = (pc.get().offset(offs[0]), pa.get().offset(offs[1]), pb.get().offset(offs[2]));
                if sc == 1 && sa == 1 && sb == 1 {
                    let (cs, xs, ys) = (slice_at(pc, n), slice_at(pa, n), slice_at(pb, n));
                    for i in 0..n {
                        dst[i] = if cs[i] != zero { xs[i] } else { ys[i] };
                    }
                } else {
                    for (i, d) in dst.iter_mut().enumerate() {
                        let i = i as isize;
                        *d = if *pc.offset(i * sc) != zero { *pa.offset(i * sa) } else { *pb.offset(i * sb) };
                    }
                }
            }
        });
    })
}

/// Element conversion with NumPy `astype` semantics (Rust `as`: truncation toward zero,
/// saturation, NaN → 0, integer wrap-around; to bool is `!= 0`).
pub(super) trait CastFrom<S>: Sized {
    fn cast_from(s: S) -> Self;
}

macro_rules! impl_cast_num {
    ($($s:ty),*; $d:ty) => {$(
        impl CastFrom<$s> for $d {
            #[inline(always)]
            fn cast_from(s: $s) -> Self { s as $d }
        }
    )*};
}
impl_cast_num!(f32, f64, i32, i64; f32);
impl_cast_num!(f32, f64, i32, i64; f64);
impl_cast_num!(f32, f64, i32, i64; i32);
impl_cast_num!(f32, f64, i32, i64; i64);

macro_rules! impl_cast_bool {
    ($($t:ty),*) => {$(
        impl CastFrom<bool> for $t {
            #[inline(always)]
            fn cast_from(s: bool) -> Self { s as u8 as $t }
        }
        impl CastFrom<$t> for bool {
            #[inline(always)]
            #[allow(clippy::float_cmp)]
            fn cast_from(s: $t) -> Self { s != (0 as $t) }
        }
    )*};
}
impl_cast_bool!(f32, f64, i32, i64);
impl CastFrom<bool> for bool {
    #[inline(always)]
    fn cast_from(s: bool) -> Self {
        s
    }
}

pub(super) fn cast_t<S: Element, D: Element + CastFrom<S>>(x: &ArrayViewD<'_, S>, out: &mut ArrayD<D>) -> Result<()> {
    strided_map(x, out, D::cast_from, |src, dst| map1(src, dst, D::cast_from))
}

pub(super) fn copy_t<T: Element>(x: &ArrayViewD<'_, T>, out: &mut ArrayD<T>) -> Result<()> {
    strided_map(x, out, |v| v, |src, dst| dst.copy_from_slice(src))
}

/// `out = f(x)` elementwise into the contiguous `out`; contiguous rows of `x` go through
/// `rows(src, dst)` (the same map over whole slices: a vectorizable loop or a memcpy).
fn strided_map<S: Element, D: Element>(
    x: &ArrayViewD<'_, S>,
    out: &mut ArrayD<D>,
    f: impl Fn(S) -> D + Sync + Send,
    rows: impl Fn(&[S], &mut [D]) + Sync + Send,
) -> Result<()> {
    with_out_slice(out, |o| {
        let plan = Plan::new(x.shape(), [x.strides()]);
        let px = SendPtr(x.as_ptr());
        let s = plan.inner_strides[0];
        plan.run(o, |offs, dst| {
            let n = dst.len();
            // SAFETY: offsets/strides come from `x`'s own shape and strides.
            unsafe {
                let p = px.get().offset(offs[0]);
                match s {
                    1 => rows(slice_at(p, n), dst),
                    0 => dst.fill(f(*p)),
                    _ => {
                        for (i, d) in dst.iter_mut().enumerate() {
                            *d = f(*p.offset(i as isize * s));
                        }
                    }
                }
            }
        });
    })
}
