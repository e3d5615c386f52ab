//! Unary elementwise kernels against naive scalar references: every op, 0-size and 0-d
//! tensors, non-contiguous (permuted, sliced, reversed, broadcast) inputs, non-standard-layout
//! outputs, sizes large enough to split across threads, and errors. Binary ops are in
//! `elementwise_binary.rs`, `where`/`cast`/copies in `elementwise_convert.rs`.
//!
//! Passes with the default SIMD level and with `GORGON_SIMD=scalar`.

mod common;

use common::elementwise::*;
use common::{sigmoid, Rng};
use gorgon_core::kernels::elementwise::{binary, unary, BinaryOp, UnaryOp};
use gorgon_core::{CoreError, DType, Tensor};
use ndarray::{ArrayD, IxDyn, ShapeBuilder};

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
