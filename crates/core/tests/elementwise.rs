//! Elementwise kernels against naive scalar references: every op, NumPy broadcasting,
//! 0-size and 0-d tensors, non-contiguous (permuted, sliced, reversed, broadcast) inputs,
//! non-standard-layout outputs, sizes large enough to split across threads, and errors.
//!
//! Passes with the default SIMD level and with `GORGON_SIMD=scalar`.

use gorgon_core::kernels::elementwise::{binary, cast, copy_into, unary, where_, BinaryOp, UnaryOp};
use gorgon_core::{CoreError, DType, Tensor, TensorView};
use ndarray::{ArrayD, IxDyn, ShapeBuilder};

// ----------------------------------------------------------------------------------------
// Helpers.
// ----------------------------------------------------------------------------------------

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Random values for `dtype`: floats mostly in [-3, 3] with specials sprinkled in, ints in
/// [-20, 20], bools 50/50.
fn rand_vals(dtype: DType, n: usize, rng: &mut Rng, specials: bool) -> Vec<f64> {
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

fn tensor_from(dtype: DType, vals: &[f64], shape: &[usize]) -> Tensor {
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
fn vals_of(v: &TensorView) -> Vec<f64> {
    v.to_owned().to_vec_f64()
}

/// Ways to present the same logical data as a view: contiguous, and strided views whose
/// logical contents equal `base`'s (built from differently laid out storage).
enum Layout {
    Contiguous,
    /// Stored transposed (last two axes swapped), viewed back permuted.
    Permuted,
    /// Stored reversed along axis 0 and viewed with a negative stride.
    Reversed,
    /// Stored with every other element padding along the last axis; viewed with step 2.
    Strided,
}

const LAYOUTS: [Layout; 4] = [Layout::Contiguous, Layout::Permuted, Layout::Reversed, Layout::Strided];

/// Storage for `vals` (row-major, `shape`) laid out as `layout`; `view_of` gives back a view
/// with the same logical contents.
struct Stored {
    t: Tensor,
    layout: usize,
    shape: Vec<usize>,
}

fn store(dtype: DType, vals: &[f64], shape: &[usize], layout: &Layout) -> Stored {
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
    fn view(&self) -> TensorView<'_> {
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

fn same(got: f64, want: f64, rtol: f64, atol: f64) -> bool {
    if want.is_nan() {
        return got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= rtol * want.abs() + atol
}

fn tol(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F32 => (2e-6, 1e-6),
        DType::F64 => (1e-13, 1e-13),
        _ => (0.0, 0.0),
    }
}

// ----------------------------------------------------------------------------------------
// Naive references.
// ----------------------------------------------------------------------------------------

fn softplus(x: f64) -> f64 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        x.exp() / (1.0 + x.exp())
    }
}

/// Unary reference, evaluated in f64 on the (exact) input value and rounded to the dtype.
fn unary_ref(op: UnaryOp, x: f64, dtype: DType) -> f64 {
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

fn all_unary_ops() -> Vec<UnaryOp> {
    use UnaryOp::*;
    vec![
        Neg,
        Abs,
        Sign,
        Exp,
        Log,
        Log1p,
        Expm1,
        Log2,
        Sqrt,
        Square,
        Cube,
        Inverse,
        InverseSqrt,
        Sin,
        Cos,
        Tanh,
        Sigmoid,
        Softplus,
        Relu,
        Mish,
        Floor,
        Ceil,
        LeakyRelu(0.1),
        Clip(-1.5, 2.0),
        Step,
        InRange(-1.0, 1.0),
        LeakyStep(0.01),
        MishGrad,
    ]
}

fn int_ref_unary(op: UnaryOp, x: i64) -> i64 {
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
fn binary_ref(op: BinaryOp, a: f64, b: f64, dtype: DType) -> f64 {
    fn cmp(op: BinaryOp, a: f64, b: f64) -> Option<f64> {
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

const ALL_BINARY: [BinaryOp; 14] = [
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
fn bcast_index(out_shape: &[usize], in_shape: &[usize], flat: usize) -> usize {
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

fn bshape(a: &[usize], b: &[usize]) -> Vec<usize> {
    gorgon_core::shape::broadcast_shapes(a, b).unwrap()
}

// ----------------------------------------------------------------------------------------
// Unary.
// ----------------------------------------------------------------------------------------

const UNARY_SHAPES: &[&[usize]] = &[&[], &[0], &[1], &[7], &[3, 4], &[2, 0, 3], &[2, 3, 5], &[4, 1, 33]];

#[test]
fn unary_float_all_ops_all_layouts() {
    let mut rng = Rng(1);
    for dtype in [DType::F32, DType::F64] {
        let (rtol, atol) = tol(dtype);
        for shape in UNARY_SHAPES {
            let n: usize = shape.iter().product();
            let vals = rand_vals(dtype, n, &mut rng, true);
            let vals: Vec<f64> = tensor_from(dtype, &vals, shape).to_vec_f64(); // rounded to dtype
            for layout in &LAYOUTS {
                let st = store(dtype, &vals, shape, layout);
                let v = st.view();
                assert!(vals_of(&v).iter().zip(&vals).all(|(a, b)| same(*a, *b, 0.0, 0.0)));
                for op in all_unary_ops() {
                    let mut out = Tensor::zeros(dtype, shape);
                    unary(op, &v, &mut out).unwrap();
                    assert_eq!(out.shape(), *shape);
                    for (i, (&g, &x)) in out.to_vec_f64().iter().zip(&vals).enumerate() {
                        let w = unary_ref(op, x, dtype);
                        assert!(same(g, w, rtol, atol), "{op:?} {dtype} {shape:?} [{i}] x={x:e}: got {g:e} want {w:e}");
                    }
                }
            }
        }
    }
}

#[test]
fn unary_broadcast_view_input() {
    // A zero-stride input (a broadcast row) through the strided path.
    let row = Tensor::from_vec(vec![0.5f32, -1.0, 2.0], &[3]).unwrap();
    let v = row.view().broadcast_to(&[4, 3]).unwrap();
    let mut out = Tensor::zeros(DType::F32, &[4, 3]);
    unary(UnaryOp::Exp, &v, &mut out).unwrap();
    let want: Vec<f64> = (0..4).flat_map(|_| [0.5f32, -1.0, 2.0]).map(|x| x.exp() as f64).collect();
    for (g, w) in out.to_vec_f64().iter().zip(&want) {
        assert!((g - w).abs() <= 1e-6 * w.abs());
    }
    let col = Tensor::from_vec(vec![1.0f64, 4.0], &[2, 1]).unwrap();
    let v = col.view().broadcast_to(&[2, 5]).unwrap();
    let mut out = Tensor::zeros(DType::F64, &[2, 5]);
    unary(UnaryOp::Sqrt, &v, &mut out).unwrap();
    assert_eq!(out.to_vec_f64(), vec![1., 1., 1., 1., 1., 2., 2., 2., 2., 2.]);
}

#[test]
fn unary_int_ops_and_rejections() {
    let mut rng = Rng(2);
    for dtype in [DType::I32, DType::I64] {
        for shape in UNARY_SHAPES {
            let n: usize = shape.iter().product();
            let vals = rand_vals(dtype, n, &mut rng, false);
            for layout in &LAYOUTS {
                let st = store(dtype, &vals, shape, layout);
                for op in [UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Sign, UnaryOp::Square, UnaryOp::Cube, UnaryOp::Relu] {
                    let mut out = Tensor::zeros(dtype, shape);
                    unary(op, &st.view(), &mut out).unwrap();
                    let want: Vec<f64> = vals.iter().map(|&x| int_ref_unary(op, x as i64) as f64).collect();
                    assert_eq!(out.to_vec_f64(), want, "{op:?} {dtype} {shape:?}");
                }
            }
        }
        let x = Tensor::zeros(dtype, &[3]);
        for op in all_unary_ops() {
            if op.supports(dtype) {
                continue;
            }
            let mut out = Tensor::zeros(dtype, &[3]);
            match unary(op, &x.view(), &mut out) {
                Err(CoreError::DType { op: name, dtype: d, .. }) => {
                    assert_eq!(name, op.name());
                    assert_eq!(d, dtype);
                }
                other => panic!("{op:?} on {dtype}: {other:?}"),
            }
        }
    }
    // Wrapping, not panicking, at the integer limits.
    let x = Tensor::from_vec(vec![i32::MIN, i32::MAX], &[2]).unwrap();
    let mut out = Tensor::zeros(DType::I32, &[2]);
    unary(UnaryOp::Neg, &x.view(), &mut out).unwrap();
    assert_eq!(out.as_array::<i32>().unwrap().as_slice().unwrap(), &[i32::MIN, -i32::MAX]);
    unary(UnaryOp::Abs, &x.view(), &mut out).unwrap();
    unary(UnaryOp::Cube, &x.view(), &mut out).unwrap();
}

#[test]
fn unary_errors() {
    let x = Tensor::zeros(DType::F32, &[2, 3]);
    let mut wrong_shape = Tensor::zeros(DType::F32, &[3, 2]);
    assert!(matches!(unary(UnaryOp::Exp, &x.view(), &mut wrong_shape), Err(CoreError::Shape { op: "exp", .. })));
    let mut wrong_dtype = Tensor::zeros(DType::F64, &[2, 3]);
    assert!(matches!(unary(UnaryOp::Exp, &x.view(), &mut wrong_dtype), Err(CoreError::DType { .. })));
    let b = Tensor::zeros(DType::Bool, &[2]);
    let mut bo = Tensor::zeros(DType::Bool, &[2]);
    assert!(matches!(unary(UnaryOp::Neg, &b.view(), &mut bo), Err(CoreError::DType { dtype: DType::Bool, .. })));
}

#[test]
fn unary_special_values() {
    let nan = f64::NAN;
    let x = Tensor::from_vec(vec![nan, -0.0, 0.0, -2.0, 3.0], &[5]).unwrap();
    let mut out = Tensor::zeros(DType::F64, &[5]);
    unary(UnaryOp::Sign, &x.view(), &mut out).unwrap();
    let o = out.to_vec_f64();
    assert!(o[0].is_nan());
    assert_eq!(&o[1..], &[0.0, 0.0, -1.0, 1.0]);
    unary(UnaryOp::InverseSqrt, &x.view(), &mut out).unwrap();
    let o = out.to_vec_f64();
    assert_eq!(o[1], f64::NEG_INFINITY);
    assert_eq!(o[2], f64::INFINITY);
    assert!(o[3].is_nan());
    assert_eq!(o[4], 1.0 / 3f64.sqrt());
    unary(UnaryOp::Relu, &x.view(), &mut out).unwrap();
    assert!(out.to_vec_f64()[0].is_nan());
    let big = Tensor::from_vec(vec![-1000.0f32, -100.0, 0.0, 19.0, 21.0, 1000.0, f32::INFINITY, f32::NEG_INFINITY], &[8])
        .unwrap();
    let mut out = Tensor::zeros(DType::F32, &[8]);
    unary(UnaryOp::Softplus, &big.view(), &mut out).unwrap();
    let o = out.to_vec_f64();
    assert_eq!(o[0], 0.0);
    assert!(o[1] > 0.0 && o[1] < 1e-40);
    assert!((o[2] - 2f64.ln()).abs() < 1e-7);
    assert_eq!(o[4], 21.0);
    assert_eq!(o[5], 1000.0);
    assert_eq!(o[6], f64::INFINITY);
    assert_eq!(o[7], 0.0);
    unary(UnaryOp::Sigmoid, &big.view(), &mut out).unwrap();
    assert_eq!(out.to_vec_f64(), vec![0.0, (-100f64).exp() as f32 as f64, 0.5, sigmoid(19.0) as f32 as f64, 1.0, 1.0, 1.0, 0.0]);
    unary(UnaryOp::Mish, &big.view(), &mut out).unwrap();
    let o = out.to_vec_f64();
    assert!(o.iter().all(|v| !v.is_nan()));
    assert_eq!(o[5], 1000.0);
    unary(UnaryOp::MishGrad, &big.view(), &mut out).unwrap();
    let o = out.to_vec_f64();
    assert!(o.iter().all(|v| !v.is_nan()));
    assert_eq!((o[5], o[6], o[7]), (1.0, 1.0, 0.0));
    unary(UnaryOp::Tanh, &big.view(), &mut out).unwrap();
    assert_eq!(out.to_vec_f64(), vec![-1.0, -1.0, 0.0, 1.0, 1.0, 1.0, 1.0, -1.0]);
}

#[test]
fn mish_grad_matches_finite_difference() {
    let xs: Vec<f64> = (0..400).map(|i| -12.0 + i as f64 * 0.06).collect();
    let x = Tensor::from_vec(xs.clone(), &[400]).unwrap();
    let mut g = Tensor::zeros(DType::F64, &[400]);
    unary(UnaryOp::MishGrad, &x.view(), &mut g).unwrap();
    let mish = |v: f64| v * softplus(v).tanh();
    for (&v, &gv) in xs.iter().zip(g.to_vec_f64().iter()) {
        let h = 1e-6;
        let fd = (mish(v + h) - mish(v - h)) / (2.0 * h);
        assert!((fd - gv).abs() < 1e-6, "x={v}: {gv} vs {fd}");
    }
}

#[test]
fn unary_large_threaded_matches_small() {
    // Big enough to split across threads (contiguous and strided), compared with the
    // single-threaded result on each piece.
    let mut rng = Rng(3);
    let shape = [300usize, 700];
    let vals = rand_vals(DType::F32, 300 * 700, &mut rng, true);
    let vals = tensor_from(DType::F32, &vals, &shape).to_vec_f64();
    for layout in &LAYOUTS {
        let st = store(DType::F32, &vals, &shape, layout);
        for op in [UnaryOp::Exp, UnaryOp::Tanh, UnaryOp::Square, UnaryOp::Mish, UnaryOp::Sigmoid] {
            let mut out = Tensor::zeros(DType::F32, &shape);
            unary(op, &st.view(), &mut out).unwrap();
            let got = out.to_vec_f64();
            // Row by row (each row well below the threading threshold).
            for r in [0usize, 1, 149, 150, 299] {
                let row = Tensor::from_vec(vals[r * 700..(r + 1) * 700].iter().map(|&v| v as f32).collect::<Vec<_>>(), &[700])
                    .unwrap();
                let mut ro = Tensor::zeros(DType::F32, &[700]);
                unary(op, &row.view(), &mut ro).unwrap();
                let ro = ro.to_vec_f64();
                for c in 0..700 {
                    let (g, w) = (got[r * 700 + c], ro[c]);
                    assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{op:?} [{r},{c}]");
                }
            }
        }
    }
}

#[test]
fn non_standard_layout_output() {
    let x = Tensor::from_vec((0..12).map(|v| v as f32).collect::<Vec<_>>(), &[3, 4]).unwrap();
    let mut out = Tensor::F32(ArrayD::zeros(IxDyn(&[3, 4]).f()));
    unary(UnaryOp::Square, &x.view(), &mut out).unwrap();
    assert_eq!(out.to_vec_f64(), (0..12).map(|v| (v * v) as f64).collect::<Vec<_>>());
    let b = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[4]).unwrap();
    binary(BinaryOp::Add, &x.view(), &b.view(), &mut out).unwrap();
    assert_eq!(out.to_vec_f64(), (0..12).map(|v| (v + v % 4 + 1) as f64).collect::<Vec<_>>());
}

// ----------------------------------------------------------------------------------------
// Binary.
// ----------------------------------------------------------------------------------------

const PAIRS: &[(&[usize], &[usize])] = &[
    (&[2, 1, 3], &[4, 1]),
    (&[3], &[2, 3]),
    (&[], &[2, 2]),
    (&[2, 2], &[]),
    (&[], &[]),
    (&[5, 1], &[1, 6]),
    (&[0, 3], &[1, 3]),
    (&[2, 3], &[2, 3]),
    (&[1], &[1]),
    (&[4, 5, 6], &[6]),
    (&[4, 1, 6], &[1, 5, 1]),
    (&[7], &[]),
    (&[3, 1], &[3, 1]),
    (&[2, 3, 1, 4], &[3, 5, 1]),
];

fn check_binary(op: BinaryOp, dtype: DType, sa: &[usize], sb: &[usize], rng: &mut Rng, layouts: bool) {
    let (rtol, atol) = tol(dtype);
    let shape = bshape(sa, sb);
    let na: usize = sa.iter().product();
    let nb: usize = sb.iter().product();
    let mut av = tensor_from(dtype, &rand_vals(dtype, na, rng, true), sa).to_vec_f64();
    let mut bv = tensor_from(dtype, &rand_vals(dtype, nb, rng, true), sb).to_vec_f64();
    if op == BinaryOp::Pow && dtype.is_int() {
        bv.iter_mut().for_each(|v| *v = v.abs() % 5.0);
        av.iter_mut().for_each(|v| *v %= 9.0);
    }
    let want: Vec<f64> = (0..shape.iter().product::<usize>())
        .map(|i| binary_ref(op, av[bcast_index(&shape, sa, i)], bv[bcast_index(&shape, sb, i)], dtype))
        .collect();
    let la: &[Layout] = if layouts { &LAYOUTS } else { &LAYOUTS[..1] };
    for (li, l) in la.iter().enumerate() {
        let a = store(dtype, &av, sa, l);
        let b = store(dtype, &bv, sb, &LAYOUTS[(li + 1) % la.len()]);
        let mut out = Tensor::zeros(dtype, &shape);
        binary(op, &a.view(), &b.view(), &mut out).unwrap();
        for (i, (&g, &w)) in out.to_vec_f64().iter().zip(&want).enumerate() {
            assert!(same(g, w, rtol, atol), "{op:?} {dtype} {sa:?}x{sb:?} [{i}]: got {g} want {w}");
        }
    }
}

#[test]
fn binary_float_all_ops_broadcasting() {
    let mut rng = Rng(4);
    for dtype in [DType::F32, DType::F64] {
        for op in ALL_BINARY {
            for (sa, sb) in PAIRS {
                check_binary(op, dtype, sa, sb, &mut rng, true);
            }
        }
    }
}

#[test]
fn binary_int_all_ops_broadcasting() {
    let mut rng = Rng(5);
    for dtype in [DType::I32, DType::I64] {
        for op in ALL_BINARY {
            if op == BinaryOp::Div {
                continue;
            }
            for (sa, sb) in PAIRS {
                check_binary(op, dtype, sa, sb, &mut rng, true);
            }
        }
        let a = Tensor::zeros(dtype, &[3]);
        let mut out = Tensor::zeros(dtype, &[3]);
        assert!(matches!(binary(BinaryOp::Div, &a.view(), &a.view(), &mut out), Err(CoreError::DType { .. })));
        let neg = tensor_from(dtype, &[1.0, -1.0, 2.0], &[3]);
        assert!(matches!(binary(BinaryOp::Pow, &a.view(), &neg.view(), &mut out), Err(CoreError::DType { .. })));
    }
    // NumPy floor_divide semantics, division by zero → 0, MIN / -1 wraps.
    let a = Tensor::from_vec(vec![7i64, -7, 7, -7, 5, i64::MIN, 0], &[7]).unwrap();
    let b = Tensor::from_vec(vec![2i64, 2, -2, -2, 0, -1, 3], &[7]).unwrap();
    let mut out = Tensor::zeros(DType::I64, &[7]);
    binary(BinaryOp::FloorDiv, &a.view(), &b.view(), &mut out).unwrap();
    assert_eq!(out.as_array::<i64>().unwrap().as_slice().unwrap(), &[3, -4, -4, 3, 0, i64::MIN, 0]);
    let a = Tensor::from_vec(vec![3i32, -2, 0, 7], &[4]).unwrap();
    let b = Tensor::from_vec(vec![4i32, 3, 0, 0], &[4]).unwrap();
    let mut out = Tensor::zeros(DType::I32, &[4]);
    binary(BinaryOp::Pow, &a.view(), &b.view(), &mut out).unwrap();
    assert_eq!(out.as_array::<i32>().unwrap().as_slice().unwrap(), &[81, -8, 1, 1]);
}

#[test]
fn binary_bool() {
    let mut rng = Rng(6);
    for op in [BinaryOp::Add, BinaryOp::Mul, BinaryOp::Maximum, BinaryOp::Minimum, BinaryOp::Lt, BinaryOp::Le, BinaryOp::Gt, BinaryOp::Ge, BinaryOp::Eq, BinaryOp::Ne]
    {
        for (sa, sb) in PAIRS {
            check_binary(op, DType::Bool, sa, sb, &mut rng, false);
        }
    }
    let a = Tensor::zeros(DType::Bool, &[2]);
    let mut out = Tensor::zeros(DType::Bool, &[2]);
    for op in [BinaryOp::Sub, BinaryOp::Div, BinaryOp::Pow, BinaryOp::FloorDiv] {
        assert!(matches!(binary(op, &a.view(), &a.view(), &mut out), Err(CoreError::DType { dtype: DType::Bool, .. })));
    }
}

#[test]
fn binary_nan_propagation_and_comparisons() {
    let nan = f32::NAN;
    let a = Tensor::from_vec(vec![nan, 1.0, nan, 2.0, -0.0], &[5]).unwrap();
    let b = Tensor::from_vec(vec![1.0f32, nan, nan, 3.0, 0.0], &[5]).unwrap();
    let mut out = Tensor::zeros(DType::F32, &[5]);
    binary(BinaryOp::Maximum, &a.view(), &b.view(), &mut out).unwrap();
    let o = out.to_vec_f64();
    assert!(o[0].is_nan() && o[1].is_nan() && o[2].is_nan());
    assert_eq!(o[3], 3.0);
    binary(BinaryOp::Minimum, &a.view(), &b.view(), &mut out).unwrap();
    let o = out.to_vec_f64();
    assert!(o[0].is_nan() && o[1].is_nan() && o[2].is_nan());
    assert_eq!(o[3], 2.0);
    binary(BinaryOp::Ne, &a.view(), &b.view(), &mut out).unwrap();
    assert_eq!(out.to_vec_f64(), vec![1.0, 1.0, 1.0, 1.0, 0.0]);
    binary(BinaryOp::Eq, &a.view(), &b.view(), &mut out).unwrap();
    assert_eq!(out.to_vec_f64(), vec![0.0, 0.0, 0.0, 0.0, 1.0]);
    binary(BinaryOp::Le, &a.view(), &b.view(), &mut out).unwrap();
    assert_eq!(out.to_vec_f64(), vec![0.0, 0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn binary_errors() {
    let a = Tensor::zeros(DType::F32, &[2, 3]);
    let b = Tensor::zeros(DType::F32, &[4]);
    let mut out = Tensor::zeros(DType::F32, &[2, 3]);
    assert!(matches!(binary(BinaryOp::Add, &a.view(), &b.view(), &mut out), Err(CoreError::Shape { op: "add", .. })));
    let c = Tensor::zeros(DType::F64, &[2, 3]);
    assert!(matches!(binary(BinaryOp::Add, &a.view(), &c.view(), &mut out), Err(CoreError::DType { .. })));
    let mut out64 = Tensor::zeros(DType::F64, &[2, 3]);
    assert!(matches!(binary(BinaryOp::Add, &a.view(), &a.view(), &mut out64), Err(CoreError::DType { .. })));
    let mut wrong = Tensor::zeros(DType::F32, &[3, 2]);
    assert!(matches!(binary(BinaryOp::Add, &a.view(), &a.view(), &mut wrong), Err(CoreError::Shape { .. })));
    let msg = binary(BinaryOp::Mul, &a.view(), &b.view(), &mut out).unwrap_err().to_string();
    assert!(msg.contains("(2, 3)") && msg.contains("(4,)"), "{msg}");
}

#[test]
fn binary_large_threaded() {
    // Row broadcast, column broadcast, transposed operand, scalar operand: all big enough to
    // split across threads, pieces starting in the middle of rows.
    let mut rng = Rng(7);
    for (sa, sb) in [
        (&[301usize, 517][..], &[517usize][..]),
        (&[301, 517], &[301, 1]),
        (&[301, 517], &[]),
        (&[301, 517], &[301, 517]),
        (&[3, 211, 130], &[211, 1]),
    ] {
        for op in [BinaryOp::Add, BinaryOp::Mul, BinaryOp::Maximum, BinaryOp::Gt] {
            check_binary(op, DType::F32, sa, sb, &mut rng, true);
            check_binary(op, DType::I64, sa, sb, &mut rng, false);
        }
    }
}

// ----------------------------------------------------------------------------------------
// where, cast, copy.
// ----------------------------------------------------------------------------------------

#[test]
fn where_all_dtypes_broadcasting() {
    let mut rng = Rng(8);
    let triples: &[(&[usize], &[usize], &[usize])] = &[
        (&[2, 1, 3], &[4, 1], &[3]),
        (&[], &[2, 2], &[2, 2]),
        (&[5], &[], &[]),
        (&[3, 4], &[3, 4], &[3, 4]),
        (&[0, 2], &[2], &[1]),
        (&[4, 1], &[1, 6], &[4, 6]),
        (&[200, 1], &[1, 400], &[400]),
    ];
    for cd in DType::ALL {
        for dt in DType::ALL {
            for (sc, sa, sb) in triples {
                let shape = bshape(&bshape(sc, sa), sb);
                let n = |s: &[usize]| s.iter().product::<usize>();
                let mut cv = rand_vals(cd, n(sc), &mut rng, true);
                // Make some float conditions exactly zero / negative zero / NaN.
                cv.iter_mut().enumerate().for_each(|(i, v)| {
                    if cd.is_float() && i % 5 == 0 {
                        *v = [0.0, -0.0, f64::NAN, 0.0, 1.0][i / 5 % 5];
                    }
                });
                let cv = tensor_from(cd, &cv, sc).to_vec_f64();
                let av = tensor_from(dt, &rand_vals(dt, n(sa), &mut rng, true), sa).to_vec_f64();
                let bv = tensor_from(dt, &rand_vals(dt, n(sb), &mut rng, true), sb).to_vec_f64();
                let want: Vec<f64> = (0..n(&shape))
                    .map(|i| {
                        let c = cv[bcast_index(&shape, sc, i)];
                        if c != 0.0 {
                            av[bcast_index(&shape, sa, i)]
                        } else {
                            bv[bcast_index(&shape, sb, i)]
                        }
                    })
                    .collect();
                for (li, l) in LAYOUTS.iter().enumerate() {
                    let c = store(cd, &cv, sc, l);
                    let a = store(dt, &av, sa, &LAYOUTS[(li + 1) % 4]);
                    let b = store(dt, &bv, sb, &LAYOUTS[(li + 2) % 4]);
                    let mut out = Tensor::zeros(dt, &shape);
                    where_(&c.view(), &a.view(), &b.view(), &mut out).unwrap();
                    let got = out.to_vec_f64();
                    for i in 0..got.len() {
                        assert!(same(got[i], want[i], 0.0, 0.0), "where {cd} {dt} {sc:?} {sa:?} {sb:?} [{i}]");
                    }
                }
            }
        }
    }
    let c = Tensor::zeros(DType::Bool, &[3]);
    let a = Tensor::zeros(DType::F32, &[3]);
    let b = Tensor::zeros(DType::F64, &[3]);
    let mut out = Tensor::zeros(DType::F32, &[3]);
    assert!(matches!(where_(&c.view(), &a.view(), &b.view(), &mut out), Err(CoreError::DType { op: "where", .. })));
    let b = Tensor::zeros(DType::F32, &[4]);
    assert!(matches!(where_(&c.view(), &a.view(), &b.view(), &mut out), Err(CoreError::Shape { op: "where", .. })));
}

fn cast_ref(v: f64, from: DType, to: DType) -> f64 {
    let _ = from;
    match to {
        DType::F32 => v as f32 as f64,
        DType::F64 => v,
        DType::I32 => {
            if from == DType::I64 {
                (v as i64) as i32 as f64
            } else {
                v as i32 as f64
            }
        }
        DType::I64 => v as i64 as f64,
        DType::Bool => (v != 0.0) as i32 as f64,
    }
}

#[test]
fn cast_all_pairs() {
    let specials = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        2.7,
        -2.7,
        0.5,
        -0.5,
        1e10,
        -1e10,
        1e30,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        3e9,
        123456789.0,
        16777217.0,
    ];
    let mut rng = Rng(9);
    for from in DType::ALL {
        for to in DType::ALL {
            let vals: Vec<f64> = match from {
                DType::F32 | DType::F64 => specials.to_vec(),
                DType::I64 => vec![0.0, 1.0, -1.0, 3e9, -3e9, 16777217.0, 9007199254740993.0, 1e15],
                DType::I32 => vec![0.0, 1.0, -1.0, 2147483647.0, -2147483648.0, 16777217.0],
                DType::Bool => vec![0.0, 1.0, 1.0, 0.0],
            };
            // Exact source values (the f64 ones for i64 may not be representable; use the
            // tensor's own values).
            let src = tensor_from(from, &vals, &[vals.len()]);
            let sv = src.to_vec_f64();
            for layout in &LAYOUTS[..3] {
                let shape = [2usize, vals.len()];
                let vv: Vec<f64> = sv.iter().chain(sv.iter()).copied().collect();
                let st = store(from, &vv, &shape, layout);
                let mut out = Tensor::zeros(to, &shape);
                cast(&st.view(), &mut out).unwrap();
                let got = out.to_vec_f64();
                for (i, &g) in got.iter().enumerate() {
                    let v = vv[i];
                    let w = if from == DType::I64 && to != DType::F64 && to != DType::I64 {
                        // Through the exact i64 value.
                        let iv = src.as_array::<i64>().unwrap()[[i % vals.len()]];
                        match to {
                            DType::F32 => iv as f32 as f64,
                            DType::I32 => iv as i32 as f64,
                            DType::Bool => (iv != 0) as i32 as f64,
                            _ => unreachable!(),
                        }
                    } else if from == DType::I64 && to == DType::I64 {
                        v
                    } else {
                        cast_ref(v, from, to)
                    };
                    assert!(same(g, w, 0.0, 0.0), "cast {from}->{to} [{i}] {v}: got {g} want {w}");
                }
            }
        }
        let _ = rand_vals(from, 1, &mut rng, false);
    }
    // Spot checks of the documented semantics.
    let x = Tensor::from_vec(vec![-2.7f32, 2.7, f32::NAN, 1e20, -1e20, -0.0], &[6]).unwrap();
    let mut o = Tensor::zeros(DType::I32, &[6]);
    cast(&x.view(), &mut o).unwrap();
    assert_eq!(o.as_array::<i32>().unwrap().as_slice().unwrap(), &[-2, 2, 0, i32::MAX, i32::MIN, 0]);
    let mut b = Tensor::zeros(DType::Bool, &[6]);
    cast(&x.view(), &mut b).unwrap();
    assert_eq!(b.as_array::<bool>().unwrap().as_slice().unwrap(), &[true, true, true, true, true, false]);
    let mut wrong = Tensor::zeros(DType::I32, &[5]);
    assert!(matches!(cast(&x.view(), &mut wrong), Err(CoreError::Shape { .. })));
    // 0-d and 0-size.
    let s = Tensor::scalar(DType::F64, 3.9);
    let mut so = Tensor::zeros(DType::I64, &[]);
    cast(&s.view(), &mut so).unwrap();
    assert_eq!(so.to_vec_f64(), vec![3.0]);
    let e = Tensor::zeros(DType::F32, &[0, 4]);
    let mut eo = Tensor::zeros(DType::Bool, &[0, 4]);
    cast(&e.view(), &mut eo).unwrap();
}

#[test]
fn copy_into_views() {
    let mut rng = Rng(10);
    for dtype in DType::ALL {
        for shape in UNARY_SHAPES {
            let n: usize = shape.iter().product();
            let vals = tensor_from(dtype, &rand_vals(dtype, n, &mut rng, true), shape).to_vec_f64();
            for layout in &LAYOUTS {
                let st = store(dtype, &vals, shape, layout);
                let mut out = Tensor::zeros(dtype, shape);
                copy_into(&st.view(), &mut out).unwrap();
                let got = out.to_vec_f64();
                assert!(got.iter().zip(&vals).all(|(g, w)| same(*g, *w, 0.0, 0.0)), "{dtype} {shape:?}");
            }
        }
    }
    // Broadcast views, big enough to be threaded.
    let row = Tensor::from_vec((0..300).collect::<Vec<i32>>(), &[300]).unwrap();
    let v = row.view().broadcast_to(&[400, 300]).unwrap();
    let mut out = Tensor::zeros(DType::I32, &[400, 300]);
    copy_into(&v, &mut out).unwrap();
    let a = out.as_array::<i32>().unwrap();
    assert!(a.outer_iter().all(|r| r.iter().enumerate().all(|(i, &x)| x == i as i32)));
    let col = Tensor::from_vec((0..400).map(|v| v as f64).collect::<Vec<_>>(), &[400, 1]).unwrap();
    let v = col.view().broadcast_to(&[400, 300]).unwrap().permuted(&[1, 0]).unwrap();
    let mut out = Tensor::zeros(DType::F64, &[300, 400]);
    copy_into(&v, &mut out).unwrap();
    assert_eq!(out.to_vec_f64(), vals_of(&v));
    // Errors.
    let x = Tensor::zeros(DType::F32, &[2, 3]);
    let mut o = Tensor::zeros(DType::F64, &[2, 3]);
    assert!(matches!(copy_into(&x.view(), &mut o), Err(CoreError::DType { .. })));
    let mut o = Tensor::zeros(DType::F32, &[3, 2]);
    assert!(matches!(copy_into(&x.view(), &mut o), Err(CoreError::Shape { .. })));
}

#[test]
fn zero_d_and_zero_size() {
    let s = Tensor::scalar(DType::F32, 2.0);
    let mut o = Tensor::zeros(DType::F32, &[]);
    unary(UnaryOp::Exp, &s.view(), &mut o).unwrap();
    assert!((o.to_vec_f64()[0] - 2f64.exp()).abs() < 1e-5);
    binary(BinaryOp::Pow, &s.view(), &s.view(), &mut o).unwrap();
    assert_eq!(o.to_vec_f64(), vec![4.0]);
    let e = Tensor::zeros(DType::F64, &[3, 0]);
    let mut eo = Tensor::zeros(DType::F64, &[3, 0]);
    unary(UnaryOp::Tanh, &e.view(), &mut eo).unwrap();
    binary(BinaryOp::Add, &e.view(), &s.view().broadcast_to(&[]).unwrap().to_owned().view(), &mut eo).unwrap_err();
    let s64 = Tensor::scalar(DType::F64, 1.0);
    binary(BinaryOp::Add, &e.view(), &s64.view(), &mut eo).unwrap();
    let c = Tensor::zeros(DType::Bool, &[0]);
    let mut wo = Tensor::zeros(DType::F64, &[3, 0]);
    where_(&c.view(), &e.view(), &s64.view(), &mut wo).unwrap();
}
