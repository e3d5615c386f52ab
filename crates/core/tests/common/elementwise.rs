//! Fixtures and naive references of the elementwise tests: random values per dtype, the same
//! logical data stored in differently laid out views, tolerances, scalar references of every
//! unary and binary op, and NumPy broadcasting of flat indices.

use super::{sigmoid, Rng};
use gorgon_core::kernels::elementwise::{BinaryOp, UnaryOp};
use gorgon_core::{DType, Tensor, TensorView};

/// Shapes of the unary / copy tests: 0-d, 0-size, 1-D, and 2-D/3-D with size-1 axes.
pub const UNARY_SHAPES: &[&[usize]] = &[&[], &[0], &[1], &[7], &[3, 4], &[2, 0, 3], &[2, 3, 5], &[4, 1, 33]];

/// Random values for `dtype`: floats mostly in [-3, 3] with specials sprinkled in, ints in
/// [-20, 20], bools 50/50.
pub fn rand_vals(dtype: DType, n: usize, rng: &mut Rng, specials: bool) -> Vec<f64> {
    const SPECIAL: [f64; 9] = [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-40, 30.0, -30.0, 1.0];
    (0..n)
        .map(|_| match dtype {
            DType::F32 | DType::F64 => {
                if specials && rng.next().is_multiple_of(16) {
                    SPECIAL[(rng.next() % SPECIAL.len() as u64) as usize]
                } else {
                    rng.unit() * 6.0 - 3.0
                }
            }
            DType::I32 | DType::I64 => (rng.next() % 41) as f64 - 20.0,
            DType::Bool => (rng.next() % 2) as f64,
        })
        .collect()
}

pub fn tensor_from(dtype: DType, vals: &[f64], shape: &[usize]) -> Tensor {
    match dtype {
        DType::F32 => Tensor::from_vec(vals.iter().map(|&v| v as f32).collect::<Vec<_>>(), shape),
        DType::F64 => Tensor::from_vec(vals.to_vec(), shape),
        DType::I32 => Tensor::from_vec(vals.iter().map(|&v| v as i32).collect::<Vec<_>>(), shape),
        DType::I64 => Tensor::from_vec(vals.iter().map(|&v| v as i64).collect::<Vec<_>>(), shape),
        DType::Bool => Tensor::from_vec(vals.iter().map(|&v| v != 0.0).collect::<Vec<_>>(), shape),
    }
    .unwrap()
}

/// Row-major values of a view (through ndarray, independent of the kernels under test).
pub fn vals_of(v: &TensorView) -> Vec<f64> {
    v.to_owned().to_vec_f64()
}

/// Ways to present the same logical data as a view: contiguous, and strided views whose
/// logical contents equal `base`'s (built from differently laid out storage).
pub enum Layout {
    Contiguous,
    /// Stored transposed (last two axes swapped), viewed back permuted.
    Permuted,
    /// Stored reversed along axis 0 and viewed with a negative stride.
    Reversed,
    /// Stored with every other element padding along the last axis; viewed with step 2.
    Strided,
}

pub const LAYOUTS: [Layout; 4] = [Layout::Contiguous, Layout::Permuted, Layout::Reversed, Layout::Strided];

/// Storage for `vals` (row-major, `shape`) laid out as `layout`; `view_of` gives back a view
/// with the same logical contents.
pub struct Stored {
    t: Tensor,
    layout: usize,
    shape: Vec<usize>,
}

pub fn store(dtype: DType, vals: &[f64], shape: &[usize], layout: &Layout) -> Stored {
    let nd = shape.len();
    let idx = |l: &Layout| LAYOUTS.iter().position(|x| std::mem::discriminant(x) == std::mem::discriminant(l)).unwrap();
    match layout {
        Layout::Permuted if nd >= 2 => {
            let mut perm: Vec<usize> = (0..nd).collect();
            perm.swap(nd - 2, nd - 1);
            let base = tensor_from(dtype, vals, shape);
            let t = base.view().permuted(&perm).unwrap().to_owned();
            Stored { t, layout: idx(layout), shape: shape.to_vec() }
        }
        Layout::Reversed if nd >= 1 && shape[0] > 0 => {
            let base = tensor_from(dtype, vals, shape);
            let mut spec: Vec<(isize, isize, isize)> = shape.iter().map(|&d| (0, d as isize, 1)).collect();
            spec[0] = (shape[0] as isize - 1, -1, -1);
            let t = base.view().slice(&spec).unwrap().to_owned();
            Stored { t, layout: idx(layout), shape: shape.to_vec() }
        }
        Layout::Strided if nd >= 1 => {
            let mut big = shape.to_vec();
            big[nd - 1] *= 2;
            let n: usize = big.iter().product();
            let mut bv = vec![7.0; n];
            let last = shape[nd - 1];
            for (i, &v) in vals.iter().enumerate() {
                let (row, col) = (i / last.max(1), i % last.max(1));
                bv[row * 2 * last + 2 * col] = v;
            }
            Stored { t: tensor_from(dtype, &bv, &big), layout: idx(layout), shape: shape.to_vec() }
        }
        _ => Stored { t: tensor_from(dtype, vals, shape), layout: 0, shape: shape.to_vec() },
    }
}

impl Stored {
    pub fn view(&self) -> TensorView<'_> {
        let nd = self.shape.len();
        match self.layout {
            1 => {
                let mut perm: Vec<usize> = (0..nd).collect();
                perm.swap(nd - 2, nd - 1);
                self.t.view().permuted(&perm).unwrap()
            }
            2 => {
                let mut spec: Vec<(isize, isize, isize)> = self.shape.iter().map(|&d| (0, d as isize, 1)).collect();
                spec[0] = (self.shape[0] as isize - 1, -1, -1);
                self.t.view().slice(&spec).unwrap()
            }
            3 => {
                let mut spec: Vec<(isize, isize, isize)> = self.shape.iter().map(|&d| (0, d as isize, 1)).collect();
                spec[nd - 1] = (0, 2 * self.shape[nd - 1] as isize, 2);
                self.t.view().slice(&spec).unwrap()
            }
            _ => self.t.view(),
        }
    }
}

pub fn same(got: f64, want: f64, rtol: f64, atol: f64) -> bool {
    if want.is_nan() {
        return got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= rtol * want.abs() + atol
}

pub fn tol(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F32 => (2e-6, 1e-6),
        DType::F64 => (1e-13, 1e-13),
        _ => (0.0, 0.0),
    }
}

// ----------------------------------------------------------------------------------------
// Naive references.
// ----------------------------------------------------------------------------------------

pub fn softplus(x: f64) -> f64 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// Unary reference, evaluated in f64 on the (exact) input value and rounded to the dtype.
pub fn unary_ref(op: UnaryOp, x: f64, dtype: DType) -> f64 {
    let r = match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        }
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Log1p => x.ln_1p(),
        UnaryOp::Expm1 => x.exp_m1(),
        UnaryOp::Log2 => x.log2(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Square => x * x,
        UnaryOp::Cube => x * x * x,
        UnaryOp::Inverse => 1.0 / x,
        UnaryOp::InverseSqrt => 1.0 / x.sqrt(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => sigmoid(x),
        UnaryOp::Softplus => softplus(x),
        UnaryOp::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        UnaryOp::Mish => {
            if x == f64::NEG_INFINITY {
                0.0
            } else {
                x * softplus(x).tanh()
            }
        }
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
        UnaryOp::LeakyRelu(a) => {
            if x > 0.0 {
                x
            } else {
                a * x
            }
        }
        UnaryOp::Clip(lo, hi) => {
            if x.is_nan() {
                x
            } else {
                x.max(lo).min(hi)
            }
        }
        UnaryOp::Step => (x > 0.0) as i32 as f64,
        UnaryOp::InRange(lo, hi) => (x >= lo && x <= hi) as i32 as f64,
        UnaryOp::LeakyStep(a) => {
            if x > 0.0 {
                1.0
            } else {
                a
            }
        }
        UnaryOp::MishGrad => {
            if x == f64::INFINITY {
                1.0
            } else if x == f64::NEG_INFINITY {
                0.0
            } else {
                let t = softplus(x).tanh();
                t + x * (1.0 - t * t) * sigmoid(x)
            }
        }
    };
    match dtype {
        DType::F32 => r as f32 as f64,
        _ => r,
    }
}

/// Every unary op, the parameterized ones with representative parameters.
pub fn all_unary_ops() -> Vec<UnaryOp> {
    use UnaryOp::*;
    vec![
        Neg, Abs, Sign, Exp, Log, Log1p, Expm1, Log2, Sqrt, Square, Cube, Inverse, InverseSqrt, Sin, Cos, Tanh,
        Sigmoid, Softplus, Relu, Mish, Floor, Ceil, LeakyRelu(0.1), Clip(-1.5, 2.0), Step, InRange(-1.0, 1.0),
        LeakyStep(0.01), MishGrad,
    ]
}

pub fn int_ref_unary(op: UnaryOp, x: i64) -> i64 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sign => x.signum(),
        UnaryOp::Square => x * x,
        UnaryOp::Cube => x * x * x,
        UnaryOp::Relu => x.max(0),
        _ => unreachable!(),
    }
}

/// Binary reference in the operand dtype. Float ops run in that precision so rounding of
/// a/b (FloorDiv) and pow match; ints exactly.
pub fn binary_ref(op: BinaryOp, a: f64, b: f64, dtype: DType) -> f64 {
    pub fn cmp(op: BinaryOp, a: f64, b: f64) -> Option<f64> {
        let r = match op {
            BinaryOp::Lt => a < b,
            BinaryOp::Le => a <= b,
            BinaryOp::Gt => a > b,
            BinaryOp::Ge => a >= b,
            BinaryOp::Eq => a == b,
            BinaryOp::Ne => a != b,
            _ => return None,
        };
        Some(r as i32 as f64)
    }
    if let Some(c) = cmp(op, a, b) {
        return c;
    }
    macro_rules! float_ops {
        ($t:ty) => {{
            let (a, b) = (a as $t, b as $t);
            (match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                BinaryOp::Div => a / b,
                BinaryOp::Pow => a.powf(b),
                BinaryOp::FloorDiv => gorgon_core::kernels::elementwise::floor_divide_f64(a as f64, b as f64) as $t,
                BinaryOp::Maximum => {
                    if a.is_nan() || b.is_nan() {
                        <$t>::NAN
                    } else {
                        a.max(b)
                    }
                }
                BinaryOp::Minimum => {
                    if a.is_nan() || b.is_nan() {
                        <$t>::NAN
                    } else {
                        a.min(b)
                    }
                }
                _ => unreachable!(),
            }) as f64
        }};
    }
    match dtype {
        DType::F32 => float_ops!(f32),
        DType::F64 => float_ops!(f64),
        DType::I32 | DType::I64 => {
            let (a, b) = (a as i64, b as i64);
            (match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                BinaryOp::Pow => a.pow(b as u32),
                BinaryOp::FloorDiv => {
                    if b == 0 {
                        0
                    } else {
                        (a as f64 / b as f64).floor() as i64
                    }
                }
                BinaryOp::Maximum => a.max(b),
                BinaryOp::Minimum => a.min(b),
                _ => unreachable!(),
            }) as f64
        }
        DType::Bool => {
            let (a, b) = (a != 0.0, b != 0.0);
            (match op {
                BinaryOp::Add | BinaryOp::Maximum => a | b,
                BinaryOp::Mul | BinaryOp::Minimum => a & b,
                _ => unreachable!(),
            }) as i32 as f64
        }
    }
}

pub const ALL_BINARY: [BinaryOp; 14] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Pow,
    BinaryOp::FloorDiv,
    BinaryOp::Maximum,
    BinaryOp::Minimum,
    BinaryOp::Lt,
    BinaryOp::Le,
    BinaryOp::Gt,
    BinaryOp::Ge,
    BinaryOp::Eq,
    BinaryOp::Ne,
];

/// Output-index → operand row-major index under NumPy broadcasting.
pub fn bcast_index(out_shape: &[usize], in_shape: &[usize], flat: usize) -> usize {
    let nd = out_shape.len();
    let lead = nd - in_shape.len();
    let mut rem = flat;
    let mut idx = vec![0usize; nd];
    for d in (0..nd).rev() {
        idx[d] = rem % out_shape[d];
        rem /= out_shape[d];
    }
    let mut k = 0;
    for (i, &d) in in_shape.iter().enumerate() {
        let j = if d == 1 { 0 } else { idx[lead + i] };
        k = k * d + j;
    }
    k
}

pub fn bshape(a: &[usize], b: &[usize]) -> Vec<usize> {
    gorgon_core::shape::broadcast_shapes(a, b).unwrap()
}
