//! GPU kernels against the CPU kernels of gorgon-core (the oracle), one test per family,
//! float32 and float64. Every test skips with the reason when no CUDA device is usable, so
//! this file passes on CPU-only machines and CI; on a GPU machine also set
//! `GORGON_NVRTC_PATH` (and `GORGON_CUBLAS_PATH` unless cuBLAS is installed system-wide).
#![cfg(feature = "cuda")]

use gorgon_core::kernels::conv::{self, Conv2dParams};
use gorgon_core::kernels::elementwise::{self as ew, BinaryOp, UnaryOp};
use gorgon_core::kernels::reduce::{self as red, ReduceOp};
use gorgon_core::kernels::{index, matmul, pool, softmax};
use gorgon_core::{DType, Device, Tensor};
use gorgon_cuda::{CudaBuffer, CudaDevice, Update, UpdateParams};

fn dev() -> Option<CudaDevice> {
    if !gorgon_cuda::is_available() {
        eprintln!("skipping: {}", gorgon_cuda::unavailable_reason().unwrap_or_default());
        return None;
    }
    Some(CudaDevice::new(0).unwrap_or_else(|e| panic!("a CUDA device is present but cannot be opened: {e}")))
}

/// A small deterministic generator (no dependency needed).
struct Rng(u64);
impl Rng {
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        lo + (hi - lo) * ((self.0 >> 11) as f64 / (1u64 << 53) as f64)
    }
    fn tensor(&mut self, dt: DType, shape: &[usize], lo: f64, hi: f64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut v: Vec<f64> = (0..n).map(|_| self.uniform(lo, hi)).collect();
        if dt == DType::Bool {
            v.iter_mut().for_each(|x| *x = (*x > (lo + hi) / 2.0) as u8 as f64);
        }
        let t = Tensor::from_vec_f64(v, shape).unwrap();
        let mut out = Tensor::zeros(dt, shape);
        ew::cast(&t.view(), &mut out).unwrap();
        out
    }
}

fn tol(dt: DType) -> f64 {
    if dt == DType::F32 { 2e-4 } else { 1e-10 }
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    for (i, (g, w)) in got.to_vec_f64().iter().zip(want.to_vec_f64()).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == &w || (g - w).abs() <= tol * (1.0 + w.abs());
        assert!(ok, "{what}: element {i}: gpu {g} vs cpu {w}");
    }
}

fn up(d: &mut CudaDevice, t: &Tensor) -> CudaBuffer {
    d.to_device(t).unwrap()
}

fn down(d: &mut CudaDevice, b: &CudaBuffer) -> Tensor {
    d.download(b).unwrap()
}

const FLOATS: [DType; 2] = [DType::F32, DType::F64];

#[test]
fn upload_download_round_trip_every_dtype() {
    let Some(mut d) = dev() else { return };
    let mut rng = Rng(1);
    for dt in DType::ALL {
        for shape in [&[][..], &[0][..], &[7][..], &[3, 4, 5][..]] {
            let t = rng.tensor(dt, shape, -50.0, 50.0);
            let b = up(&mut d, &t);
            assert_eq!((b.shape(), b.dtype()), (shape, dt));
            assert_eq!(down(&mut d, &b), t, "{dt} {shape:?}");
        }
    }
    let (ups, downs) = d.transfers();
    assert_eq!((ups, downs), (20, 20));
    // Shape/dtype mismatches are errors, not panics.
    let mut b = d.alloc(DType::F32, &[2]).unwrap();
    assert!(d.upload(&Tensor::zeros(DType::F64, &[2]), &mut b).is_err());
    assert!(d.upload(&Tensor::zeros(DType::F32, &[3]), &mut b).is_err());
    // alloc zero-fills; fill sets.
    assert_eq!(down(&mut d, &b).to_vec_f64(), vec![0.0, 0.0]);
    d.fill(&mut b, 2.5).unwrap();
    assert_eq!(down(&mut d, &b).to_vec_f64(), vec![2.5, 2.5]);
    let mut c = d.alloc(DType::F32, &[2, 1]).unwrap();
    d.copy(&b, &mut c).unwrap();
    assert_eq!(down(&mut d, &c).to_vec_f64(), vec![2.5, 2.5]);
}

#[test]
fn unary_ops_match_cpu() {
    let Some(mut d) = dev() else { return };
    use UnaryOp::*;
    let ops = [
        Neg, Abs, Sign, Exp, Log, Log1p, Expm1, Log2, Sqrt, Square, Cube, Inverse, InverseSqrt, Sin, Cos, Tanh, Sigmoid,
        Softplus, Relu, Mish, Floor, Ceil, LeakyRelu(0.1), Clip(-0.5, 0.5), Step, InRange(-0.5, 0.5), LeakyStep(0.1), MishGrad,
    ];
    let mut rng = Rng(2);
    for dt in FLOATS {
        let x = rng.tensor(dt, &[1000], -3.0, 3.0);
        let pos = rng.tensor(dt, &[1000], 0.05, 3.0);
        for op in ops {
            let input = if matches!(op, Log | Log2 | Sqrt | InverseSqrt) { &pos } else { &x };
            let mut want = Tensor::zeros(dt, input.shape());
            ew::unary(op, &input.view(), &mut want).unwrap();
            let xb = up(&mut d, input);
            let mut ob = d.alloc(dt, input.shape()).unwrap();
            d.unary(op, &xb, &mut ob).unwrap();
            assert_close(&format!("{op:?} {dt}"), &down(&mut d, &ob), &want, tol(dt));
        }
    }
    for dt in [DType::I32, DType::I64] {
        let x = rng.tensor(dt, &[100], -100.0, 100.0);
        for op in [Neg, Abs, Sign, Square, Cube] {
            let mut want = Tensor::zeros(dt, &[100]);
            ew::unary(op, &x.view(), &mut want).unwrap();
            let xb = up(&mut d, &x);
            let mut ob = d.alloc(dt, &[100]).unwrap();
            d.unary(op, &xb, &mut ob).unwrap();
            assert_eq!(down(&mut d, &ob), want, "{op:?} {dt}");
        }
        let xb = up(&mut d, &x);
        let mut ob = d.alloc(dt, &[100]).unwrap();
        assert!(d.unary(Exp, &xb, &mut ob).is_err(), "Exp on {dt} must be a dtype error");
    }
}

#[test]
fn binary_ops_broadcast_like_cpu() {
    let Some(mut d) = dev() else { return };
    use BinaryOp::*;
    let ops = [Add, Sub, Mul, Div, Pow, FloorDiv, Maximum, Minimum, Lt, Le, Gt, Ge, Eq, Ne];
    let shapes: [(&[usize], &[usize]); 4] = [(&[4, 5], &[4, 5]), (&[3, 1, 5], &[4, 1]), (&[], &[6]), (&[2, 3, 4, 5], &[5])];
    let mut rng = Rng(3);
    for dt in [DType::F32, DType::F64, DType::I32, DType::I64] {
        for (sa, sb) in shapes {
            let (lo, hi) = if dt.is_float() { (0.1, 3.0) } else { (1.0, 9.0) };
            let a = rng.tensor(dt, sa, lo, hi);
            let b = rng.tensor(dt, sb, lo, hi);
            let shape = gorgon_core::shape::broadcast_shapes(sa, sb).unwrap();
            let (ab, bb) = (up(&mut d, &a), up(&mut d, &b));
            for op in ops {
                let mut want = Tensor::zeros(dt, &shape);
                if ew::binary(op, &a.view(), &b.view(), &mut want).is_err() {
                    continue; // e.g. integer Div, which the graph layer casts to float first
                }
                let mut ob = d.alloc(dt, &shape).unwrap();
                d.binary(op, &ab, &bb, &mut ob).unwrap();
                assert_close(&format!("{op:?} {dt} {sa:?} {sb:?}"), &down(&mut d, &ob), &want, tol(dt));
            }
        }
    }
}

#[test]
fn where_cast_and_views_match_cpu() {
    let Some(mut d) = dev() else { return };
    let mut rng = Rng(4);
    let cond = rng.tensor(DType::Bool, &[3, 1], -1.0, 1.0);
    for dt in DType::ALL {
        let a = rng.tensor(dt, &[3, 4], -5.0, 5.0);
        let b = rng.tensor(dt, &[4], -5.0, 5.0);
        let mut want = Tensor::zeros(dt, &[3, 4]);
        ew::where_(&cond.view(), &a.view(), &b.view(), &mut want).unwrap();
        let (cb, ab, bb) = (up(&mut d, &cond), up(&mut d, &a), up(&mut d, &b));
        let mut ob = d.alloc(dt, &[3, 4]).unwrap();
        d.where_(&cb, &ab, &bb, &mut ob).unwrap();
        assert_eq!(down(&mut d, &ob), want, "where {dt}");
        for to in DType::ALL {
            let mut want = Tensor::zeros(to, &[3, 4]);
            ew::cast(&a.view(), &mut want).unwrap();
            let mut ob = d.alloc(to, &[3, 4]).unwrap();
            d.cast(&ab, &mut ob).unwrap();
            assert_eq!(down(&mut d, &ob), want, "cast {dt} -> {to}");
        }
        // transpose, broadcast, reversed slice
        let x = rng.tensor(dt, &[2, 3, 4], -5.0, 5.0);
        let xb = up(&mut d, &x);
        let mut ob = d.alloc(dt, &[4, 2, 3]).unwrap();
        d.permute(&xb, &[2, 0, 1], &mut ob).unwrap();
        assert_eq!(down(&mut d, &ob), x.view().permuted(&[2, 0, 1]).unwrap().to_owned(), "permute {dt}");
        let mut ob = d.alloc(dt, &[5, 2, 3, 4]).unwrap();
        d.broadcast_to(&xb, &mut ob).unwrap();
        assert_eq!(down(&mut d, &ob), x.view().broadcast_to(&[5, 2, 3, 4]).unwrap().to_owned(), "broadcast {dt}");
        let mut ob = d.alloc(dt, &[2, 3, 2]).unwrap();
        d.copy_strided(&xb, &[2, 3, 2], &[12, 4, -2], 3, &mut ob).unwrap();
        let want = x.view().slice(&[(0, 2, 1), (0, 3, 1), (3, 0, -2)]).unwrap().to_owned();
        assert_eq!(down(&mut d, &ob), want, "reversed slice {dt}");
    }
}

#[test]
fn reductions_match_cpu() {
    let Some(mut d) = dev() else { return };
    let mut rng = Rng(5);
    let ops = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min, ReduceOp::Prod, ReduceOp::LogSumExp];
    let shape = [3, 4, 70];
    let axes_sets: [&[usize]; 7] = [&[], &[0], &[1], &[2], &[0, 2], &[1, 2], &[0, 1, 2]];
    for dt in [DType::F32, DType::F64, DType::I32, DType::I64] {
        // ints in {0, 1}: products cannot overflow and argmax sees many ties
        let x = if dt.is_float() { rng.tensor(dt, &shape, 0.9, 1.1) } else { rng.tensor(dt, &shape, -1.0, 2.0) };
        let xb = up(&mut d, &x);
        for op in ops {
            if !dt.is_float() && matches!(op, ReduceOp::Mean | ReduceOp::LogSumExp) {
                continue;
            }
            for axes in axes_sets {
                let kept = gorgon_core::shape::reduced_shape(&shape, axes, false);
                let mut want = Tensor::zeros(dt, &kept);
                red::reduce(op, &x.view(), axes, &mut want).unwrap();
                let mut ob = d.alloc(dt, &kept).unwrap();
                d.reduce(op, &xb, axes, &mut ob).unwrap();
                assert_close(&format!("{op:?} {dt} {axes:?}"), &down(&mut d, &ob), &want, 1e-3);
            }
        }
        for axis in [None, Some(0), Some(1), Some(2)] {
            for is_max in [true, false] {
                let kept = match axis {
                    None => vec![],
                    Some(a) => gorgon_core::shape::reduced_shape(&shape, &[a], false),
                };
                let mut want = Tensor::zeros(DType::I64, &kept);
                red::arg_reduce(is_max, &x.view(), axis, &mut want).unwrap();
                let mut ob = d.alloc(DType::I64, &kept).unwrap();
                d.arg_reduce(is_max, &xb, axis, &mut ob).unwrap();
                assert_eq!(down(&mut d, &ob), want, "arg {is_max} {dt} {axis:?}");
            }
        }
    }
}

#[test]
fn softmax_forward_and_backward() {
    let Some(mut d) = dev() else { return };
    let mut rng = Rng(6);
    for dt in FLOATS {
        for (shape, axis) in [(&[5, 300][..], 1), (&[4, 6, 3][..], 1), (&[7, 5][..], 0)] {
            let x = rng.tensor(dt, shape, -4.0, 4.0);
            let dy = rng.tensor(dt, shape, -1.0, 1.0);
            let (xb, dyb) = (up(&mut d, &x), up(&mut d, &dy));
            for log in [false, true] {
                let mut y = Tensor::zeros(dt, shape);
                softmax::softmax(&x.view(), axis, log, &mut y).unwrap();
                let mut yb = d.alloc(dt, shape).unwrap();
                d.softmax(&xb, axis, log, &mut yb).unwrap();
                assert_close(&format!("softmax log={log} {dt} {shape:?}"), &down(&mut d, &yb), &y, tol(dt));
                // backward oracle on the host: along `axis`, s = Σ dy·y (or Σ dy for log)
                let (outer, r, inner) = gorgon_cuda::layout::split_at_axis(shape, axis);
                let (yv, gv) = (y.to_vec_f64(), dy.to_vec_f64());
                let mut want = vec![0.0; yv.len()];
                for o in 0..outer {
                    for i in 0..inner {
                        let at = |k: usize| (o * r + k) * inner + i;
                        let s: f64 = (0..r).map(|k| if log { gv[at(k)] } else { gv[at(k)] * yv[at(k)] }).sum();
                        for k in 0..r {
                            let j = at(k);
                            want[j] = if log { gv[j] - yv[j].exp() * s } else { yv[j] * (gv[j] - s) };
                        }
                    }
                }
                let mut want_t = Tensor::zeros(dt, shape);
                ew::cast(&Tensor::from_vec_f64(want, shape).unwrap().view(), &mut want_t).unwrap();
                let mut dxb = d.alloc(dt, shape).unwrap();
                d.softmax_backward(&yb, &dyb, axis, log, &mut dxb).unwrap();
                assert_close(&format!("softmax_backward log={log} {dt}"), &down(&mut d, &dxb), &want_t, 1e-3);
            }
        }
    }
}

#[test]
fn take_and_scatter_add_match_cpu() {
    let Some(mut d) = dev() else { return };
    let mut rng = Rng(7);
    for dt in FLOATS {
        let x = rng.tensor(dt, &[5, 4, 3], -2.0, 2.0);
        let idx = Tensor::from_vec(vec![0i64, 3, -1, 3, 1], &[5]).unwrap();
        let xb = up(&mut d, &x);
        let ib = up(&mut d, &idx);
        let mut want = Tensor::zeros(dt, &[5, 5, 3]);
        index::take(&x.view(), &idx.view(), 1, &mut want).unwrap();
        let mut ob = d.alloc(dt, &[5, 5, 3]).unwrap();
        d.take(&xb, &ib, 1, &mut ob).unwrap();
        assert_eq!(down(&mut d, &ob), want, "take {dt}");
        let g = rng.tensor(dt, &[5, 5, 3], -1.0, 1.0);
        let mut want = Tensor::zeros(dt, &[5, 4, 3]);
        index::scatter_add(&g.view(), &idx.view(), 1, &mut want).unwrap();
        let gb = up(&mut d, &g);
        let mut ob = d.alloc(dt, &[5, 4, 3]).unwrap();
        d.scatter_add(&gb, &ib, 1, &mut ob).unwrap();
        assert_close(&format!("scatter_add {dt}"), &down(&mut d, &ob), &want, tol(dt));
    }
    // An out-of-range index is reported at the next synchronize, then cleared.
    let x = up(&mut d, &Tensor::zeros(DType::F32, &[3, 2]));
    let bad = up(&mut d, &Tensor::from_vec(vec![0i32, 3], &[2]).unwrap());
    let mut ob = d.alloc(DType::F32, &[2, 2]).unwrap();
    d.take(&x, &bad, 0, &mut ob).unwrap();
    assert!(matches!(d.synchronize(), Err(gorgon_core::CoreError::Index { .. })));
    assert!(d.synchronize().is_ok());
}

#[test]
fn matmul_matches_cpu() {
    let Some(mut d) = dev() else { return };
    let mut rng = Rng(8);
    let cases: [(&[usize], &[usize]); 5] = [
        (&[3, 4], &[4, 5]),
        (&[64, 128], &[128, 32]),
        (&[2, 3, 4], &[2, 4, 5]),
        (&[2, 3, 4], &[4, 5]),
        (&[2, 1, 3, 4], &[1, 3, 4, 2]),
    ];
    for dt in FLOATS {
        for (sa, sb) in cases {
            let a = rng.tensor(dt, sa, -1.0, 1.0);
            let b = rng.tensor(dt, sb, -1.0, 1.0);
            let batch = gorgon_core::shape::broadcast_shapes(&sa[..sa.len() - 2], &sb[..sb.len() - 2]).unwrap();
            let mut shape = batch.clone();
            shape.extend_from_slice(&[sa[sa.len() - 2], sb[sb.len() - 1]]);
            let mut want = Tensor::zeros(dt, &shape);
            matmul::matmul(&a.view(), &b.view(), &mut want).unwrap();
            let (ab, bb) = (up(&mut d, &a), up(&mut d, &b));
            let mut ob = d.alloc(dt, &shape).unwrap();
            d.matmul(&ab, &bb, &mut ob).unwrap();
            assert_close(&format!("matmul {dt} {sa:?} {sb:?}"), &down(&mut d, &ob), &want, 1e-3);
        }
        // aᵀ @ bᵀ from stored transposes
        let at = rng.tensor(dt, &[4, 3], -1.0, 1.0);
        let bt = rng.tensor(dt, &[5, 4], -1.0, 1.0);
        let mut want = Tensor::zeros(dt, &[3, 5]);
        matmul::matmul(&at.view().permuted(&[1, 0]).unwrap(), &bt.view().permuted(&[1, 0]).unwrap(), &mut want).unwrap();
        let (ab, bb) = (up(&mut d, &at), up(&mut d, &bt));
        let mut ob = d.alloc(dt, &[3, 5]).unwrap();
        d.matmul_t(&ab, true, &bb, true, &mut ob).unwrap();
        assert_close(&format!("matmul_t {dt}"), &down(&mut d, &ob), &want, 1e-3);
    }
}

#[test]
fn conv2d_and_its_gradients_match_cpu() {
    let Some(mut d) = dev() else { return };
    let mut rng = Rng(9);
    let params = [
        Conv2dParams { stride: (1, 1), padding: (0, 0), dilation: (1, 1) },
        Conv2dParams { stride: (2, 1), padding: (1, 2), dilation: (1, 2) },
    ];
    for dt in FLOATS {
        for p in params {
            let x = rng.tensor(dt, &[2, 3, 9, 8], -1.0, 1.0);
            let w = rng.tensor(dt, &[4, 3, 3, 3], -1.0, 1.0);
            let (oh, ow) = p.out_hw((9, 8), (3, 3)).unwrap();
            let out_shape = [2, 4, oh, ow];
            let mut want = Tensor::zeros(dt, &out_shape);
            conv::conv2d(&x.view(), &w.view(), p, &mut want).unwrap();
            let (xb, wb) = (up(&mut d, &x), up(&mut d, &w));
            let mut ob = d.alloc(dt, &out_shape).unwrap();
            d.conv2d(&xb, &wb, p, &mut ob).unwrap();
            assert_close(&format!("conv2d {dt} {p:?}"), &down(&mut d, &ob), &want, 1e-3);

            let g = rng.tensor(dt, &out_shape, -1.0, 1.0);
            let gb = up(&mut d, &g);
            let mut want = Tensor::zeros(dt, &[2, 3, 9, 8]);
            conv::conv2d_backward_input(&g.view(), &w.view(), p, &mut want).unwrap();
            let mut ob = d.alloc(dt, &[2, 3, 9, 8]).unwrap();
            d.conv2d_backward_input(&gb, &wb, p, &mut ob).unwrap();
            assert_close(&format!("conv2d_backward_input {dt}"), &down(&mut d, &ob), &want, 1e-3);

            let mut want = Tensor::zeros(dt, &[4, 3, 3, 3]);
            conv::conv2d_backward_weight(&x.view(), &g.view(), p, &mut want).unwrap();
            let mut ob = d.alloc(dt, &[4, 3, 3, 3]).unwrap();
            d.conv2d_backward_weight(&xb, &gb, p, &mut ob).unwrap();
            assert_close(&format!("conv2d_backward_weight {dt}"), &down(&mut d, &ob), &want, 1e-3);
        }
    }
}

#[test]
fn pooling_matches_cpu() {
    let Some(mut d) = dev() else { return };
    let mut rng = Rng(10);
    let p = Conv2dParams { stride: (2, 2), padding: (1, 1), dilation: (1, 1) };
    let k = (3, 3);
    for dt in FLOATS {
        let x = rng.tensor(dt, &[2, 3, 8, 7], -1.0, 1.0);
        let (oh, ow) = p.out_hw((8, 7), k).unwrap();
        let out_shape = [2, 3, oh, ow];
        let g = rng.tensor(dt, &out_shape, -1.0, 1.0);
        let (xb, gb) = (up(&mut d, &x), up(&mut d, &g));
        for is_max in [true, false] {
            let mut want = Tensor::zeros(dt, &out_shape);
            let mut ob = d.alloc(dt, &out_shape).unwrap();
            if is_max {
                pool::max_pool2d(&x.view(), k, p, &mut want).unwrap();
                d.max_pool2d(&xb, k, p, &mut ob).unwrap();
            } else {
                pool::avg_pool2d(&x.view(), k, p, &mut want).unwrap();
                d.avg_pool2d(&xb, k, p, &mut ob).unwrap();
            }
            assert_close(&format!("pool max={is_max} {dt}"), &down(&mut d, &ob), &want, tol(dt));
            let mut want = Tensor::zeros(dt, x.shape());
            let mut ob = d.alloc(dt, x.shape()).unwrap();
            if is_max {
                pool::max_pool2d_backward(&x.view(), &g.view(), k, p, &mut want).unwrap();
                d.max_pool2d_backward(&xb, &gb, k, p, &mut ob).unwrap();
            } else {
                pool::avg_pool2d_backward(&g.view(), k, p, &mut want).unwrap();
                d.avg_pool2d_backward(&gb, k, p, &mut ob).unwrap();
            }
            assert_close(&format!("pool backward max={is_max} {dt}"), &down(&mut d, &ob), &want, 1e-4);
        }
    }
}

/// Host reference of the solver formulas (PyTorch's), one element at a time.
fn reference_update(kind: Update, p: &UpdateParams, w: &mut [f64], g: &[f64], s: &mut [Vec<f64>]) {
    for i in 0..w.len() {
        let mut gi = g[i] * p.scale;
        if p.clip > 0.0 {
            gi = gi.clamp(-p.clip, p.clip);
        }
        gi += p.l2 * w[i] + p.l1 * if w[i] > 0.0 { 1.0 } else if w[i] < 0.0 { -1.0 } else { 0.0 };
        match kind {
            Update::Sgd => w[i] -= p.lr * gi,
            Update::SgdMomentum => {
                let b = if p.step <= 1 { gi } else { p.momentum * s[0][i] + (1.0 - p.dampening) * gi };
                s[0][i] = b;
                w[i] -= p.lr * if p.nesterov != 0 { gi + p.momentum * b } else { b };
            }
            Update::Adam => {
                if p.weight_decay != 0.0 {
                    w[i] *= 1.0 - p.lr * p.weight_decay;
                }
                s[0][i] = p.beta1 * s[0][i] + (1.0 - p.beta1) * gi;
                s[1][i] = p.beta2 * s[1][i] + (1.0 - p.beta2) * gi * gi;
                let bc1 = 1.0 - p.beta1.powi(p.step as i32);
                let bc2 = 1.0 - p.beta2.powi(p.step as i32);
                w[i] -= p.lr / bc1 * s[0][i] / (s[1][i].sqrt() / bc2.sqrt() + p.eps);
            }
            Update::RmsProp => {
                s[0][i] = p.alpha * s[0][i] + (1.0 - p.alpha) * gi * gi;
                w[i] -= p.lr * gi / (s[0][i].sqrt() + p.eps);
            }
            Update::AdaGrad => {
                s[0][i] += gi * gi;
                w[i] -= p.lr * gi / (s[0][i].sqrt() + p.eps);
            }
            Update::AdaDelta => {
                s[0][i] = p.rho * s[0][i] + (1.0 - p.rho) * gi * gi;
                let delta = (s[1][i] + p.eps).sqrt() / (s[0][i] + p.eps).sqrt() * gi;
                s[1][i] = p.rho * s[1][i] + (1.0 - p.rho) * delta * delta;
                w[i] -= p.lr * delta;
            }
        }
    }
}

#[test]
fn solver_updates_match_the_reference_formulas() {
    let Some(mut d) = dev() else { return };
    let mut rng = Rng(11);
    let kinds = [Update::Sgd, Update::SgdMomentum, Update::Adam, Update::RmsProp, Update::AdaGrad, Update::AdaDelta];
    for kind in kinds {
        let w0 = rng.tensor(DType::F64, &[257], -1.0, 1.0);
        let mut w_ref = w0.to_vec_f64();
        let mut s_ref = vec![vec![0.0; 257]; kind.state_count()];
        let mut wb = up(&mut d, &w0);
        let mut state: Vec<CudaBuffer> = (0..kind.state_count()).map(|_| d.alloc(DType::F64, &[257]).unwrap()).collect();
        for step in 1..=3 {
            let g = rng.tensor(DType::F64, &[257], -1.0, 1.0);
            let p = UpdateParams {
                lr: 0.05,
                momentum: 0.9,
                nesterov: step % 2,
                weight_decay: 0.01,
                scale: 0.5,
                clip: 0.4,
                l1: 1e-3,
                l2: 1e-2,
                step,
                ..Default::default()
            };
            reference_update(kind, &p, &mut w_ref, &g.to_vec_f64(), &mut s_ref);
            let gb = up(&mut d, &g);
            d.update(kind, &p, &mut wb, &gb, &mut state).unwrap();
        }
        let want = Tensor::from_vec_f64(w_ref, &[257]).unwrap();
        assert_close(&format!("{kind:?}"), &down(&mut d, &wb), &want, 1e-12);
    }
}
