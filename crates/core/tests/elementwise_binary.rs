//! Binary elementwise kernels against naive scalar references: every op and dtype, NumPy
//! broadcasting over differently laid out operands, NaN rules, threaded sizes, and errors.
//!
//! Passes with the default SIMD level and with `GORGON_SIMD=scalar`.

mod common;

use common::elementwise::*;
use common::Rng;
use gorgon_core::kernels::elementwise::{binary, BinaryOp};
use gorgon_core::{CoreError, DType, Tensor};

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
