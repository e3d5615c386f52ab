//! Elementwise fusion: a tree of elementwise ops becomes one [`FusedExpr`] evaluated in
//! cache-sized blocks (no full-size temporaries), split across threads for large outputs.
//! Inputs are either full-size contiguous arrays of the output's shape or scalars.
//! The analysis that forms groups lives in [`crate::compile`]; this module evaluates them,
//! and [`reduce`] evaluates a fused tree together with the sum or mean that consumes it.

pub mod bcast;
pub mod reduce;

use crate::error::{Error, Result};
use gorgon_core::kernels::elementwise::{BinaryOp as B, UnaryOp as U};
use gorgon_core::kernels::simd::{self, SimdLevel};
use gorgon_core::kernels::threads;
use gorgon_core::kernels::vmath::{VFunc, VMath};
use gorgon_core::{Element, Float, Tensor, TensorView};
use std::cell::RefCell;

/// Elements per block: small enough that every register of a fused tree stays in L1/L2.
pub const BLOCK: usize = 1024;

/// One step of a fused expression; operands refer to earlier steps.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The k-th external input.
    Input(usize),
    /// A unary op of an earlier step.
    Unary(U, usize),
    /// A binary op of two earlier steps.
    Binary(B, usize, usize),
    /// `where(c, a, b)` of earlier steps.
    Where(usize, usize, usize),
}

/// A fused elementwise expression; the last step is the result.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedExpr {
    /// Steps in evaluation order.
    pub steps: Vec<Step>,
}

impl FusedExpr {
    /// A short name such as `fused(tanh∘add∘mul)`.
    pub fn name(&self) -> String {
        let ops: Vec<String> = self
            .steps
            .iter()
            .rev()
            .filter_map(|s| match s {
                Step::Input(_) => None,
                Step::Unary(u, _) => Some(crate::op::unary_name(*u).to_string()),
                Step::Binary(b, ..) => Some(format!("{b:?}").to_lowercase()),
                Step::Where(..) => Some("where".into()),
            })
            .collect();
        format!("fused({})", ops.join("∘"))
    }
}

pub(crate) enum Src<'a, T> {
    Full(&'a [T]),
    Scalar(T),
    Bcast(bcast::Bcast<'a, T>),
}

/// The per-thread block registers of the fused loops (kept between runs: no allocation in a
/// steady-state run).
pub(crate) trait Scratch: Sized {
    /// Runs `f` with this thread's scratch of at least `n` elements.
    fn with<R>(n: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
}

macro_rules! impl_scratch {
    ($($t:ty => $tls:ident),*) => {$(
        thread_local! {
            static $tls: RefCell<Vec<$t>> = const { RefCell::new(Vec::new()) };
        }
        impl Scratch for $t {
            fn with<R>(n: usize, f: impl FnOnce(&mut [$t]) -> R) -> R {
                $tls.with(|s| {
                    let mut s = s.borrow_mut();
                    if s.len() < n {
                        s.resize(n, 0.0);
                    }
                    f(&mut s[..n])
                })
            }
        }
    )*};
}
impl_scratch!(f32 => SCRATCH32, f64 => SCRATCH64);

/// Evaluates `expr` over `ins` into `out` (float32/float64, contiguous).
pub fn eval(expr: &FusedExpr, ins: &[TensorView], out: &mut Tensor) -> Result<()> {
    match out {
        Tensor::F32(_) => eval_t::<f32>(expr, ins, out),
        Tensor::F64(_) => eval_t::<f64>(expr, ins, out),
        other => Err(Error::DType(format!("fused: unsupported dtype {}", other.dtype()))),
    }
}

/// Outputs of at least this many bytes are written with non-temporal (streaming) stores:
/// they cannot stay in cache anyway, and streaming skips reading each output line before
/// overwriting it (a quarter of the traffic of `tanh(a*b+c)`).
pub const STREAM_BYTES: usize = 8 << 20;

/// The operands of an expression of shape `shape`: full contiguous arrays, scalars, or
/// contiguous arrays that broadcast to `shape`.
fn sources<'a, T: Float>(expr: &FusedExpr, ins: &'a [TensorView], shape: &[usize]) -> Result<Vec<Src<'a, T>>> {
    let n: usize = shape.iter().product();
    let srcs: Vec<Src<T>> = ins
        .iter()
        .map(|v| {
            let a = T::view_ref(v).ok_or_else(|| Error::DType("fused: operand dtype differs from output".into()))?;
            let data = || a.to_slice().ok_or_else(|| Error::Internal("fused: operand is not contiguous".into()));
            if a.len() == 1 {
                Ok(Src::Scalar(*a.iter().next().expect("one element")))
            } else if a.len() == n && (a.shape() == shape || shape.len() == 1) {
                data().map(Src::Full)
            } else {
                bcast::Bcast::new(data()?, a.shape(), shape).map(Src::Bcast).ok_or_else(|| {
                    Error::Internal(format!("fused: operand of shape {:?} does not broadcast to {shape:?}", a.shape()))
                })
            }
        })
        .collect::<Result<_>>()?;
    for s in &expr.steps {
        if let Step::Input(k) = *s {
            if k >= srcs.len() {
                return Err(Error::Internal(format!("fused: input {k} of {} operands", srcs.len())));
            }
        }
    }
    Ok(srcs)
}

fn eval_t<T: Float + VMath + Scratch>(expr: &FusedExpr, ins: &[TensorView], out: &mut Tensor) -> Result<()> {
    let n = out.len();
    let shape = out.shape().to_vec();
    let srcs = sources::<T>(expr, ins, &shape)?;
    let o = T::tensor_mut(out).and_then(|a| a.as_slice_mut()).ok_or_else(|| Error::Internal("fused: output is not contiguous".into()))?;
    let stream = n.saturating_mul(std::mem::size_of::<T>()) >= STREAM_BYTES;
    let nsteps = expr.steps.len();
    let level = simd::level();
    threads::par_chunks_mut(o, 32 * 1024, |start, chunk| {
        T::with(nsteps * BLOCK, |regs| {
            #[cfg(target_arch = "x86_64")]
            if matches!(level, SimdLevel::Avx2Fma | SimdLevel::Avx512) {
                // SAFETY: the level is only reported when the CPU has AVX2 and FMA.
                unsafe { run_blocks_avx2(expr, &srcs, start, chunk, regs, stream) };
                return;
            }
            let _ = (level, stream);
            run_blocks(expr, &srcs, start, chunk, regs, None);
        })
    });
    Ok(())
}

/// How a block's final values reach the output when they are not written in place.
type Store<T> = unsafe fn(&[T], &mut [T]);

/// [`run_blocks`] compiled for AVX2+FMA, with streaming stores for large outputs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_blocks_avx2<T: Float + VMath>(expr: &FusedExpr, srcs: &[Src<T>], start: usize, chunk: &mut [T], regs: &mut [T], stream: bool) {
    if stream {
        run_blocks(expr, srcs, start, chunk, regs, Some(stream_copy::<T> as Store<T>));
        // Orders the streaming stores before anything the caller does next.
        std::arch::x86_64::_mm_sfence();
    } else {
        run_blocks(expr, srcs, start, chunk, regs, None);
    }
}

/// Copies `src` into `dst` with non-temporal 32-byte stores (plain copies for the unaligned
/// head and the tail).
///
/// # Safety
/// The CPU must support AVX; `src` and `dst` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn stream_copy<T: Copy>(src: &[T], dst: &mut [T]) {
    use std::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm256_stream_si256};
    let bytes = std::mem::size_of_val(src).min(std::mem::size_of_val(dst));
    let (s, d) = (src.as_ptr() as *const u8, dst.as_mut_ptr() as *mut u8);
    let head = (d.align_offset(32)).min(bytes);
    let body = (bytes - head) / 32 * 32;
    // SAFETY: every access stays within the first `bytes` bytes of both slices; the
    // streamed stores are 32-byte aligned (after `head`).
    unsafe {
        std::ptr::copy_nonoverlapping(s, d, head);
        let mut i = head;
        while i < head + body {
            let v = _mm256_loadu_si256(s.add(i) as *const __m256i);
            _mm256_stream_si256(d.add(i) as *mut __m256i, v);
            i += 32;
        }
        std::ptr::copy_nonoverlapping(s.add(i), d.add(i), bytes - i);
    }
}

/// Evaluates the blocks of one thread's chunk (`chunk` starts at element `start`). With
/// `store`, each block's result is computed in the scratch registers and then stored by it.
#[inline(always)]
fn run_blocks<T: Float + VMath>(expr: &FusedExpr, srcs: &[Src<T>], start: usize, chunk: &mut [T], regs: &mut [T], store: Option<Store<T>>) {
    let last = expr.steps.len() - 1;
    let mut off = 0;
    if store.is_some() {
        // Streamed blocks must start on a cache line: a line written partly by streaming
        // stores and partly by plain ones is read back from memory and flushed twice.
        let lead = ((64 - chunk.as_ptr() as usize % 64) % 64 / std::mem::size_of::<T>()).min(chunk.len());
        if lead > 0 {
            eval_block(expr, srcs, start, lead, regs, Some(&mut chunk[..lead]));
            off = lead;
        }
    }
    while off < chunk.len() {
        let len = BLOCK.min(chunk.len() - off);
        let dst = &mut chunk[off..off + len];
        match store {
            None => eval_block(expr, srcs, start + off, len, regs, Some(dst)),
            Some(st) => {
                eval_block(expr, srcs, start + off, len, regs, None);
                // SAFETY: `st` is only passed by callers that checked the CPU's features.
                unsafe { st(&regs[last * BLOCK..last * BLOCK + len], dst) };
            }
        }
        off += len;
    }
}

/// One block: step `i` writes register `i` (the last step writes `out` when given); a full
/// input is read in place, never copied into a register.
#[inline(always)]
pub(crate) fn eval_block<T: Float + VMath>(expr: &FusedExpr, srcs: &[Src<T>], at: usize, len: usize, regs: &mut [T], mut out: Option<&mut [T]>) {
    let last = expr.steps.len() - 1;
    for (i, step) in expr.steps.iter().enumerate() {
        let (before, rest) = regs.split_at_mut(i * BLOCK);
        let operand = |k: usize| -> &[T] {
            match expr.steps[k] {
                Step::Input(j) => match &srcs[j] {
                    Src::Full(s) => &s[at..at + len],
                    Src::Scalar(_) | Src::Bcast(_) => &before[k * BLOCK..k * BLOCK + len],
                },
                _ => &before[k * BLOCK..k * BLOCK + len],
            }
        };
        let dst: &mut [T] = match (i == last, out.as_deref_mut()) {
            (true, Some(o)) => o,
            _ => &mut rest[..len],
        };
        match *step {
            Step::Input(k) => match &srcs[k] {
                Src::Full(s) if i == last => dst.copy_from_slice(&s[at..at + len]),
                Src::Full(_) => {}
                Src::Scalar(v) => dst.fill(*v),
                Src::Bcast(b) => b.gather(at, dst),
            },
            Step::Unary(u, a) => unary_slice(u, operand(a), dst),
            Step::Binary(b, x, y) => binary_slice(b, operand(x), operand(y), dst),
            Step::Where(c, x, y) => {
                let (cs, xs, ys) = (operand(c), operand(x), operand(y));
                for (((d, &cc), &p), &q) in dst.iter_mut().zip(cs).zip(xs).zip(ys) {
                    *d = if cc != T::zero() { p } else { q };
                }
            }
        }
    }
}

/// `out[i] = f(a[i], b[i])` as one tight loop per op (the op is matched once per block,
/// never per element, so each loop vectorizes).
#[inline(always)]
fn zip2<T: Copy>(a: &[T], b: &[T], out: &mut [T], f: impl Fn(T, T) -> T) {
    for ((d, &p), &q) in out.iter_mut().zip(a).zip(b) {
        *d = f(p, q);
    }
}

#[inline(always)]
fn binary_slice<T: Float>(b: B, xs: &[T], ys: &[T], dst: &mut [T]) {
    let (zero, one) = (T::zero(), T::one());
    match b {
        B::Add => zip2(xs, ys, dst, |p, q| p + q),
        B::Sub => zip2(xs, ys, dst, |p, q| p - q),
        B::Mul => zip2(xs, ys, dst, |p, q| p * q),
        B::Div => zip2(xs, ys, dst, |p, q| p / q),
        B::Gt => zip2(xs, ys, dst, |p, q| if p > q { one } else { zero }),
        B::Lt => zip2(xs, ys, dst, |p, q| if p < q { one } else { zero }),
        B::Ge => zip2(xs, ys, dst, |p, q| if p >= q { one } else { zero }),
        B::Le => zip2(xs, ys, dst, |p, q| if p <= q { one } else { zero }),
        B::Eq => zip2(xs, ys, dst, |p, q| if p == q { one } else { zero }),
        B::Ne => zip2(xs, ys, dst, |p, q| if p != q { one } else { zero }),
        _ => zip2(xs, ys, dst, |p, q| binary_scalar(b, p, q)),
    }
}

#[inline(always)]
fn unary_slice<T: Float + VMath>(u: U, x: &[T], out: &mut [T]) {
    let vf = match u {
        U::Exp => Some(VFunc::Exp),
        U::Log => Some(VFunc::Ln),
        U::Log1p => Some(VFunc::Log1p),
        U::Expm1 => Some(VFunc::Expm1),
        U::Tanh => Some(VFunc::Tanh),
        U::Sigmoid => Some(VFunc::Sigmoid),
        _ => None,
    };
    if let Some(f) = vf {
        T::vapply(f, x, out);
        return;
    }
    let (zero, one) = (T::zero(), T::one());
    let map = |out: &mut [T], f: &dyn Fn(T) -> T| {
        for (d, &v) in out.iter_mut().zip(x) {
            *d = f(v);
        }
    };
    match u {
        U::Neg => out.iter_mut().zip(x).for_each(|(d, &v)| *d = -v),
        U::Square => out.iter_mut().zip(x).for_each(|(d, &v)| *d = v * v),
        U::Relu => out.iter_mut().zip(x).for_each(|(d, &v)| *d = if v > zero { v } else { zero }),
        U::Step => out.iter_mut().zip(x).for_each(|(d, &v)| *d = if v > zero { one } else { zero }),
        U::Sqrt => out.iter_mut().zip(x).for_each(|(d, &v)| *d = v.sqrt()),
        U::Inverse => out.iter_mut().zip(x).for_each(|(d, &v)| *d = one / v),
        U::Abs => out.iter_mut().zip(x).for_each(|(d, &v)| *d = v.abs()),
        _ => map(out, &|v| unary_scalar(u, v)),
    }
}

/// One element of a unary op (the reference semantics of `UnaryOp`).
pub fn unary_scalar<T: Float + VMath>(u: U, x: T) -> T {
    let f = |v: f64| T::from_f64(v);
    let zero = T::zero();
    let one = T::one();
    match u {
        U::Neg => -x,
        U::Abs => x.abs(),
        U::Sign => if x.is_nan() { x } else if x > zero { one } else if x < zero { -one } else { zero },
        U::Exp => T::scalar(VFunc::Exp, x),
        U::Log => T::scalar(VFunc::Ln, x),
        U::Log1p => T::scalar(VFunc::Log1p, x),
        U::Expm1 => T::scalar(VFunc::Expm1, x),
        U::Log2 => f(x.to_f64().log2()),
        U::Sqrt => x.sqrt(),
        U::Square => x * x,
        U::Cube => x * x * x,
        U::Inverse => one / x,
        U::InverseSqrt => one / x.sqrt(),
        U::Sin => f(x.to_f64().sin()),
        U::Cos => f(x.to_f64().cos()),
        U::Tanh => T::scalar(VFunc::Tanh, x),
        U::Sigmoid => T::scalar(VFunc::Sigmoid, x),
        U::Softplus => {
            let v = x.to_f64();
            f(if v > 20.0 { v } else { v.exp().ln_1p() })
        }
        U::Relu => if x > zero { x } else { zero },
        U::Mish => {
            let v = x.to_f64();
            let sp = if v > 20.0 { v } else { v.exp().ln_1p() };
            // softplus underflows to 0 for very negative x (mish → 0; avoids −∞·0 = NaN).
            f(if sp == 0.0 { 0.0 } else { v * sp.tanh() })
        }
        U::Floor => f(x.to_f64().floor()),
        U::Ceil => f(x.to_f64().ceil()),
        U::LeakyRelu(a) => if x > zero { x } else { x * f(a) },
        U::Clip(lo, hi) => {
            if x.is_nan() { x } else { x.max(f(lo)).min(f(hi)) }
        }
        U::Step => if x > zero { one } else { zero },
        U::InRange(lo, hi) => if x.to_f64() >= lo && x.to_f64() <= hi { one } else { zero },
        U::LeakyStep(a) => if x > zero { one } else { f(a) },
        U::MishGrad => {
            let v = x.to_f64();
            let sp = if v > 20.0 { v } else { v.exp().ln_1p() };
            let t = sp.tanh();
            let s = 1.0 / (1.0 + (-v).exp());
            f(if s == 0.0 { t } else { t + v * (1.0 - t * t) * s })
        }
    }
}

/// One element of a binary op (float semantics of `BinaryOp`).
pub fn binary_scalar<T: Float>(b: B, p: T, q: T) -> T {
    let bool01 = |c: bool| if c { T::one() } else { T::zero() };
    match b {
        B::Add => p + q,
        B::Sub => p - q,
        B::Mul => p * q,
        B::Div => p / q,
        B::Pow => p.powf(q),
        B::FloorDiv => T::from_f64(gorgon_core::kernels::elementwise::floor_divide_f64(p.to_f64(), q.to_f64())),
        B::Maximum => if p.is_nan() || q.is_nan() { p + q } else if p > q { p } else { q },
        B::Minimum => if p.is_nan() || q.is_nan() { p + q } else if p < q { p } else { q },
        B::Lt => bool01(p < q),
        B::Le => bool01(p <= q),
        B::Gt => bool01(p > q),
        B::Ge => bool01(p >= q),
        B::Eq => bool01(p == q),
        B::Ne => bool01(p != q),
    }
}

/// Unused-import guard for `Element` in generic bounds above.
#[allow(dead_code)]
fn _uses<T: Element>() {}
