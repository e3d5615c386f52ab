//! Gather / scatter kernels (`take`, `scatter_add`, `concat`, `one_hot`) against naive
//! references and the adjoint identity, over differently laid out views, and errors.

mod common;

use common::views::*;
use gorgon_core::error::CoreError;
use gorgon_core::kernels::index::{concat, one_hot, scatter_add, take};
use gorgon_core::{DType, Tensor, TensorView};

fn take_ref(x: &[f64], xs: &[usize], idx: &[i64], ishape: &[usize], axis: usize) -> Vec<f64> {
    let outer: usize = xs[..axis].iter().product();
    let n = xs[axis];
    let inner: usize = xs[axis + 1..].iter().product();
    let _ = ishape;
    let mut out = vec![];
    for o in 0..outer {
        for &i in idx {
            let j = if i < 0 { i + n as i64 } else { i } as usize;
            out.extend_from_slice(&x[o * n * inner + j * inner..o * n * inner + (j + 1) * inner]);
        }
    }
    out
}

fn idx_tensor(dt: DType, v: &[i64], shape: &[usize]) -> Tensor {
    if dt == DType::I32 {
        Tensor::from_vec(v.iter().map(|&i| i as i32).collect::<Vec<_>>(), shape).unwrap()
    } else {
        Tensor::from_vec(v.to_vec(), shape).unwrap()
    }
}

#[test]
fn take_and_scatter_add() {
    let xshapes: &[&[usize]] = &[&[5], &[3, 4, 5], &[4, 0, 2], &[50_000, 8], &[3, 30_000, 4]];
    let mut seed = 12_000;
    for &xs in xshapes {
        for axis in 0..xs.len() {
            let n = xs[axis] as i64;
            let ishapes: Vec<Vec<usize>> = if n == 0 {
                vec![vec![0]]
            } else if n > 100 {
                vec![vec![6000]]
            } else {
                vec![vec![], vec![3], vec![2, 3], vec![0]]
            };
            for ish in &ishapes {
                for layout in [&Layout::Contiguous, &Layout::Permuted, &Layout::Reversed] {
                    for idt in [DType::I32, DType::I64] {
                        seed += 1;
                        let mut r = XorShift::new(seed);
                        let idx: Vec<i64> = (0..numel(ish)).map(|_| r.int(-n, n - 1)).collect();
                        let it = idx_tensor(idt, &idx, ish);
                        let st = storage(DType::F32, xs, layout, seed);
                        let x = view_of(&st, xs, layout);
                        let mut osh = xs[..axis].to_vec();
                        osh.extend_from_slice(ish);
                        osh.extend_from_slice(&xs[axis + 1..]);
                        let mut out = Tensor::zeros(DType::F32, &osh);
                        take(&x, &it.view(), axis, &mut out).unwrap();
                        let xd = x.to_owned().to_vec_f64();
                        let what = format!("take {xs:?} axis {axis} idx {ish:?}");
                        assert_eq!(
                            out.to_vec_f64(),
                            take_ref(&xd, xs, &idx, ish, axis),
                            "{what}"
                        );

                        // scatter_add is the adjoint: <take(x), g> == <x, scatter_add(g)>
                        let g = rand_tensor(DType::F64, &osh, seed + 1);
                        let mut sa = Tensor::full(DType::F64, xs, 9.0).unwrap();
                        scatter_add(&g.view(), &it.view(), axis, &mut sa).unwrap();
                        let x64: Vec<f64> = xd.clone();
                        let lhs: f64 = take_ref(&x64, xs, &idx, ish, axis)
                            .iter()
                            .zip(g.to_vec_f64())
                            .map(|(a, b)| a * b)
                            .sum();
                        let rhs: f64 = x64.iter().zip(sa.to_vec_f64()).map(|(a, b)| a * b).sum();
                        assert!(
                            (lhs - rhs).abs() <= 1e-9 * (1.0 + lhs.abs()),
                            "{what}: adjoint {lhs} vs {rhs}"
                        );
                    }
                }
            }
        }
    }
    // repeated indices accumulate; ints too
    let g = Tensor::from_vec(vec![1i64, 2, 3, 4, 5, 6], &[3, 2]).unwrap();
    let i = Tensor::from_vec(vec![1i32, 1, -1], &[3]).unwrap();
    let mut out = Tensor::zeros(DType::I64, &[3, 2]);
    scatter_add(&g.view(), &i.view(), 0, &mut out).unwrap();
    assert_eq!(out.to_vec_f64(), vec![0.0, 0.0, 4.0, 6.0, 5.0, 6.0]);
    // bool take
    let b = Tensor::from_vec(vec![true, false], &[2]).unwrap();
    let i = Tensor::from_vec(vec![1i64, 0, 0], &[3]).unwrap();
    let mut ob = Tensor::zeros(DType::Bool, &[3]);
    take(&b.view(), &i.view(), 0, &mut ob).unwrap();
    assert_eq!(ob.to_vec_f64(), vec![0.0, 1.0, 1.0]);
}

#[test]
fn index_errors() {
    let x = Tensor::zeros(DType::F32, &[3, 4]);
    let i = Tensor::from_vec(vec![0i64, 4], &[2]).unwrap();
    let mut out = Tensor::zeros(DType::F32, &[3, 2]);
    let err = take(&x.view(), &i.view(), 1, &mut out).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, CoreError::Index { .. }) && msg.contains('4') && msg.contains("size 4"),
        "{msg}"
    );
    let i = Tensor::from_vec(vec![-4i32], &[1]).unwrap();
    let mut out = Tensor::zeros(DType::F32, &[1, 4]);
    let err = take(&x.view(), &i.view(), 0, &mut out).unwrap_err();
    assert!(
        err.to_string().contains("-4") && err.to_string().contains("size 3"),
        "{err}"
    );
    let fi = Tensor::zeros(DType::F32, &[1]);
    assert!(matches!(
        take(&x.view(), &fi.view(), 0, &mut out),
        Err(CoreError::DType { .. })
    ));
    let i = Tensor::from_vec(vec![0i64], &[1]).unwrap();
    let mut wrong = Tensor::zeros(DType::F32, &[4, 1]);
    assert!(matches!(
        take(&x.view(), &i.view(), 0, &mut wrong),
        Err(CoreError::Shape { .. })
    ));
    assert!(matches!(
        take(&x.view(), &i.view(), 2, &mut wrong),
        Err(CoreError::Index { .. })
    ));
    let g = Tensor::zeros(DType::F32, &[2, 4]);
    let mut o = Tensor::zeros(DType::F32, &[3, 4]);
    assert!(matches!(
        scatter_add(&g.view(), &i.view(), 0, &mut o),
        Err(CoreError::Shape { .. })
    ));
    let i5 = Tensor::from_vec(vec![0i64, 5], &[2]).unwrap();
    assert!(matches!(
        scatter_add(&g.view(), &i5.view(), 0, &mut o),
        Err(CoreError::Index { .. })
    ));
    let mut oh = Tensor::zeros(DType::F32, &[2, 3]);
    let i = Tensor::from_vec(vec![0i64, 3], &[2]).unwrap();
    assert!(matches!(
        one_hot(&i.view(), 3, &mut oh),
        Err(CoreError::Index { .. })
    ));
    let i = Tensor::from_vec(vec![0i64, -1], &[2]).unwrap();
    assert!(matches!(
        one_hot(&i.view(), 3, &mut oh),
        Err(CoreError::Index { .. })
    ));
}

#[test]
fn concat_matches_reference() {
    let mut seed = 20_000;
    for shape in [vec![2usize, 3, 4], vec![5], vec![3, 1], vec![2, 0, 3]] {
        for axis in 0..shape.len() {
            for layout in [&Layout::Contiguous, &Layout::Permuted, &Layout::Reversed] {
                for dt in [DType::F64, DType::I32, DType::Bool] {
                    let lens = [shape[axis], 2, 0, 1];
                    let mut st = vec![];
                    let mut shapes = vec![];
                    for &l in &lens {
                        seed += 1;
                        let mut s = shape.clone();
                        s[axis] = l;
                        st.push(storage(dt, &s, layout, seed));
                        shapes.push(s);
                    }
                    let views: Vec<TensorView> = st
                        .iter()
                        .zip(&shapes)
                        .map(|(t, s)| view_of(t, s, layout))
                        .collect();
                    let mut osh = shape.clone();
                    osh[axis] = lens.iter().sum();
                    let mut out = Tensor::zeros(dt, &osh);
                    concat(&views, axis, &mut out).unwrap();
                    // reference: interleave per outer index
                    let outer: usize = shape[..axis].iter().product();
                    let inner: usize = shape[axis + 1..].iter().product();
                    let datas: Vec<Vec<f64>> =
                        views.iter().map(|v| v.to_owned().to_vec_f64()).collect();
                    let mut want = vec![];
                    for o in 0..outer {
                        for (d, &l) in datas.iter().zip(&lens) {
                            want.extend_from_slice(&d[o * l * inner..(o + 1) * l * inner]);
                        }
                    }
                    assert_eq!(out.to_vec_f64(), want, "concat {shape:?} axis {axis} {dt}");
                }
            }
        }
    }
    let a = Tensor::zeros(DType::F32, &[2, 3]);
    let b = Tensor::zeros(DType::F32, &[2, 4]);
    let mut out = Tensor::zeros(DType::F32, &[4, 3]);
    assert!(matches!(
        concat(&[a.view(), b.view()], 0, &mut out),
        Err(CoreError::Shape { .. })
    ));
    let mut out = Tensor::zeros(DType::F32, &[2, 7]);
    concat(&[a.view(), b.view()], 1, &mut out).unwrap();
    let c = Tensor::zeros(DType::F64, &[2, 4]);
    assert!(matches!(
        concat(&[a.view(), c.view()], 1, &mut out),
        Err(CoreError::DType { .. })
    ));
    assert!(matches!(
        concat(&[], 0, &mut out),
        Err(CoreError::Shape { .. })
    ));
    let s = Tensor::scalar(DType::F32, 1.0);
    let mut o = Tensor::zeros(DType::F32, &[2]);
    assert!(matches!(
        concat(&[s.view(), s.view()], 0, &mut o),
        Err(CoreError::Shape { .. })
    ));
}

#[test]
fn one_hot_matches_reference() {
    let i = Tensor::from_vec(vec![2i32, 0, 1, 2], &[2, 2]).unwrap();
    for dt in [DType::F32, DType::F64, DType::I32, DType::I64, DType::Bool] {
        let mut out = Tensor::full(dt, &[2, 2, 3], 1.0).unwrap();
        one_hot(&i.view(), 3, &mut out).unwrap();
        assert_eq!(
            out.to_vec_f64(),
            vec![0., 0., 1., 1., 0., 0., 0., 1., 0., 0., 0., 1.]
        );
    }
    let e = Tensor::from_vec(Vec::<i64>::new(), &[0]).unwrap();
    let mut out = Tensor::zeros(DType::F32, &[0, 4]);
    one_hot(&e.view(), 4, &mut out).unwrap();
    let s = Tensor::from_vec(vec![1i64], &[]).unwrap();
    let mut out = Tensor::zeros(DType::F32, &[2]);
    one_hot(&s.view(), 2, &mut out).unwrap();
    assert_eq!(out.to_vec_f64(), vec![0.0, 1.0]);
}
