//! `where`, `cast` and `copy_into` against naive references: every dtype (pair), three-way
//! broadcasting, non-contiguous and broadcast views, NumPy `astype` semantics, 0-d and
//! 0-size tensors.

mod common;

use common::elementwise::*;
use common::Rng;
use gorgon_core::kernels::elementwise::{binary, cast, copy_into, unary, where_, BinaryOp, UnaryOp};
use gorgon_core::{CoreError, DType, Tensor};

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
