//! Element arithmetic shared by the kernels: `+ − ×` that wrap on integer overflow (as
//! NumPy's integer arithmetic does) and are the IEEE operations for floats, and the
//! NaN-propagating max/min folds.

use crate::Element;

/// `+ − ×` of an element type: wrapping for i32/i64, IEEE for f32/f64.
pub(crate) trait Arith: Element {
    /// `self + o`
    fn add(self, o: Self) -> Self;
    /// `self − o`
    fn sub(self, o: Self) -> Self;
    /// `self · o`
    fn mul(self, o: Self) -> Self;
}

macro_rules! arith_float {
    ($($t:ty),*) => {$(
        impl Arith for $t {
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self + o
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                self - o
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self * o
            }
        }
    )*};
}
arith_float!(f32, f64);

macro_rules! arith_int {
    ($($t:ty),*) => {$(
        impl Arith for $t {
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
        }
    )*};
}
arith_int!(i32, i64);

/// NaN-propagating max: a NaN operand wins (the first NaN seen stays).
#[inline(always)]
#[allow(clippy::eq_op)]
pub(crate) fn vmax<T: Element>(acc: T, x: T) -> T {
    if (x > acc) | (x != x) {
        x
    } else {
        acc
    }
}

/// NaN-propagating min.
#[inline(always)]
#[allow(clippy::eq_op)]
pub(crate) fn vmin<T: Element>(acc: T, x: T) -> T {
    if (x < acc) | (x != x) {
        x
    } else {
        acc
    }
}
