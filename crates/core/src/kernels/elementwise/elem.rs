//! The element traits of the elementwise kernels: the float functions they need beyond
//! [`Float`] ([`EwFloat`]) and wrapping integer arithmetic ([`IntOps`]).

use crate::Float;
use crate::kernels::arith::Arith;
use crate::kernels::vmath::VMath;

/// Extra float functions the elementwise kernels need beyond [`Float`].
pub(super) trait EwFloat: Float + VMath {
    fn log2(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
}

/// Implements [`EwFloat`] for each type by forwarding the listed methods to its own.
macro_rules! impl_ew_float {
    ($fs:tt: $($t:ty),*) => {$(
        impl_ew_float!(@one $t, $fs);
    )*};
    (@one $t:ty, [$($f:ident)*]) => {
        impl EwFloat for $t {
            $(
                #[inline(always)]
                fn $f(self) -> Self {
                    <$t>::$f(self)
                }
            )*
        }
    };
}
impl_ew_float!([log2 sin cos floor ceil]: f32, f64);

/// Wrapping integer arithmetic for the i32/i64 kernels, beyond [`Arith`]'s `+ − ×`.
pub(super) trait IntOps: Arith + Ord {
    fn wneg(self) -> Self;
    fn wabs(self) -> Self;
    fn sign(self) -> Self;
    /// Wrapping power for a non-negative exponent.
    fn wpow(self, e: Self) -> Self;
    /// Floor division; 0 when dividing by zero (NumPy).
    fn floordiv(self, b: Self) -> Self;
}

macro_rules! impl_int_ops {
    ($t:ty) => {
        impl IntOps for $t {
            #[inline(always)]
            fn wneg(self) -> Self {
                self.wrapping_neg()
            }
            #[inline(always)]
            fn wabs(self) -> Self {
                self.wrapping_abs()
            }
            #[inline(always)]
            fn sign(self) -> Self {
                self.signum()
            }
            #[inline]
            fn wpow(self, e: Self) -> Self {
                let mut e = e.max(0) as u64;
                let mut base = self;
                let mut acc: $t = 1;
                while e > 0 {
                    if e & 1 == 1 {
                        acc = acc.wrapping_mul(base);
                    }
                    base = base.wrapping_mul(base);
                    e >>= 1;
                }
                acc
            }
            #[inline(always)]
            fn floordiv(self, b: Self) -> Self {
                if b == 0 {
                    return 0;
                }
                let q = self.wrapping_div(b);
                let r = self.wrapping_rem(b);
                if r != 0 && ((r < 0) != (b < 0)) {
                    q.wrapping_sub(1)
                } else {
                    q
                }
            }
        }
    };
}
impl_int_ops!(i32);
impl_int_ops!(i64);
