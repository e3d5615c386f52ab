//! Convolution, pooling and solver kernels against naive references.

use gorgon_core::kernels::conv::{conv2d, conv2d_backward_input, conv2d_backward_weight, Conv2dParams};
use gorgon_core::kernels::optim::{apply, axpy_update, dot, state_len, GradPrep, SolverRule};
use gorgon_core::kernels::pool::{avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward};
use gorgon_core::{CoreError, DType, Tensor};

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (v >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.next()).collect()
    }
    fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(self.vec(n), shape).unwrap()
    }
}

fn f32t(t: &Tensor) -> Tensor {
    Tensor::from_vec(t.to_vec_f64().into_iter().map(|v| v as f32).collect::<Vec<_>>(), t.shape()).unwrap()
}

fn params(s: (usize, usize), p: (usize, usize), d: (usize, usize)) -> Conv2dParams {
    Conv2dParams { stride: s, padding: p, dilation: d }
}

fn idx4(s: &[usize], a: usize, b: usize, c: usize, d: usize) -> usize {
    ((a * s[1] + b) * s[2] + c) * s[3] + d
}

fn max_rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale
}

fn inner(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Input cell hit by output `o`, tap `k` along one axis, if inside.
fn tap(o: usize, k: usize, s: usize, p: usize, d: usize, len: usize) -> Option<usize> {
    let i = (o * s + k * d) as isize - p as isize;
    if i >= 0 && (i as usize) < len { Some(i as usize) } else { None }
}

/// The seven-loop reference: returns (out, out_shape).
fn naive_conv(x: &[f64], xs: &[usize], w: &[f64], ws: &[usize], p: Conv2dParams) -> (Vec<f64>, Vec<usize>) {
    let (oh, ow) = p.out_hw((xs[2], xs[3]), (ws[2], ws[3])).unwrap();
    let os = vec![xs[0], ws[0], oh, ow];
    let mut out = vec![0.0; os.iter().product()];
    for n in 0..xs[0] {
        for o in 0..ws[0] {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut acc = 0.0;
                    for c in 0..xs[1] {
                        for i in 0..ws[2] {
                            for j in 0..ws[3] {
                                if let (Some(iy), Some(ix)) = (
                                    tap(y, i, p.stride.0, p.padding.0, p.dilation.0, xs[2]),
                                    tap(xx, j, p.stride.1, p.padding.1, p.dilation.1, xs[3]),
                                ) {
                                    acc += x[idx4(xs, n, c, iy, ix)] * w[idx4(ws, o, c, i, j)];
                                }
                            }
                        }
                    }
                    out[idx4(&os, n, o, y, xx)] = acc;
                }
            }
        }
    }
    (out, os)
}

/// Naive adjoints: (dx, dw).
fn naive_conv_grads(x: &[f64], xs: &[usize], w: &[f64], ws: &[usize], g: &[f64], p: Conv2dParams) -> (Vec<f64>, Vec<f64>) {
    let (oh, ow) = p.out_hw((xs[2], xs[3]), (ws[2], ws[3])).unwrap();
    let os = [xs[0], ws[0], oh, ow];
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    for n in 0..xs[0] {
        for o in 0..ws[0] {
            for y in 0..oh {
                for xx in 0..ow {
                    let gv = g[idx4(&os, n, o, y, xx)];
                    for c in 0..xs[1] {
                        for i in 0..ws[2] {
                            for j in 0..ws[3] {
                                if let (Some(iy), Some(ix)) = (
                                    tap(y, i, p.stride.0, p.padding.0, p.dilation.0, xs[2]),
                                    tap(xx, j, p.stride.1, p.padding.1, p.dilation.1, xs[3]),
                                ) {
                                    dx[idx4(xs, n, c, iy, ix)] += gv * w[idx4(ws, o, c, i, j)];
                                    dw[idx4(ws, o, c, i, j)] += gv * x[idx4(xs, n, c, iy, ix)];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw)
}

/// (N, C, H, W, O, kH, kW, stride, padding, dilation)
type Case = (usize, usize, usize, usize, usize, usize, usize, (usize, usize), (usize, usize), (usize, usize));

const CASES: &[Case] = &[
    (1, 1, 5, 5, 1, 3, 3, (1, 1), (0, 0), (1, 1)),
    (2, 3, 7, 6, 4, 3, 3, (1, 1), (1, 1), (1, 1)),
    (2, 3, 9, 8, 5, 3, 2, (2, 3), (1, 0), (1, 1)),
    (3, 2, 11, 10, 3, 3, 3, (2, 2), (2, 1), (2, 2)),
    (1, 4, 6, 7, 2, 1, 1, (1, 1), (0, 0), (1, 1)),
    (2, 4, 6, 7, 3, 1, 1, (2, 2), (1, 1), (1, 1)),
    (2, 2, 3, 3, 3, 5, 5, (1, 1), (2, 2), (1, 1)),
    (1, 3, 13, 5, 2, 4, 2, (3, 1), (0, 2), (1, 3)),
    (1, 1, 1, 1, 2, 3, 3, (1, 1), (1, 1), (1, 1)),
    (4, 1, 5, 5, 2, 2, 2, (3, 3), (0, 0), (1, 1)),
    // big enough to take the batch-parallel path
    (8, 8, 16, 16, 16, 3, 3, (1, 1), (1, 1), (1, 1)),
    (6, 16, 12, 12, 8, 1, 1, (1, 1), (0, 0), (1, 1)),
];

// ---------------------------------------------------------------------------------------------
// convolution
// ---------------------------------------------------------------------------------------------

#[test]
fn conv2d_forward_matches_naive() {
    let mut rng = Rng(0x1234_5678);
    for &(n, c, h, w, o, kh, kw, s, pd, d) in CASES {
        let p = params(s, pd, d);
        let xs = [n, c, h, w];
        let ws = [o, c, kh, kw];
        let x = rng.tensor(&xs);
        let wt = rng.tensor(&ws);
        let (want, os) = naive_conv(&x.to_vec_f64(), &xs, &wt.to_vec_f64(), &ws, p);
        let mut out = Tensor::full(DType::F64, &os, f64::NAN).unwrap();
        conv2d(&x.view(), &wt.view(), p, &mut out).unwrap();
        let e = max_rel_err(&out.to_vec_f64(), &want);
        assert!(e < 1e-13, "f64 case {:?}: err {e}", (n, c, h, w, o, kh, kw, s, pd, d));

        let mut out32 = Tensor::full(DType::F32, &os, f64::NAN).unwrap();
        conv2d(&f32t(&x).view(), &f32t(&wt).view(), p, &mut out32).unwrap();
        let e = max_rel_err(&out32.to_vec_f64(), &want);
        assert!(e < 1e-5, "f32 case {:?}: err {e}", (n, c, h, w, o, kh, kw, s, pd, d));
    }
}

#[test]
fn conv2d_backward_matches_naive_and_adjoint_identity() {
    let mut rng = Rng(0xfeed_beef);
    for &(n, c, h, w, o, kh, kw, s, pd, d) in CASES {
        let p = params(s, pd, d);
        let xs = [n, c, h, w];
        let ws = [o, c, kh, kw];
        let x = rng.tensor(&xs);
        let wt = rng.tensor(&ws);
        let (oh, ow) = p.out_hw((h, w), (kh, kw)).unwrap();
        let os = [n, o, oh, ow];
        let g = rng.tensor(&os);
        let (dx_want, dw_want) = naive_conv_grads(&x.to_vec_f64(), &xs, &wt.to_vec_f64(), &ws, &g.to_vec_f64(), p);

        let mut y = Tensor::zeros(DType::F64, &os);
        conv2d(&x.view(), &wt.view(), p, &mut y).unwrap();
        let mut dx = Tensor::full(DType::F64, &xs, f64::NAN).unwrap();
        conv2d_backward_input(&g.view(), &wt.view(), p, &mut dx).unwrap();
        let mut dw = Tensor::full(DType::F64, &ws, f64::NAN).unwrap();
        conv2d_backward_weight(&x.view(), &g.view(), p, &mut dw).unwrap();
        let case = (n, c, h, w, o, kh, kw, s, pd, d);
        assert!(max_rel_err(&dx.to_vec_f64(), &dx_want) < 1e-13, "dx {case:?}");
        assert!(max_rel_err(&dw.to_vec_f64(), &dw_want) < 1e-13, "dw {case:?}");

        // ⟨conv(x, w), g⟩ = ⟨x, conv_bi(g, w)⟩ = ⟨w, conv_bw(x, g)⟩
        let a = inner(&y.to_vec_f64(), &g.to_vec_f64());
        let b = inner(&x.to_vec_f64(), &dx.to_vec_f64());
        let cc = inner(&wt.to_vec_f64(), &dw.to_vec_f64());
        let scale = a.abs().max(1.0);
        assert!((a - b).abs() < 1e-12 * scale && (a - cc).abs() < 1e-12 * scale, "adjoint {case:?}: {a} {b} {cc}");

        // float32 agrees with the f64 reference to single precision.
        let mut dx32 = Tensor::zeros(DType::F32, &xs);
        conv2d_backward_input(&f32t(&g).view(), &f32t(&wt).view(), p, &mut dx32).unwrap();
        let mut dw32 = Tensor::zeros(DType::F32, &ws);
        conv2d_backward_weight(&f32t(&x).view(), &f32t(&g).view(), p, &mut dw32).unwrap();
        assert!(max_rel_err(&dx32.to_vec_f64(), &dx_want) < 1e-5, "dx32 {case:?}");
        assert!(max_rel_err(&dw32.to_vec_f64(), &dw_want) < 1e-5, "dw32 {case:?}");
    }
}

#[test]
fn conv2d_backward_matches_finite_differences() {
    let mut rng = Rng(99);
    let p = params((2, 1), (1, 2), (1, 2));
    let (xs, ws) = ([2, 2, 6, 5], [3, 2, 3, 2]);
    let x = rng.tensor(&xs);
    let wt = rng.tensor(&ws);
    let (oh, ow) = p.out_hw((6, 5), (3, 2)).unwrap();
    let os = [2, 3, oh, ow];
    let g = rng.tensor(&os);
    let loss = |x: &Tensor, w: &Tensor| {
        let mut y = Tensor::zeros(DType::F64, &os);
        conv2d(&x.view(), &w.view(), p, &mut y).unwrap();
        inner(&y.to_vec_f64(), &g.to_vec_f64())
    };
    let mut dx = Tensor::zeros(DType::F64, &xs);
    conv2d_backward_input(&g.view(), &wt.view(), p, &mut dx).unwrap();
    let mut dw = Tensor::zeros(DType::F64, &ws);
    conv2d_backward_weight(&x.view(), &g.view(), p, &mut dw).unwrap();
    let eps = 1e-6;
    let bump = |t: &Tensor, i: usize, e: f64| {
        let mut v = t.to_vec_f64();
        v[i] += e;
        Tensor::from_vec(v, t.shape()).unwrap()
    };
    for (i, &an) in dx.to_vec_f64().iter().enumerate() {
        let fd = (loss(&bump(&x, i, eps), &wt) - loss(&bump(&x, i, -eps), &wt)) / (2.0 * eps);
        assert!((fd - an).abs() < 1e-7, "dx[{i}]: fd {fd} vs {an}");
    }
    for (i, &an) in dw.to_vec_f64().iter().enumerate() {
        let fd = (loss(&x, &bump(&wt, i, eps)) - loss(&x, &bump(&wt, i, -eps))) / (2.0 * eps);
        assert!((fd - an).abs() < 1e-7, "dw[{i}]: fd {fd} vs {an}");
    }
}

#[test]
fn conv2d_accepts_strided_views() {
    let mut rng = Rng(7);
    let p = params((1, 2), (1, 1), (1, 1));
    // x stored as (N, C, W, H) and transposed; w reversed along kW with a negative stride.
    let x_t = rng.tensor(&[3, 2, 9, 8]);
    let x = x_t.view().permuted(&[0, 1, 3, 2]).unwrap();
    let w_full = rng.tensor(&[4, 2, 3, 3]);
    let w = w_full.view().slice(&[(0, 4, 1), (0, 2, 1), (0, 3, 1), (2, -1, -1)]).unwrap();
    let (xc, wc) = (x.to_owned(), w.to_owned());
    let (oh, ow) = p.out_hw((8, 9), (3, 3)).unwrap();
    let os = [3, 4, oh, ow];
    let mut a = Tensor::zeros(DType::F64, &os);
    let mut b = Tensor::zeros(DType::F64, &os);
    conv2d(&x, &w, p, &mut a).unwrap();
    conv2d(&xc.view(), &wc.view(), p, &mut b).unwrap();
    assert!(max_rel_err(&a.to_vec_f64(), &b.to_vec_f64()) < 1e-14);

    // Negative strides on the input (H and W reversed).
    let xr = x_t.view().slice(&[(0, 3, 1), (0, 2, 1), (8, -1, -1), (7, -1, -2)]).unwrap(); // (3, 2, 9, 4)
    let xrc = xr.to_owned();
    let (oh2, ow2) = p.out_hw((9, 4), (3, 3)).unwrap();
    let mut a2 = Tensor::zeros(DType::F64, &[3, 4, oh2, ow2]);
    let mut b2 = Tensor::zeros(DType::F64, &[3, 4, oh2, ow2]);
    conv2d(&xr, &w, p, &mut a2).unwrap();
    conv2d(&xrc.view(), &wc.view(), p, &mut b2).unwrap();
    assert!(max_rel_err(&a2.to_vec_f64(), &b2.to_vec_f64()) < 1e-14);
    let g2 = rng.tensor(&[3, 4, oh2, ow2]);
    let (mut d1, mut d2) = (Tensor::zeros(DType::F64, &[4, 2, 3, 3]), Tensor::zeros(DType::F64, &[4, 2, 3, 3]));
    conv2d_backward_weight(&xr, &g2.view(), p, &mut d1).unwrap();
    conv2d_backward_weight(&xrc.view(), &g2.view(), p, &mut d2).unwrap();
    assert!(max_rel_err(&d1.to_vec_f64(), &d2.to_vec_f64()) < 1e-14);
    let (mut m1, mut m2) = (Tensor::zeros(DType::F64, &[3, 2, 5, 3]), Tensor::zeros(DType::F64, &[3, 2, 5, 3]));
    let pp = params((2, 2), (1, 1), (1, 1));
    gorgon_core::kernels::pool::max_pool2d(&xr, (2, 2), pp, &mut m1).unwrap();
    gorgon_core::kernels::pool::max_pool2d(&xrc.view(), (2, 2), pp, &mut m2).unwrap();
    assert_eq!(m1, m2);

    // A broadcast gradient (all strides 0) and a transposed one.
    let one = Tensor::from_vec(vec![1.5f64], &[1, 1, 1, 1]).unwrap();
    let gb = one.view().broadcast_to(&os).unwrap();
    let gc = gb.to_owned();
    let (mut dx1, mut dx2) = (Tensor::zeros(DType::F64, &[3, 2, 8, 9]), Tensor::zeros(DType::F64, &[3, 2, 8, 9]));
    conv2d_backward_input(&gb, &w, p, &mut dx1).unwrap();
    conv2d_backward_input(&gc.view(), &wc.view(), p, &mut dx2).unwrap();
    assert!(max_rel_err(&dx1.to_vec_f64(), &dx2.to_vec_f64()) < 1e-14);
    let (mut dw1, mut dw2) = (Tensor::zeros(DType::F64, &[4, 2, 3, 3]), Tensor::zeros(DType::F64, &[4, 2, 3, 3]));
    conv2d_backward_weight(&x, &gb, p, &mut dw1).unwrap();
    conv2d_backward_weight(&xc.view(), &gc.view(), p, &mut dw2).unwrap();
    assert!(max_rel_err(&dw1.to_vec_f64(), &dw2.to_vec_f64()) < 1e-14);

    let gt_store = rng.tensor(&[3, 4, ow, oh]);
    let gt = gt_store.view().permuted(&[0, 1, 3, 2]).unwrap();
    let gtc = gt.to_owned();
    conv2d_backward_input(&gt, &w, p, &mut dx1).unwrap();
    conv2d_backward_input(&gtc.view(), &wc.view(), p, &mut dx2).unwrap();
    assert!(max_rel_err(&dx1.to_vec_f64(), &dx2.to_vec_f64()) < 1e-14);
    conv2d_backward_weight(&x, &gt, p, &mut dw1).unwrap();
    conv2d_backward_weight(&xc.view(), &gtc.view(), p, &mut dw2).unwrap();
    assert!(max_rel_err(&dw1.to_vec_f64(), &dw2.to_vec_f64()) < 1e-14);
}

#[test]
fn conv2d_rejects_bad_inputs() {
    let p = params((1, 1), (0, 0), (1, 1));
    let x = Tensor::zeros(DType::F64, &[2, 3, 5, 5]);
    let w = Tensor::zeros(DType::F64, &[4, 2, 3, 3]);
    let mut out = Tensor::zeros(DType::F64, &[2, 4, 3, 3]);
    match conv2d(&x.view(), &w.view(), p, &mut out) {
        Err(CoreError::Shape { detail, .. }) => {
            assert!(detail.contains("(2, 3, 5, 5)") && detail.contains("(4, 2, 3, 3)"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    let w = Tensor::zeros(DType::F64, &[4, 3, 7, 3]);
    match conv2d(&x.view(), &w.view(), params((1, 1), (0, 0), (1, 1)), &mut out) {
        Err(CoreError::Shape { detail, .. }) => assert!(detail.contains("larger than the padded input (5, 5)"), "{detail}"),
        other => panic!("{other:?}"),
    }
    // Padding makes it fit: (5 + 2 − 7) / 1 + 1 = 1 row.
    let mut out1 = Tensor::zeros(DType::F64, &[2, 4, 1, 3]);
    conv2d(&x.view(), &w.view(), params((1, 1), (1, 0), (1, 1)), &mut out1).unwrap();
    // Wrong output shape.
    let w = Tensor::zeros(DType::F64, &[4, 3, 3, 3]);
    assert!(matches!(conv2d(&x.view(), &w.view(), p, &mut out1), Err(CoreError::Shape { .. })));
    // Integer and mixed dtypes.
    let xi = Tensor::zeros(DType::I32, &[2, 3, 5, 5]);
    let wi = Tensor::zeros(DType::I32, &[4, 3, 3, 3]);
    let mut oi = Tensor::zeros(DType::I32, &[2, 4, 3, 3]);
    assert!(matches!(conv2d(&xi.view(), &wi.view(), p, &mut oi), Err(CoreError::DType { .. })));
    let mut o32 = Tensor::zeros(DType::F32, &[2, 4, 3, 3]);
    assert!(matches!(conv2d(&x.view(), &w.view(), p, &mut o32), Err(CoreError::DType { .. })));
    // Zero stride, 3-D input.
    assert!(conv2d(&x.view(), &w.view(), params((0, 1), (0, 0), (1, 1)), &mut out).is_err());
    let x3 = Tensor::zeros(DType::F64, &[3, 5, 5]);
    assert!(matches!(conv2d(&x3.view(), &w.view(), p, &mut out), Err(CoreError::Shape { .. })));
    // Backward: grad of the wrong spatial size.
    let g = Tensor::zeros(DType::F64, &[2, 4, 2, 3]);
    let mut dx = Tensor::zeros(DType::F64, &[2, 3, 5, 5]);
    assert!(matches!(conv2d_backward_input(&g.view(), &w.view(), p, &mut dx), Err(CoreError::Shape { .. })));
    let mut dw = Tensor::zeros(DType::F64, &[4, 3, 3, 3]);
    assert!(matches!(conv2d_backward_weight(&x.view(), &g.view(), p, &mut dw), Err(CoreError::Shape { .. })));
}

#[test]
fn conv2d_degenerate_sizes() {
    let p = params((1, 1), (0, 0), (1, 1));
    // Empty batch: forward writes nothing, weight gradient is zero.
    let x = Tensor::zeros(DType::F64, &[0, 2, 4, 4]);
    let w = Tensor::full(DType::F64, &[3, 2, 2, 2], 1.0).unwrap();
    let mut out = Tensor::zeros(DType::F64, &[0, 3, 3, 3]);
    conv2d(&x.view(), &w.view(), p, &mut out).unwrap();
    let mut dw = Tensor::full(DType::F64, &[3, 2, 2, 2], 5.0).unwrap();
    conv2d_backward_weight(&x.view(), &out.view(), p, &mut dw).unwrap();
    assert!(dw.to_vec_f64().iter().all(|&v| v == 0.0));
    // Zero input channels: output is all zeros.
    let x = Tensor::zeros(DType::F32, &[2, 0, 4, 4]);
    let w = Tensor::zeros(DType::F32, &[3, 0, 2, 2]);
    let mut out = Tensor::full(DType::F32, &[2, 3, 3, 3], 7.0).unwrap();
    conv2d(&x.view(), &w.view(), p, &mut out).unwrap();
    assert!(out.to_vec_f64().iter().all(|&v| v == 0.0));
}

#[test]
fn conv2d_repeated_calls_are_stable() {
    // Scratch reuse across shapes (grow, then shrink) must not leak stale data.
    let mut rng = Rng(3);
    for &(n, c, h, w, o, kh, kw, s, pd, d) in CASES.iter().chain(CASES.iter().rev()) {
        let p = params(s, pd, d);
        let x = rng.tensor(&[n, c, h, w]);
        let wt = rng.tensor(&[o, c, kh, kw]);
        let (want, os) = naive_conv(&x.to_vec_f64(), &[n, c, h, w], &wt.to_vec_f64(), &[o, c, kh, kw], p);
        let mut out = Tensor::zeros(DType::F64, &os);
        conv2d(&x.view(), &wt.view(), p, &mut out).unwrap();
        assert!(max_rel_err(&out.to_vec_f64(), &want) < 1e-13);
    }
}

// ---------------------------------------------------------------------------------------------
// pooling
// ---------------------------------------------------------------------------------------------

fn naive_max_pool(x: &[f64], xs: &[usize], k: (usize, usize), p: Conv2dParams) -> (Vec<f64>, Vec<usize>, Vec<Option<usize>>) {
    let (oh, ow) = p.out_hw((xs[2], xs[3]), k).unwrap();
    let os = vec![xs[0], xs[1], oh, ow];
    let mut out = vec![0.0; os.iter().product()];
    let mut arg = vec![None; out.len()];
    for n in 0..xs[0] {
        for c in 0..xs[1] {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut best = f64::NEG_INFINITY;
                    let mut bi = None;
                    for i in 0..k.0 {
                        for j in 0..k.1 {
                            if let (Some(iy), Some(ix)) = (
                                tap(y, i, p.stride.0, p.padding.0, p.dilation.0, xs[2]),
                                tap(xx, j, p.stride.1, p.padding.1, p.dilation.1, xs[3]),
                            ) {
                                let id = idx4(xs, n, c, iy, ix);
                                if bi.is_none() || x[id] > best || x[id].is_nan() {
                                    best = x[id];
                                    bi = Some(id);
                                }
                            }
                        }
                    }
                    let o = idx4(&os, n, c, y, xx);
                    out[o] = best;
                    arg[o] = bi;
                }
            }
        }
    }
    (out, os, arg)
}

/// PyTorch avg_pool2d(count_include_pad=True, ceil_mode=False), written from its definition.
fn naive_avg_pool(x: &[f64], xs: &[usize], k: (usize, usize), p: Conv2dParams) -> (Vec<f64>, Vec<usize>) {
    let (oh, ow) = p.out_hw((xs[2], xs[3]), k).unwrap();
    let os = vec![xs[0], xs[1], oh, ow];
    let mut out = vec![0.0; os.iter().product()];
    for n in 0..xs[0] {
        for c in 0..xs[1] {
            for y in 0..oh {
                for xx in 0..ow {
                    // Count every tap inside the padded input, sum the real ones.
                    let (mut cnt, mut sum) = (0usize, 0.0);
                    for i in 0..k.0 {
                        for j in 0..k.1 {
                            let py = y * p.stride.0 + i; // coordinate in the padded input
                            let px = xx * p.stride.1 + j;
                            if py < xs[2] + 2 * p.padding.0 && px < xs[3] + 2 * p.padding.1 {
                                cnt += 1;
                            }
                            if let (Some(iy), Some(ix)) = (
                                tap(y, i, p.stride.0, p.padding.0, 1, xs[2]),
                                tap(xx, j, p.stride.1, p.padding.1, 1, xs[3]),
                            ) {
                                sum += x[idx4(xs, n, c, iy, ix)];
                            }
                        }
                    }
                    out[idx4(&os, n, c, y, xx)] = sum / cnt as f64;
                }
            }
        }
    }
    (out, os)
}

/// (N, C, H, W, kernel, stride, padding, dilation)
type PCase = (usize, usize, usize, usize, (usize, usize), (usize, usize), (usize, usize), (usize, usize));
const PCASES: &[PCase] = &[
    (1, 1, 4, 4, (2, 2), (2, 2), (0, 0), (1, 1)),
    (2, 3, 7, 6, (3, 3), (2, 2), (1, 1), (1, 1)),
    (2, 2, 9, 8, (3, 2), (1, 3), (1, 1), (1, 1)),
    (1, 2, 5, 7, (2, 3), (2, 1), (1, 1), (1, 1)),
    (2, 1, 6, 6, (3, 3), (3, 3), (0, 0), (1, 1)),
    (1, 1, 3, 3, (3, 3), (1, 1), (1, 1), (1, 1)),
    (3, 2, 10, 9, (3, 3), (2, 2), (1, 1), (2, 2)),
    // parallel path
    (4, 16, 32, 32, (3, 3), (2, 2), (1, 1), (1, 1)),
];

#[test]
fn max_pool_matches_naive() {
    let mut rng = Rng(11);
    for &(n, c, h, w, k, s, pd, d) in PCASES {
        let p = params(s, pd, d);
        let xs = [n, c, h, w];
        // Quantized values make ties common, so the first-max rule is exercised.
        let xv: Vec<f64> = rng.vec(n * c * h * w).iter().map(|v| (v * 3.0).round()).collect();
        let x = Tensor::from_vec(xv.clone(), &xs).unwrap();
        let (want, os, arg) = naive_max_pool(&xv, &xs, k, p);
        let mut out = Tensor::zeros(DType::F64, &os);
        max_pool2d(&x.view(), k, p, &mut out).unwrap();
        assert_eq!(out.to_vec_f64(), want, "case {:?}", (n, c, h, w, k, s, pd, d));
        let mut out32 = Tensor::zeros(DType::F32, &os);
        max_pool2d(&f32t(&x).view(), k, p, &mut out32).unwrap();
        assert_eq!(out32.to_vec_f64(), want);

        let g = rng.tensor(&os);
        let mut dx_want = vec![0.0; xv.len()];
        for (o, a) in arg.iter().enumerate() {
            if let Some(a) = a {
                dx_want[*a] += g.to_vec_f64()[o];
            }
        }
        let mut dx = Tensor::full(DType::F64, &xs, f64::NAN).unwrap();
        max_pool2d_backward(&x.view(), &g.view(), k, p, &mut dx).unwrap();
        assert!(max_rel_err(&dx.to_vec_f64(), &dx_want) < 1e-15, "case {:?}", (n, c, h, w, k, s, pd, d));
        let mut dx32 = Tensor::zeros(DType::F32, &xs);
        max_pool2d_backward(&f32t(&x).view(), &f32t(&g).view(), k, p, &mut dx32).unwrap();
        assert!(max_rel_err(&dx32.to_vec_f64(), &dx_want) < 1e-6);
    }
}

#[test]
fn max_pool_ties_nan_and_padding() {
    let p = params((1, 1), (1, 1), (1, 1));
    // All-equal input: each window routes to its first (top-left-most) real cell.
    let x = Tensor::from_vec(vec![2.0f64; 4], &[1, 1, 2, 2]).unwrap();
    let mut out = Tensor::zeros(DType::F64, &[1, 1, 3, 3]);
    max_pool2d(&x.view(), (2, 2), p, &mut out).unwrap();
    assert_eq!(out.to_vec_f64(), vec![2.0; 9]);
    let g = Tensor::from_vec((0..9).map(|i| 10f64.powi(i)).collect::<Vec<_>>(), &[1, 1, 3, 3]).unwrap();
    let mut dx = Tensor::zeros(DType::F64, &[1, 1, 2, 2]);
    max_pool2d_backward(&x.view(), &g.view(), (2, 2), p, &mut dx).unwrap();
    // window rows {-1,0}, {0,1}, {1,2} start at real rows 0, 0, 1 (same for columns)
    assert_eq!(dx.to_vec_f64(), vec![11011.0, 100100.0, 11000000.0, 1e8]);
    // Negative values are not beaten by padding.
    let x = Tensor::from_vec(vec![-5.0f32, -3.0, -4.0, -6.0], &[1, 1, 2, 2]).unwrap();
    let mut out = Tensor::zeros(DType::F32, &[1, 1, 1, 1]);
    max_pool2d(&x.view(), (3, 3), params((2, 2), (1, 1), (1, 1)), &mut out).unwrap();
    assert_eq!(out.to_vec_f64(), vec![-3.0]);
    // NaN propagates and takes the gradient.
    let x = Tensor::from_vec(vec![1.0f64, f64::NAN, 3.0, 2.0], &[1, 1, 2, 2]).unwrap();
    let mut out = Tensor::zeros(DType::F64, &[1, 1, 1, 1]);
    max_pool2d(&x.view(), (2, 2), params((1, 1), (0, 0), (1, 1)), &mut out).unwrap();
    assert!(out.to_vec_f64()[0].is_nan());
    let g = Tensor::from_vec(vec![1.0f64], &[1, 1, 1, 1]).unwrap();
    let mut dx = Tensor::zeros(DType::F64, &[1, 1, 2, 2]);
    max_pool2d_backward(&x.view(), &g.view(), (2, 2), params((1, 1), (0, 0), (1, 1)), &mut dx).unwrap();
    assert_eq!(dx.to_vec_f64(), vec![0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn avg_pool_matches_naive_and_pytorch() {
    let mut rng = Rng(12);
    for &(n, c, h, w, k, s, pd, _) in PCASES {
        let p = params(s, pd, (1, 1));
        let xs = [n, c, h, w];
        let x = rng.tensor(&xs);
        let (want, os) = naive_avg_pool(&x.to_vec_f64(), &xs, k, p);
        let mut out = Tensor::zeros(DType::F64, &os);
        avg_pool2d(&x.view(), k, p, &mut out).unwrap();
        assert!(max_rel_err(&out.to_vec_f64(), &want) < 1e-15, "case {:?}", (n, c, h, w, k, s, pd));
        let mut out32 = Tensor::zeros(DType::F32, &os);
        avg_pool2d(&f32t(&x).view(), k, p, &mut out32).unwrap();
        assert!(max_rel_err(&out32.to_vec_f64(), &want) < 1e-6);

        // Adjoint identity: ⟨avg(x), g⟩ = ⟨x, avg_backward(g)⟩.
        let g = rng.tensor(&os);
        let mut dx = Tensor::full(DType::F64, &xs, f64::NAN).unwrap();
        avg_pool2d_backward(&g.view(), k, p, &mut dx).unwrap();
        let a = inner(&out.to_vec_f64(), &g.to_vec_f64());
        let b = inner(&x.to_vec_f64(), &dx.to_vec_f64());
        assert!((a - b).abs() < 1e-12 * a.abs().max(1.0), "case {:?}: {a} vs {b}", (n, c, h, w, k, s, pd));
    }
    // torch.nn.functional.avg_pool2d(torch.ones(1, 1, 3, 3), 3, 1, 1) (count_include_pad=True)
    let x = Tensor::from_vec(vec![1.0f64; 9], &[1, 1, 3, 3]).unwrap();
    let mut out = Tensor::zeros(DType::F64, &[1, 1, 3, 3]);
    avg_pool2d(&x.view(), (3, 3), params((1, 1), (1, 1), (1, 1)), &mut out).unwrap();
    let e = [4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0].map(|v: f64| v / 9.0);
    assert_eq!(out.to_vec_f64(), e.to_vec());
    // Dilation is rejected for average pooling.
    assert!(matches!(
        avg_pool2d(&x.view(), (2, 2), params((1, 1), (0, 0), (2, 2)), &mut out),
        Err(CoreError::Shape { .. })
    ));
}

#[test]
fn pool_strided_views_and_errors() {
    let mut rng = Rng(13);
    let p = params((2, 1), (1, 1), (1, 1));
    let store = rng.tensor(&[2, 3, 7, 6]);
    let x = store.view().permuted(&[1, 0, 3, 2]).unwrap(); // (3, 2, 6, 7)
    let xc = x.to_owned();
    let (oh, ow) = p.out_hw((6, 7), (3, 2)).unwrap();
    let os = [3, 2, oh, ow];
    for f in [max_pool2d, avg_pool2d] {
        let (mut a, mut b) = (Tensor::zeros(DType::F64, &os), Tensor::zeros(DType::F64, &os));
        f(&x, (3, 2), p, &mut a).unwrap();
        f(&xc.view(), (3, 2), p, &mut b).unwrap();
        assert_eq!(a, b);
    }
    let gstore = rng.tensor(&[ow, oh, 2, 3]);
    let g = gstore.view().permuted(&[3, 2, 1, 0]).unwrap();
    let gc = g.to_owned();
    let (mut a, mut b) = (Tensor::zeros(DType::F64, &[3, 2, 6, 7]), Tensor::zeros(DType::F64, &[3, 2, 6, 7]));
    max_pool2d_backward(&x, &g, (3, 2), p, &mut a).unwrap();
    max_pool2d_backward(&xc.view(), &gc.view(), (3, 2), p, &mut b).unwrap();
    assert_eq!(a, b);
    avg_pool2d_backward(&g, (3, 2), p, &mut a).unwrap();
    avg_pool2d_backward(&gc.view(), (3, 2), p, &mut b).unwrap();
    assert_eq!(a, b);

    let mut bad = Tensor::zeros(DType::F64, &[3, 2, oh + 1, ow]);
    assert!(matches!(max_pool2d(&x, (3, 2), p, &mut bad), Err(CoreError::Shape { .. })));
    assert!(matches!(max_pool2d(&x, (9, 2), p, &mut bad), Err(CoreError::Shape { .. })));
    assert!(matches!(max_pool2d(&x, (0, 2), p, &mut bad), Err(CoreError::Shape { .. })));
    let xi = Tensor::zeros(DType::I64, &[1, 1, 4, 4]);
    let mut oi = Tensor::zeros(DType::I64, &[1, 1, 2, 2]);
    assert!(matches!(avg_pool2d(&xi.view(), (2, 2), params((2, 2), (0, 0), (1, 1)), &mut oi), Err(CoreError::DType { .. })));
}

// ---------------------------------------------------------------------------------------------
// solvers
// ---------------------------------------------------------------------------------------------

/// Scalar re-implementation of one step in f64, written straight from the torch.optim docs.
fn reference_step(rule: &SolverRule, prep: &GradPrep, t: u64, w: &mut f64, g: f64, s: &mut [f64; 2]) {
    let mut g = g / prep.batch_size;
    if let Some(c) = prep.clip {
        g = g.clamp(-c, c);
    }
    let sign = if *w > 0.0 { 1.0 } else if *w < 0.0 { -1.0 } else { 0.0 };
    g = g + prep.l2 * *w + prep.l1 * sign;
    match *rule {
        SolverRule::Sgd { lr, momentum, nesterov, dampening } => {
            let mut d = g;
            if momentum != 0.0 {
                s[0] = if t == 1 { g } else { momentum * s[0] + (1.0 - dampening) * g };
                d = if nesterov { g + momentum * s[0] } else { s[0] };
            }
            *w -= lr * d;
        }
        SolverRule::AdaGrad { lr, eps } => {
            s[0] += g * g;
            *w -= lr * g / (s[0].sqrt() + eps);
        }
        SolverRule::RMSProp { lr, alpha, eps } => {
            s[0] = alpha * s[0] + (1.0 - alpha) * g * g;
            *w -= lr * g / (s[0].sqrt() + eps);
        }
        SolverRule::Adam { lr, beta1, beta2, eps } | SolverRule::AdamW { lr, beta1, beta2, eps, .. } => {
            if let SolverRule::AdamW { weight_decay, .. } = *rule {
                *w *= 1.0 - lr * weight_decay;
            }
            s[0] = beta1 * s[0] + (1.0 - beta1) * g;
            s[1] = beta2 * s[1] + (1.0 - beta2) * g * g;
            let bc1 = 1.0 - beta1.powi(t as i32);
            let bc2 = 1.0 - beta2.powi(t as i32);
            *w -= lr / bc1 * s[0] / (s[1].sqrt() / bc2.sqrt() + eps);
        }
        SolverRule::AdaDelta { lr, rho, eps } => {
            s[0] = rho * s[0] + (1.0 - rho) * g * g;
            let delta = (s[1] + eps).sqrt() / (s[0] + eps).sqrt() * g;
            s[1] = rho * s[1] + (1.0 - rho) * delta * delta;
            *w -= lr * delta;
        }
    }
}

fn rules() -> Vec<SolverRule> {
    vec![
        SolverRule::Sgd { lr: 0.1, momentum: 0.0, nesterov: false, dampening: 0.0 },
        SolverRule::Sgd { lr: 0.05, momentum: 0.9, nesterov: false, dampening: 0.1 },
        SolverRule::Sgd { lr: 0.05, momentum: 0.8, nesterov: true, dampening: 0.0 },
        SolverRule::AdaGrad { lr: 0.1, eps: 1e-10 },
        SolverRule::RMSProp { lr: 0.01, alpha: 0.99, eps: 1e-8 },
        SolverRule::Adam { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 },
        SolverRule::Adam { lr: 1e-2, beta1: 0.3, beta2: 0.9, eps: 1e-6 },
        SolverRule::AdamW { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 },
        SolverRule::AdaDelta { lr: 1.0, rho: 0.9, eps: 1e-6 },
    ]
}

fn preps() -> Vec<GradPrep> {
    vec![
        GradPrep::default(),
        GradPrep { batch_size: 8.0, clip: Some(0.05), l1: 1e-3, l2: 1e-2 },
    ]
}

fn run_solver<T: gorgon_core::Float>(rule: &SolverRule, prep: &GradPrep, n: usize, steps: u64, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng(seed);
    let w0 = rng.vec(n);
    let mut w: Vec<T> = w0.iter().map(|&v| T::from_f64(v)).collect();
    let mut st: Vec<Vec<T>> = vec![vec![T::zero(); n]; state_len(rule)];
    let mut wr = w0.clone();
    let mut sr = vec![[0.0f64; 2]; n];
    for t in 1..=steps {
        let g = rng.vec(n);
        let gt: Vec<T> = g.iter().map(|&v| T::from_f64(v)).collect();
        let mut refs: Vec<&mut [T]> = st.iter_mut().map(|v| v.as_mut_slice()).collect();
        apply(rule, prep, t, &mut w, &gt, &mut refs).unwrap();
        for i in 0..n {
            reference_step(rule, prep, t, &mut wr[i], g[i], &mut sr[i]);
        }
    }
    (w.iter().map(|v| v.to_f64()).collect(), wr)
}

#[test]
fn solvers_match_scalar_reference() {
    for rule in rules() {
        for prep in preps() {
            let (got, want) = run_solver::<f64>(&rule, &prep, 37, 6, 21);
            let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err < 1e-13, "{rule:?} {prep:?}: f64 err {err}");
            let (got, want) = run_solver::<f32>(&rule, &prep, 37, 6, 21);
            let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err < 2e-5, "{rule:?} {prep:?}: f32 err {err}");
        }
    }
}

#[test]
fn solvers_parallel_path_is_elementwise() {
    // Large parameter: split across threads, must equal the scalar reference exactly-ish.
    let rule = SolverRule::Adam { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    let prep = GradPrep { batch_size: 4.0, clip: Some(0.2), l1: 0.0, l2: 1e-3 };
    let (got, want) = run_solver::<f64>(&rule, &prep, 300_001, 3, 5);
    let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(err < 1e-13, "err {err}");
    let rule = SolverRule::AdaDelta { lr: 1.0, rho: 0.95, eps: 1e-6 };
    let (got, want) = run_solver::<f32>(&rule, &GradPrep::default(), 200_003, 3, 6);
    let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(err < 1e-5, "err {err}");
}

#[test]
fn solver_known_values() {
    // torch.optim.SGD(momentum=0.9, nesterov=True, lr=0.1), w=1, grads 1 then 1:
    // step 1: buf=1, d=1+0.9=1.9, w=0.81; step 2: buf=1.9, d=1+1.71=2.71, w=0.539
    let rule = SolverRule::Sgd { lr: 0.1, momentum: 0.9, nesterov: true, dampening: 0.0 };
    let mut w = vec![1.0f64];
    let mut b = vec![0.0f64];
    apply(&rule, &GradPrep::default(), 1, &mut w, &[1.0], &mut [&mut b]).unwrap();
    assert!((w[0] - 0.81).abs() < 1e-15);
    apply(&rule, &GradPrep::default(), 2, &mut w, &[1.0], &mut [&mut b]).unwrap();
    assert!((w[0] - 0.539).abs() < 1e-15);
    // Adam's first step moves every coordinate by ≈ lr·sign(g).
    let rule = SolverRule::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    let mut w = vec![0.0f32, 0.0];
    let (mut m, mut v) = (vec![0.0f32; 2], vec![0.0f32; 2]);
    apply(&rule, &GradPrep::default(), 1, &mut w, &[3.0, -0.5], &mut [&mut m, &mut v]).unwrap();
    assert!((w[0] + 0.01).abs() < 1e-7 && (w[1] - 0.01).abs() < 1e-7, "{w:?}");
    // Errors instead of panics.
    let mut short = vec![0.0f32; 1];
    assert!(apply(&rule, &GradPrep::default(), 1, &mut w, &[1.0, 1.0], &mut [&mut m]).is_err());
    assert!(apply(&rule, &GradPrep::default(), 1, &mut w, &[1.0, 1.0], &mut [&mut m, &mut short]).is_err());
    assert!(apply(&rule, &GradPrep::default(), 0, &mut w, &[1.0, 1.0], &mut [&mut m, &mut v]).is_err());
    assert!(apply(&rule, &GradPrep::default(), 1, &mut w, &[1.0], &mut [&mut m, &mut v]).is_err());
}

#[test]
fn barzilai_borwein_helpers() {
    let a: Vec<f32> = (0..1001).map(|i| (i as f32) * 0.5).collect();
    let b: Vec<f32> = (0..1001).map(|i| 1.0 - (i % 7) as f32).collect();
    let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
    assert!((dot(&a, &b) - want).abs() < 1e-9);
    assert_eq!(dot::<f64>(&[], &[]), 0.0);
    let mut w = vec![1.0f64, 2.0, 3.0];
    axpy_update(&mut w, &[1.0, 1.0, -2.0], 0.5);
    assert_eq!(w, vec![0.5, 1.5, 4.0]);
}

/// Release-mode timing of the two MNIST-style layers (run with
/// `cargo test --release --test conv_pool_optim -- --ignored --nocapture`).
#[test]
#[ignore]
fn conv_timing() {
    use std::time::Instant;
    let mut rng = Rng(1);
    let p = params((1, 1), (1, 1), (1, 1));
    for &(n, c, hw, o) in &[(64usize, 1usize, 28usize, 32usize), (64, 32, 14, 64)] {
        let xs = [n, c, hw, hw];
        let ws = [o, c, 3, 3];
        let os = [n, o, hw, hw];
        let x = f32t(&rng.tensor(&xs));
        let w = f32t(&rng.tensor(&ws));
        let g = f32t(&rng.tensor(&os));
        let mut y = Tensor::zeros(DType::F32, &os);
        let mut dx = Tensor::zeros(DType::F32, &xs);
        let mut dw = Tensor::zeros(DType::F32, &ws);
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        for it in 0..23 {
            let t0 = Instant::now();
            conv2d(&x.view(), &w.view(), p, &mut y).unwrap();
            let t1 = Instant::now();
            conv2d_backward_input(&g.view(), &w.view(), p, &mut dx).unwrap();
            let t2 = Instant::now();
            conv2d_backward_weight(&x.view(), &g.view(), p, &mut dw).unwrap();
            let t3 = Instant::now();
            if it >= 3 {
                times[0].push((t1 - t0).as_secs_f64() * 1e3);
                times[1].push((t2 - t1).as_secs_f64() * 1e3);
                times[2].push((t3 - t2).as_secs_f64() * 1e3);
            }
        }
        // Minimum over runs: the machine may be shared, and the minimum is the least noisy.
        let med = |v: &mut Vec<f64>| v.iter().cloned().fold(f64::INFINITY, f64::min);
        let (f, bi, bw) = (med(&mut times[0]), med(&mut times[1]), med(&mut times[2]));
        println!(
            "conv {}→{} {}x{} batch {}: fwd {:.2} ms, bwd_input {:.2} ms, bwd_weight {:.2} ms, total {:.2} ms (threads {})",
            c, o, hw, hw, n, f, bi, bw, f + bi + bw, gorgon_core::kernels::threads::num_threads()
        );
    }
}
