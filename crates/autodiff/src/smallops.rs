//! The tape VM's fast path for small elementwise instructions: float32/float64 operands that
//! are contiguous and either the output's shape or a single element, with at most
//! [`SMALL_MAX`] output elements. For these the general kernels' fixed cost (broadcast
//! views, the strided-loop planner, shape checks, a few allocations) is many times the
//! arithmetic, so the VM runs them here as plain slice loops.
//!
//! Only ops whose result is fully determined by IEEE arithmetic (or by the same `vmath`
//! routine the core kernel calls) are taken, each written with exactly the core kernel's
//! formula, so both paths give bit-identical results (`tests/smallops.rs` checks every op on
//! NaN, ±0, ±inf and ordinary values against `gorgon_core`). Everything else returns `None`
//! from [`classify`] and runs through [`crate::op::Op::forward`].
//!
//! This module must not know about graphs or machines: the VM decides which instructions
//! qualify (from the compiled shapes) and hands over slices.

use crate::op::Op;
use gorgon_core::kernels::elementwise::{BinaryOp as B, UnaryOp as U};
use gorgon_core::kernels::vmath::{VFunc, VMath};
use gorgon_core::{DType, Float, Tensor, TensorView};

/// The largest output (in elements) the fast path takes. Bigger outputs go to the core
/// kernels, which use AVX2 builds of their loops and split the work across threads.
pub const SMALL_MAX: usize = 4096;

/// An elementwise op the fast path implements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SmallOp {
    /// A unary op (its operand has the output's shape).
    Unary(U),
    /// A binary op (each operand has the output's shape or one element).
    Binary(B),
}

fn supported_unary(u: U) -> bool {
    matches!(u, U::Neg | U::Abs | U::Sqrt | U::Square | U::Inverse | U::Relu | U::Step | U::Exp | U::Log | U::Log1p | U::Expm1 | U::Tanh | U::Sigmoid)
}

fn supported_binary(b: B) -> bool {
    matches!(b, B::Add | B::Sub | B::Mul | B::Div | B::Maximum | B::Minimum | B::Lt | B::Le | B::Gt | B::Ge | B::Eq | B::Ne)
}

/// Whether an instruction `op(operands) -> out` can take the fast path: `operands` and `out`
/// are `(dtype, shape)` pairs as compiled. Operands must be contiguous at run time as well
/// ([`run`] checks and returns `false` otherwise).
pub fn classify(op: &Op, operands: &[(DType, &[usize])], out: (DType, &[usize])) -> Option<SmallOp> {
    let (dt, shape) = out;
    if !matches!(dt, DType::F32 | DType::F64) {
        return None;
    }
    let n: usize = shape.iter().product();
    if n == 0 || n > SMALL_MAX {
        return None;
    }
    let fits = |&(d, s): &(DType, &[usize])| d == dt && (same_shape(s, shape) || s.iter().product::<usize>() == 1);
    match op {
        Op::Unary(u) if supported_unary(*u) && operands.len() == 1 && operands[0].0 == dt && same_shape(operands[0].1, shape) => Some(SmallOp::Unary(*u)),
        Op::Binary(b) if supported_binary(*b) && operands.len() == 2 && operands.iter().all(fits) => Some(SmallOp::Binary(*b)),
        _ => None,
    }
}

/// Element-wise shape equality (slice `==` calls `memcmp`, which is slow on the dangling
/// pointer of an empty shape with glibc's AVX-512 version).
fn same_shape(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// A contiguous slice of a tensor's elements of type `T`.
fn tensor_slice<T: Float>(t: &Tensor) -> Option<&[T]> {
    T::tensor_ref(t)?.as_slice()
}

/// A contiguous slice of a view's elements of type `T` (borrowing what the view borrows).
fn view_slice<'a, T: Float>(v: &TensorView<'a>) -> Option<&'a [T]> {
    T::view_ref(v)?.to_slice()
}

/// An operand as the fast path reads it: a tensor the VM owns, or a borrowed view.
pub enum Operand<'a> {
    /// A program buffer or an owned stored value.
    Tensor(&'a Tensor),
    /// Any other stored value.
    View(TensorView<'a>),
}

impl<'a> Operand<'a> {
    fn slice<T: Float>(&self) -> Option<&[T]> {
        match self {
            Operand::Tensor(t) => tensor_slice(t),
            Operand::View(v) => view_slice(v),
        }
    }
}

/// Runs `op` on contiguous operands into `out`. Returns `false` (touching nothing) when an
/// operand or the output is not a contiguous array of the expected dtype and size; the
/// caller then runs the general kernel.
pub fn run(op: SmallOp, ins: &[Operand<'_>], out: &mut Tensor) -> bool {
    match out {
        Tensor::F32(_) => run_t::<f32>(op, ins, out),
        Tensor::F64(_) => run_t::<f64>(op, ins, out),
        _ => false,
    }
}

fn run_t<T: Float + VMath>(op: SmallOp, ins: &[Operand<'_>], out: &mut Tensor) -> bool {
    let Some(o) = T::tensor_mut(out).and_then(|a| a.as_slice_mut()) else { return false };
    let n = o.len();
    let ok = |s: &[T]| s.len() == n || s.len() == 1;
    match op {
        SmallOp::Unary(u) => {
            let Some(x) = ins.first().and_then(|i| i.slice::<T>()) else { return false };
            if x.len() != n {
                return false;
            }
            unary(u, x, o);
        }
        SmallOp::Binary(b) => {
            let (Some(x), Some(y)) = (ins.first().and_then(|i| i.slice::<T>()), ins.get(1).and_then(|i| i.slice::<T>())) else { return false };
            if !ok(x) || !ok(y) {
                return false;
            }
            binary(b, x, y, o);
        }
    }
    true
}

#[inline(always)]
fn map1<T: Copy>(x: &[T], o: &mut [T], f: impl Fn(T) -> T) {
    for (d, &v) in o.iter_mut().zip(x) {
        *d = f(v);
    }
}

/// `o[i] = f(x[i], y[i])`, where an operand of one element is broadcast.
#[inline(always)]
fn map2<T: Copy>(x: &[T], y: &[T], o: &mut [T], f: impl Fn(T, T) -> T) {
    let n = o.len();
    match (x.len() == n, y.len() == n) {
        (true, true) => {
            for ((d, &p), &q) in o.iter_mut().zip(x).zip(y) {
                *d = f(p, q);
            }
        }
        (true, false) => {
            let q = y[0];
            for (d, &p) in o.iter_mut().zip(x) {
                *d = f(p, q);
            }
        }
        (false, true) => {
            let p = x[0];
            for (d, &q) in o.iter_mut().zip(y) {
                *d = f(p, q);
            }
        }
        (false, false) => o.fill(f(x[0], y[0])),
    }
}

/// The core kernel's formulas (`gorgon_core::kernels::elementwise`, `unary_float_slice`).
fn unary<T: Float + VMath>(u: U, x: &[T], o: &mut [T]) {
    let (zero, one) = (T::zero(), T::one());
    match u {
        U::Neg => map1(x, o, |v| -v),
        U::Abs => map1(x, o, |v| v.abs()),
        U::Sqrt => map1(x, o, |v| v.sqrt()),
        U::Square => map1(x, o, |v| v * v),
        U::Inverse => map1(x, o, |v| one / v),
        U::Relu => map1(x, o, |v| if v < zero { zero } else { v }),
        U::Step => map1(x, o, |v| if v > zero { one } else { zero }),
        U::Exp => T::vapply(VFunc::Exp, x, o),
        U::Log => T::vapply(VFunc::Ln, x, o),
        U::Log1p => T::vapply(VFunc::Log1p, x, o),
        U::Expm1 => T::vapply(VFunc::Expm1, x, o),
        U::Tanh => T::vapply(VFunc::Tanh, x, o),
        U::Sigmoid => T::vapply(VFunc::Sigmoid, x, o),
        _ => unreachable!("classify admits only the ops above"),
    }
}

#[inline(always)]
fn b2t<T: Float>(c: bool) -> T {
    if c {
        T::one()
    } else {
        T::zero()
    }
}

/// The core kernel's formulas (`binary_float` / `binary_cmp`).
fn binary<T: Float>(b: B, x: &[T], y: &[T], o: &mut [T]) {
    match b {
        B::Add => map2(x, y, o, |p, q| p + q),
        B::Sub => map2(x, y, o, |p, q| p - q),
        B::Mul => map2(x, y, o, |p, q| p * q),
        B::Div => map2(x, y, o, |p, q| p / q),
        B::Maximum => map2(x, y, o, |p, q| if p > q || p.is_nan() { p } else { q }),
        B::Minimum => map2(x, y, o, |p, q| if p < q || p.is_nan() { p } else { q }),
        B::Lt => map2(x, y, o, |p, q| b2t(p < q)),
        B::Le => map2(x, y, o, |p, q| b2t(p <= q)),
        B::Gt => map2(x, y, o, |p, q| b2t(p > q)),
        B::Ge => map2(x, y, o, |p, q| b2t(p >= q)),
        B::Eq => map2(x, y, o, |p, q| b2t(p == q)),
        B::Ne => map2(x, y, o, |p, q| b2t(p != q)),
        _ => unreachable!("classify admits only the ops above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_takes_small_float_elementwise_only() {
        let s: &[usize] = &[3];
        let one: &[usize] = &[];
        let add = Op::Binary(B::Add);
        assert_eq!(classify(&add, &[(DType::F64, s), (DType::F64, one)], (DType::F64, s)), Some(SmallOp::Binary(B::Add)));
        assert_eq!(classify(&add, &[(DType::I64, s), (DType::I64, s)], (DType::I64, s)), None);
        assert_eq!(classify(&add, &[(DType::F32, &[3, 1]), (DType::F32, &[1, 3])], (DType::F32, &[3, 3])), None);
        let big = [SMALL_MAX + 1];
        assert_eq!(classify(&add, &[(DType::F32, &big), (DType::F32, &big)], (DType::F32, &big)), None);
        assert_eq!(classify(&Op::Binary(B::Pow), &[(DType::F64, s), (DType::F64, s)], (DType::F64, s)), None);
        assert_eq!(classify(&Op::Unary(U::Tanh), &[(DType::F32, s)], (DType::F32, s)), Some(SmallOp::Unary(U::Tanh)));
        assert_eq!(classify(&Op::Unary(U::Sin), &[(DType::F32, s)], (DType::F32, s)), None);
    }
}
