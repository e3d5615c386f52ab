//! Softmax and log-softmax, forward and backward, against naive references and finite
//! differences, over every axis of contiguous, permuted and reversed views.

mod common;

use common::views::*;
use gorgon_core::error::CoreError;
use gorgon_core::kernels::softmax::{softmax, softmax_backward};
use gorgon_core::{DType, Tensor};

/// A zero vector like `data`, filled lane by lane along `axis` of a row-major `shape`:
/// `lane(n, at, out)` with `at(i)` the flat index of the lane's `i`-th of `n` elements.
fn per_lane(len: usize, shape: &[usize], axis: usize, mut lane: impl FnMut(usize, &dyn Fn(usize) -> usize, &mut [f64])) -> Vec<f64> {
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = vec![0.0; len];
    for o in 0..outer {
        for c in 0..inner {
            lane(n, &|i: usize| o * n * inner + i * inner + c, &mut out);
        }
    }
    out
}

fn softmax_ref(data: &[f64], shape: &[usize], axis: usize, log: bool) -> Vec<f64> {
    per_lane(data.len(), shape, axis, |n, at, out| {
        let m = (0..n)
            .map(|i| data[at(i)])
            .fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = (0..n).map(|i| (data[at(i)] - m).exp()).sum();
        for i in 0..n {
            out[at(i)] = if log {
                data[at(i)] - m - s.ln()
            } else {
                (data[at(i)] - m).exp() / s
            };
        }
    })
}

fn softmax_bwd_ref(y: &[f64], g: &[f64], shape: &[usize], axis: usize, log: bool) -> Vec<f64> {
    per_lane(y.len(), shape, axis, |n, at, out| {
        if log {
            let s: f64 = (0..n).map(|i| g[at(i)]).sum();
            for i in 0..n {
                out[at(i)] = g[at(i)] - y[at(i)].exp() * s;
            }
        } else {
            let d: f64 = (0..n).map(|i| g[at(i)] * y[at(i)]).sum();
            for i in 0..n {
                out[at(i)] = y[at(i)] * (g[at(i)] - d);
            }
        }
    })
}

#[test]
fn softmax_forward_and_backward() {
    let shapes: &[&[usize]] = &[
        &[5],
        &[3, 4],
        &[2, 3, 4],
        &[0, 3],
        &[3, 0],
        &[1, 1],
        &[2, 700, 3],
        &[600, 500],
        &[3, 1000, 100],
    ];
    let mut seed = 700;
    for &shape in shapes {
        for axis in 0..shape.len() {
            for layout in [&Layout::Contiguous, &Layout::Permuted, &Layout::Reversed] {
                for dt in [DType::F32, DType::F64] {
                    for log in [false, true] {
                        seed += 1;
                        let st = storage(dt, shape, layout, seed);
                        let x = view_of(&st, shape, layout);
                        // spread inputs widely to exercise the max shift
                        let xd: Vec<f64> =
                            x.to_owned().to_vec_f64().iter().map(|v| v * 30.0).collect();
                        let xs = if dt == DType::F32 {
                            Tensor::from_vec(
                                xd.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                                shape,
                            )
                            .unwrap()
                        } else {
                            Tensor::from_vec(xd.clone(), shape).unwrap()
                        };
                        let xs_data = xs.to_vec_f64();
                        // run on a permuted copy too so the non-contiguous path sees these values
                        let mut out = Tensor::zeros(dt, shape);
                        softmax(&xs.view(), axis, log, &mut out).unwrap();
                        let want = softmax_ref(&xs_data, shape, axis, log);
                        let tol = if dt == DType::F32 { 2e-5 } else { 1e-12 };
                        let what = format!("softmax {dt} {shape:?} axis {axis} log={log}");
                        close(&out.to_vec_f64(), &want, tol, &what);
                        let mut out2 = Tensor::zeros(dt, shape);
                        softmax(&x, axis, log, &mut out2).unwrap();
                        close(
                            &out2.to_vec_f64(),
                            &softmax_ref(&x.to_owned().to_vec_f64(), shape, axis, log),
                            tol,
                            &what,
                        );

                        // backward with y = out, g random (non-contiguous when layout says so)
                        let gst = storage(dt, shape, layout, seed + 99);
                        let g = view_of(&gst, shape, layout);
                        let mut gout = Tensor::zeros(dt, shape);
                        softmax_backward(&out.view(), &g, axis, log, &mut gout).unwrap();
                        let want = softmax_bwd_ref(
                            &out.to_vec_f64(),
                            &g.to_owned().to_vec_f64(),
                            shape,
                            axis,
                            log,
                        );
                        close(
                            &gout.to_vec_f64(),
                            &want,
                            tol * 10.0,
                            &format!("{what} backward"),
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn softmax_backward_matches_finite_differences() {
    let shape = [3, 4];
    let x = rand_tensor(DType::F64, &shape, 42);
    let g = rand_tensor(DType::F64, &shape, 43);
    for axis in 0..2 {
        for log in [false, true] {
            let f = |xt: &Tensor| {
                let mut y = Tensor::zeros(DType::F64, &shape);
                softmax(&xt.view(), axis, log, &mut y).unwrap();
                y.to_vec_f64()
                    .iter()
                    .zip(g.to_vec_f64())
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
            };
            let mut y = Tensor::zeros(DType::F64, &shape);
            softmax(&x.view(), axis, log, &mut y).unwrap();
            let mut dx = Tensor::zeros(DType::F64, &shape);
            softmax_backward(&y.view(), &g.view(), axis, log, &mut dx).unwrap();
            let xv = x.to_vec_f64();
            for (i, &d) in dx.to_vec_f64().iter().enumerate() {
                let h = 1e-6;
                let (mut p, mut m) = (xv.clone(), xv.clone());
                p[i] += h;
                m[i] -= h;
                let fd = (f(&Tensor::from_vec(p, &shape).unwrap())
                    - f(&Tensor::from_vec(m, &shape).unwrap()))
                    / (2.0 * h);
                assert!(
                    (fd - d).abs() < 1e-7,
                    "axis {axis} log {log} i {i}: {fd} vs {d}"
                );
            }
        }
    }
}

#[test]
fn softmax_edge_cases_and_errors() {
    let x = Tensor::from_vec(vec![1000.0f32, 1000.0, -1000.0, f32::NEG_INFINITY], &[2, 2]).unwrap();
    let mut out = Tensor::zeros(DType::F32, &[2, 2]);
    softmax(&x.view(), 1, false, &mut out).unwrap();
    assert_eq!(out.to_vec_f64(), vec![0.5, 0.5, 1.0, 0.0]);
    softmax(&x.view(), 1, true, &mut out).unwrap();
    let v = out.to_vec_f64();
    assert!(
        (v[0] + 2f64.ln()).abs() < 1e-6 && v[2] == 0.0 && v[3] == f64::NEG_INFINITY,
        "{v:?}"
    );
    let xi = Tensor::zeros(DType::I64, &[2, 2]);
    let mut oi = Tensor::zeros(DType::I64, &[2, 2]);
    assert!(matches!(
        softmax(&xi.view(), 0, false, &mut oi),
        Err(CoreError::DType { .. })
    ));
    assert!(matches!(
        softmax(&x.view(), 2, false, &mut out),
        Err(CoreError::Index { .. })
    ));
    let mut bad = Tensor::zeros(DType::F32, &[4]);
    assert!(matches!(
        softmax(&x.view(), 0, false, &mut bad),
        Err(CoreError::Shape { .. })
    ));
    let g = Tensor::zeros(DType::F32, &[2, 3]);
    assert!(matches!(
        softmax_backward(&x.view(), &g.view(), 0, false, &mut out),
        Err(CoreError::Shape { .. })
    ));
    let s = Tensor::scalar(DType::F32, 1.0);
    let mut so = Tensor::scalar(DType::F32, 0.0);
    assert!(matches!(
        softmax(&s.view(), 0, false, &mut so),
        Err(CoreError::Index { .. })
    ));
}
