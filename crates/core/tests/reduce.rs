//! Reductions and arg reductions against naive f64 references, over contiguous, permuted,
//! reversed (negative-stride) and broadcast views, 0-size and 0-d shapes, and inputs large
//! enough to take the threaded paths.

mod common;

use common::views::*;
use gorgon_core::error::CoreError;
use gorgon_core::kernels::reduce::{arg_reduce, reduce, ReduceOp};
use gorgon_core::{DType, Tensor};

fn reduce_ref(op: ReduceOp, dt: DType, data: &[f64], shape: &[usize], axes: &[usize]) -> Vec<f64> {
    let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    let groups = group_by_kept(data, shape, &kept);
    let int = dt.is_int();
    let wrap = |v: i64| {
        if dt == DType::I32 {
            v as i32 as f64
        } else {
            v as f64
        }
    };
    groups
        .iter()
        .map(|g| match op {
            ReduceOp::Sum if int => wrap(g.iter().fold(0i64, |a, &v| a.wrapping_add(v as i64))),
            ReduceOp::Prod if int => wrap(g.iter().fold(1i64, |a, &v| a.wrapping_mul(v as i64))),
            ReduceOp::Sum => g.iter().sum(),
            ReduceOp::Prod => g.iter().product(),
            ReduceOp::Mean => g.iter().sum::<f64>() / g.len() as f64,
            ReduceOp::Max => g.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            ReduceOp::Min => g.iter().copied().fold(f64::INFINITY, f64::min),
            ReduceOp::LogSumExp => {
                let m = g.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let m = if m.is_finite() { m } else { 0.0 };
                m + g.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
            }
        })
        .collect()
}

fn check_reduce(
    op: ReduceOp,
    dt: DType,
    shape: &[usize],
    axes: &[usize],
    layout: &Layout,
    seed: u64,
) {
    let st = storage(dt, shape, layout, seed);
    let v = view_of(&st, shape, layout);
    let data = v.to_owned().to_vec_f64();
    let kept: Vec<usize> = (0..shape.len())
        .filter(|a| !axes.contains(a))
        .map(|a| shape[a])
        .collect();
    let mut out = Tensor::zeros(dt, &kept);
    let what = format!(
        "{op:?} {dt} {shape:?} axes {axes:?} layout {}",
        layout_name(layout)
    );
    let n_red: usize = axes.iter().map(|&a| shape[a]).product();
    let res = reduce(op, &v, axes, &mut out);
    if n_red == 0 && matches!(op, ReduceOp::Max | ReduceOp::Min) {
        assert!(
            matches!(res, Err(CoreError::Shape { .. })),
            "{what}: expected a shape error, got {res:?}"
        );
        return;
    }
    res.unwrap_or_else(|e| panic!("{what}: {e}"));
    let want = reduce_ref(op, dt, &data, shape, axes);
    let tol = match dt {
        DType::F32 => 2e-6 * (n_red as f64).sqrt().max(1.0) + 1e-6,
        DType::F64 => 1e-12 * (n_red as f64).sqrt().max(1.0),
        _ => 0.0,
    };
    close(&out.to_vec_f64(), &want, tol, &what);
}


const FLOAT_OPS: [ReduceOp; 6] = [
    ReduceOp::Sum,
    ReduceOp::Mean,
    ReduceOp::Max,
    ReduceOp::Min,
    ReduceOp::Prod,
    ReduceOp::LogSumExp,
];
const INT_OPS: [ReduceOp; 4] = [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min, ReduceOp::Prod];

#[test]
fn reduce_small_shapes_all_axes_all_layouts() {
    let shapes: &[&[usize]] = &[
        &[],
        &[0],
        &[5],
        &[0, 3],
        &[3, 0],
        &[4, 5],
        &[1, 7, 1],
        &[3, 4, 5],
        &[2, 3, 2, 5],
        &[17, 33],
    ];
    let mut seed = 1;
    for &shape in shapes {
        for axes in subsets(shape.len()) {
            for layout in &LAYOUTS {
                for dt in [DType::F32, DType::F64] {
                    for op in FLOAT_OPS {
                        seed += 1;
                        check_reduce(op, dt, shape, &axes, layout, seed);
                    }
                }
                for dt in [DType::I32, DType::I64] {
                    for op in INT_OPS {
                        seed += 1;
                        check_reduce(op, dt, shape, &axes, layout, seed);
                    }
                }
            }
        }
    }
}

#[test]
fn reduce_large_threaded_paths() {
    // >= 2^18 elements: threaded full / rows / columns / row-split columns
    let cases: &[(&[usize], &[usize])] = &[
        (&[600, 700], &[0]),
        (&[600, 700], &[1]),
        (&[600, 700], &[0, 1]),
        (&[300_000], &[0]),
        (&[100_000, 3], &[0]),
        (&[3, 100_000], &[1]),
        (&[3, 300, 400], &[1]),
        (&[40, 80, 90], &[0, 2]),
    ];
    for (i, &(shape, axes)) in cases.iter().enumerate() {
        for op in FLOAT_OPS {
            if op == ReduceOp::Prod {
                continue; // products of many values in [-1, 1) underflow to 0: uninformative
            }
            check_reduce(
                op,
                DType::F32,
                shape,
                axes,
                &Layout::Contiguous,
                100 + i as u64,
            );
            check_reduce(
                op,
                DType::F64,
                shape,
                axes,
                &Layout::Permuted,
                200 + i as u64,
            );
        }
        check_reduce(
            ReduceOp::Sum,
            DType::I32,
            shape,
            axes,
            &Layout::Contiguous,
            300 + i as u64,
        );
        check_reduce(
            ReduceOp::Max,
            DType::I64,
            shape,
            axes,
            &Layout::Reversed,
            400 + i as u64,
        );
    }
}

#[test]
fn reduce_f32_sum_is_accurate() {
    let n = 1 << 22;
    let x = Tensor::from_vec(vec![0.1f32; n], &[n]).unwrap();
    let mut out = Tensor::zeros(DType::F32, &[]);
    reduce(ReduceOp::Sum, &x.view(), &[0], &mut out).unwrap();
    let want = 0.1f32 as f64 * n as f64;
    assert!((out.to_vec_f64()[0] - want).abs() / want < 1e-6);
    // down the leading axis too
    let x = Tensor::from_vec(vec![0.1f32; n], &[n / 4, 4]).unwrap();
    let mut out = Tensor::zeros(DType::F32, &[4]);
    reduce(ReduceOp::Sum, &x.view(), &[0], &mut out).unwrap();
    for v in out.to_vec_f64() {
        assert!((v - want / 4.0).abs() / (want / 4.0) < 1e-5, "{v}");
    }
}

#[test]
fn reduce_nan_empty_and_errors() {
    let x = Tensor::from_vec(vec![1.0f32, f32::NAN, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let mut out = Tensor::zeros(DType::F32, &[2]);
    reduce(ReduceOp::Max, &x.view(), &[1], &mut out).unwrap();
    let v = out.to_vec_f64();
    assert!(v[0].is_nan() && v[1] == 6.0);
    let mut out = Tensor::zeros(DType::F32, &[3]);
    reduce(ReduceOp::Min, &x.view(), &[0], &mut out).unwrap();
    let v = out.to_vec_f64();
    assert!(v[0] == 1.0 && v[1].is_nan() && v[2] == 3.0);

    // empty reductions, NumPy's values
    let e = Tensor::zeros(DType::F64, &[0, 3]);
    for (op, want) in [
        (ReduceOp::Sum, 0.0),
        (ReduceOp::Prod, 1.0),
        (ReduceOp::LogSumExp, f64::NEG_INFINITY),
    ] {
        let mut out = Tensor::full(DType::F64, &[3], 7.0).unwrap();
        reduce(op, &e.view(), &[0], &mut out).unwrap();
        assert_eq!(out.to_vec_f64(), vec![want; 3]);
    }
    let mut out = Tensor::zeros(DType::F64, &[3]);
    reduce(ReduceOp::Mean, &e.view(), &[0], &mut out).unwrap();
    assert!(out.to_vec_f64().iter().all(|v| v.is_nan()));
    let err = reduce(ReduceOp::Max, &e.view(), &[0], &mut out).unwrap_err();
    assert!(
        matches!(err, CoreError::Shape { .. }) && err.to_string().contains("(0, 3)"),
        "{err}"
    );
    // reducing the non-empty axis of an empty array is fine: empty out
    let mut out = Tensor::zeros(DType::F64, &[0]);
    reduce(ReduceOp::Max, &e.view(), &[1], &mut out).unwrap();

    // logsumexp stability and infinities
    let x = Tensor::from_vec(
        vec![1000.0f64, 1000.0, f64::NEG_INFINITY, f64::NEG_INFINITY],
        &[2, 2],
    )
    .unwrap();
    let mut out = Tensor::zeros(DType::F64, &[2]);
    reduce(ReduceOp::LogSumExp, &x.view(), &[1], &mut out).unwrap();
    let v = out.to_vec_f64();
    assert!(
        (v[0] - (1000.0 + 2f64.ln())).abs() < 1e-9 && v[1] == f64::NEG_INFINITY,
        "{v:?}"
    );

    // dtype / shape / axis errors
    let xi = Tensor::zeros(DType::I32, &[2, 3]);
    let mut oi = Tensor::zeros(DType::I32, &[2]);
    assert!(matches!(reduce(ReduceOp::Mean, &xi.view(), &[1], &mut oi), Err(CoreError::DType { .. })));
    assert!(matches!(reduce(ReduceOp::LogSumExp, &xi.view(), &[1], &mut oi), Err(CoreError::DType { .. })));
    let xb = Tensor::zeros(DType::Bool, &[2, 3]);
    let mut ob = Tensor::zeros(DType::Bool, &[2]);
    assert!(matches!(reduce(ReduceOp::Sum, &xb.view(), &[1], &mut ob), Err(CoreError::DType { .. })));
    let mut of = Tensor::zeros(DType::F32, &[2]);
    assert!(matches!(reduce(ReduceOp::Sum, &xi.view(), &[1], &mut of), Err(CoreError::DType { .. })));
    let mut bad = Tensor::zeros(DType::I32, &[3]);
    assert!(matches!(reduce(ReduceOp::Sum, &xi.view(), &[1], &mut bad), Err(CoreError::Shape { .. })));
    assert!(matches!(reduce(ReduceOp::Sum, &xi.view(), &[2], &mut oi), Err(CoreError::Index { .. })));
    // keepdims-shaped out is accepted
    let mut keep = Tensor::zeros(DType::I32, &[2, 1]);
    reduce(ReduceOp::Sum, &xi.view(), &[1], &mut keep).unwrap();
}

#[test]
fn reduce_nan_anywhere_in_long_rows() {
    // NaN at every kind of position: inside 4-vector blocks, single-vector tail, scalar tail
    for len in [1usize, 7, 31, 32, 33, 100, 4099] {
        for pos in [0, len / 3, len.saturating_sub(1), 37 % len, 70 % len] {
            for dt in [DType::F32, DType::F64] {
                let mut v: Vec<f64> = (0..len).map(|i| ((i * 37) % 11) as f64 - 5.0).collect();
                v[pos] = f64::NAN;
                let x = match dt {
                    DType::F32 => {
                        Tensor::from_vec(v.iter().map(|&a| a as f32).collect::<Vec<_>>(), &[1, len])
                            .unwrap()
                    }
                    _ => Tensor::from_vec(v.clone(), &[1, len]).unwrap(),
                };
                for op in [
                    ReduceOp::Max,
                    ReduceOp::Min,
                    ReduceOp::Sum,
                    ReduceOp::LogSumExp,
                ] {
                    let mut out = Tensor::zeros(dt, &[1]);
                    reduce(op, &x.view(), &[1], &mut out).unwrap();
                    assert!(
                        out.to_vec_f64()[0].is_nan(),
                        "{op:?} {dt} len {len} pos {pos}"
                    );
                }
                for is_max in [true, false] {
                    let mut out = Tensor::zeros(DType::I64, &[1]);
                    arg_reduce(is_max, &x.view(), Some(1), &mut out).unwrap();
                    assert_eq!(out.to_vec_f64()[0], pos as f64);
                }
                // without the NaN: exact extremes
                v[pos] = 0.5;
                let x = Tensor::from_vec(v.clone(), &[len]).unwrap();
                let mut out = Tensor::zeros(DType::F64, &[]);
                reduce(ReduceOp::Max, &x.view(), &[0], &mut out).unwrap();
                assert_eq!(
                    out.to_vec_f64()[0],
                    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                );
                reduce(ReduceOp::Min, &x.view(), &[0], &mut out).unwrap();
                assert_eq!(
                    out.to_vec_f64()[0],
                    v.iter().copied().fold(f64::INFINITY, f64::min)
                );
            }
        }
    }
}

fn arg_ref(is_max: bool, data: &[f64], shape: &[usize], axis: Option<usize>) -> Vec<f64> {
    let better = |v: f64, b: f64| {
        if is_max {
            v > b || (v.is_nan() && !b.is_nan())
        } else {
            v < b || (v.is_nan() && !b.is_nan())
        }
    };
    let pick = |g: &[f64]| {
        let mut bi = 0;
        for i in 1..g.len() {
            if better(g[i], g[bi]) {
                bi = i;
            }
        }
        bi as f64
    };
    match axis {
        None => vec![pick(data)],
        Some(ax) => {
            let kept: Vec<usize> = (0..shape.len()).filter(|&a| a != ax).collect();
            group_by_kept(data, shape, &kept).iter().map(|g| pick(g)).collect()
        }
    }
}

#[test]
fn arg_reduce_matches_reference() {
    let shapes: &[&[usize]] = &[&[7], &[4, 5], &[3, 4, 5], &[600, 500], &[3, 400, 300]];
    let mut seed = 5000;
    for &shape in shapes {
        let mut axes: Vec<Option<usize>> = vec![None];
        axes.extend((0..shape.len()).map(Some));
        for axis in axes {
            for layout in &LAYOUTS {
                for dt in [DType::F32, DType::I64] {
                    for is_max in [true, false] {
                        seed += 1;
                        let st = storage(dt, shape, layout, seed);
                        let v = view_of(&st, shape, layout);
                        let data = v.to_owned().to_vec_f64();
                        let kept: Vec<usize> = match axis {
                            None => vec![],
                            Some(a) => (0..shape.len())
                                .filter(|&d| d != a)
                                .map(|d| shape[d])
                                .collect(),
                        };
                        let mut out = Tensor::zeros(DType::I64, &kept);
                        arg_reduce(is_max, &v, axis, &mut out).unwrap();
                        // ints in [-3, 3] have many ties: first occurrence must win
                        assert_eq!(
                            out.to_vec_f64(),
                            arg_ref(is_max, &data, shape, axis),
                            "{dt} {shape:?} {axis:?} max={is_max}"
                        );
                    }
                }
            }
        }
    }
    // NaN wins, first NaN
    let x = Tensor::from_vec(vec![1.0f64, f64::NAN, 9.0, f64::NAN], &[4]).unwrap();
    for is_max in [true, false] {
        let mut out = Tensor::zeros(DType::I64, &[]);
        arg_reduce(is_max, &x.view(), None, &mut out).unwrap();
        assert_eq!(out.to_vec_f64(), vec![1.0]);
    }
    // errors
    let e = Tensor::zeros(DType::F32, &[0, 3]);
    let mut out = Tensor::zeros(DType::I64, &[3]);
    assert!(matches!(
        arg_reduce(true, &e.view(), Some(0), &mut out),
        Err(CoreError::Shape { .. })
    ));
    let mut out0 = Tensor::zeros(DType::I64, &[0]);
    arg_reduce(true, &e.view(), Some(1), &mut out0).unwrap();
    let mut wrong = Tensor::zeros(DType::I32, &[3]);
    let x = Tensor::zeros(DType::F32, &[2, 3]);
    assert!(matches!(
        arg_reduce(true, &x.view(), Some(0), &mut wrong),
        Err(CoreError::DType { .. })
    ));
}
