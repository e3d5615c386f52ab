//! Max pooling, forward and backward, bit for bit against a naive reference of PyTorch's
//! rule, on inputs made to stress the fast paths: ties (few distinct values), NaN, ±∞, ±0,
//! odd sizes, overlapping and gapped windows, and strided / reversed / transposed views, in
//! float32 and float64.

use gorgon_core::kernels::conv::Conv2dParams;
use gorgon_core::kernels::pool::{max_pool2d, max_pool2d_backward};
use gorgon_core::{DType, Tensor, TensorView};

/// SplitMix64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A value from a small set, so windows often hold ties, with NaN, ±∞ and ±0 mixed in.
    fn nasty(&mut self) -> f64 {
        match self.next() % 100 {
            0..=2 => f64::NAN,
            3 => -f64::NAN,
            4..=6 => f64::NEG_INFINITY,
            7 => f64::INFINITY,
            8..=14 => -0.0,
            15..=21 => 0.0,
            r => (r % 5) as f64 * 0.5 - 1.5,
        }
    }
    /// A gradient value: distinct-ish numbers, sometimes −0 or NaN.
    fn grad(&mut self) -> f64 {
        match self.next() % 50 {
            0 => -0.0,
            1 => f64::NAN,
            r => (r as f64 - 25.0) / 8.0 + (self.next() % 1000) as f64 / 4096.0,
        }
    }
}

/// Rounds to the test's dtype (float32 sums are exact in f64 and rounded once).
fn rounder(dt: DType) -> fn(f64) -> f64 {
    match dt {
        DType::F32 => |v| v as f32 as f64,
        _ => |v| v,
    }
}

/// The logical row-major elements of a (possibly strided) view, as f64.
fn logical(v: &TensorView) -> Vec<f64> {
    v.to_owned().to_vec_f64()
}

/// Reference forward and backward: output values, and the input gradient (`0 +` the
/// gradients routed to each window's arg-max, added in output order).
fn reference(x: &[f64], xs: [usize; 4], k: (usize, usize), p: Conv2dParams, g: &[f64], round: fn(f64) -> f64) -> (Vec<f64>, Vec<f64>) {
    let (oh, ow) = p.out_hw((xs[2], xs[3]), k).unwrap();
    let mut out = Vec::new();
    let mut dx = vec![0.0; x.len()];
    let inside = |o: usize, t: usize, s: usize, pd: usize, d: usize, len: usize| {
        let i = (o * s + t * d) as isize - pd as isize;
        (i >= 0 && (i as usize) < len).then_some(i as usize)
    };
    for plane in 0..xs[0] * xs[1] {
        let base = plane * xs[2] * xs[3];
        for y in 0..oh {
            for xx in 0..ow {
                let mut best = f64::NEG_INFINITY;
                let mut arg = None;
                for i in 0..k.0 {
                    for j in 0..k.1 {
                        let (Some(iy), Some(ix)) = (
                            inside(y, i, p.stride.0, p.padding.0, p.dilation.0, xs[2]),
                            inside(xx, j, p.stride.1, p.padding.1, p.dilation.1, xs[3]),
                        ) else {
                            continue;
                        };
                        let id = base + iy * xs[3] + ix;
                        if arg.is_none() || x[id] > best || x[id].is_nan() {
                            best = x[id];
                            arg = Some(id);
                        }
                    }
                }
                let o = out.len();
                out.push(best);
                if let Some(a) = arg {
                    dx[a] = round(dx[a] + g[o]);
                }
            }
        }
    }
    (out, dx)
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Fails at the first element whose bits differ, naming it.
fn assert_same_bits(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{what}: element {i} is {:?}, expected {:?}", got[i], want[i]);
    }
}

fn make(dt: DType, vals: Vec<f64>, shape: &[usize]) -> Tensor {
    match dt {
        DType::F32 => Tensor::from_vec(vals.into_iter().map(|v| v as f32).collect::<Vec<_>>(), shape).unwrap(),
        _ => Tensor::from_vec(vals, shape).unwrap(),
    }
}

/// How the input is laid out in memory.
#[derive(Clone, Copy, Debug)]
enum Layout {
    Contiguous,
    /// Stored (C, N, H, W), viewed as (N, C, H, W).
    SwapNC,
    /// Every other row of a taller, wider buffer (row stride > W, offset columns).
    EveryOtherRow,
    /// Rows reversed (negative row stride).
    ReversedRows,
    /// Stored (N, C, W, H) and transposed: W has a non-unit stride (generic path).
    TransposedHW,
}

const LAYOUTS: [Layout; 5] = [Layout::Contiguous, Layout::SwapNC, Layout::EveryOtherRow, Layout::ReversedRows, Layout::TransposedHW];

/// A view of logical shape `xs` with `layout`, filled from `rng`; returns the storage.
fn input(rng: &mut Rng, dt: DType, xs: [usize; 4], layout: Layout) -> Tensor {
    let [n, c, h, w] = xs;
    let shape: Vec<usize> = match layout {
        Layout::Contiguous | Layout::ReversedRows => vec![n, c, h, w],
        Layout::SwapNC => vec![c, n, h, w],
        Layout::EveryOtherRow => vec![n, c, 2 * h + 1, w + 3],
        Layout::TransposedHW => vec![n, c, w, h],
    };
    let len = shape.iter().product();
    make(dt, (0..len).map(|_| rng.nasty()).collect(), &shape)
}

fn view_of(store: &Tensor, xs: [usize; 4], layout: Layout) -> TensorView<'_> {
    let [n, c, h, w] = xs.map(|v| v as isize);
    let v = store.view();
    match layout {
        Layout::Contiguous => v,
        Layout::SwapNC => v.permuted(&[1, 0, 2, 3]).unwrap(),
        Layout::EveryOtherRow => v.slice(&[(0, n, 1), (0, c, 1), (1, 2 * h + 1, 2), (2, w + 2, 1)]).unwrap(),
        Layout::ReversedRows => v.slice(&[(0, n, 1), (0, c, 1), (h - 1, -1, -1), (0, w, 1)]).unwrap(),
        Layout::TransposedHW => v.permuted(&[0, 1, 3, 2]).unwrap(),
    }
}

/// (N, C, H, W, kernel, stride, padding, dilation)
type Case = ([usize; 4], (usize, usize), (usize, usize), (usize, usize), (usize, usize));
const CASES: &[Case] = &[
    // The convnet's pools (2×2, stride 2), even and odd sizes.
    ([2, 3, 28, 28], (2, 2), (2, 2), (0, 0), (1, 1)),
    ([3, 2, 7, 9], (2, 2), (2, 2), (0, 0), (1, 1)),
    ([2, 2, 2, 2], (2, 2), (2, 2), (0, 0), (1, 1)),
    ([2, 2, 3, 2], (2, 2), (2, 2), (0, 0), (1, 1)),
    // Large enough to split over threads.
    ([8, 32, 28, 28], (2, 2), (2, 2), (0, 0), (1, 1)),
    ([8, 16, 15, 13], (3, 3), (2, 2), (0, 0), (1, 1)),
    // Other dense windows: overlapping, tiling, gapped, 1×1, single column.
    ([1, 2, 9, 11], (3, 3), (2, 2), (0, 0), (1, 1)),
    ([2, 2, 8, 7], (3, 3), (3, 3), (0, 0), (1, 1)),
    ([2, 2, 9, 10], (2, 3), (3, 4), (0, 0), (1, 1)),
    ([2, 2, 6, 6], (2, 2), (1, 1), (0, 0), (1, 1)),
    ([2, 2, 5, 4], (1, 1), (1, 1), (0, 0), (1, 1)),
    ([1, 1, 5, 1], (2, 1), (1, 1), (0, 0), (1, 1)),
    ([2, 1, 4, 6], (1, 3), (1, 2), (0, 0), (1, 1)),
    // Generic path: padding, dilation.
    ([2, 2, 7, 7], (3, 3), (2, 2), (1, 1), (1, 1)),
    ([2, 2, 6, 5], (2, 2), (2, 2), (1, 0), (1, 1)),
    ([2, 2, 9, 8], (2, 2), (1, 2), (0, 0), (2, 2)),
];

#[test]
fn max_pool_matches_reference_bitwise() {
    let mut rng = Rng(2024);
    for &(xs, k, s, pd, d) in CASES {
        let p = Conv2dParams { stride: s, padding: pd, dilation: d };
        let (oh, ow) = p.out_hw((xs[2], xs[3]), k).unwrap();
        let os = [xs[0], xs[1], oh, ow];
        for dt in [DType::F32, DType::F64] {
            for layout in LAYOUTS {
                let store = input(&mut rng, dt, xs, layout);
                let x = view_of(&store, xs, layout);
                let gv: Vec<f64> = (0..os.iter().product()).map(|_| rng.grad()).collect();
                let gv: Vec<f64> = gv.into_iter().map(rounder(dt)).collect();
                let (want, dx_want) = reference(&logical(&x), xs, k, p, &gv, rounder(dt));
                let what = format!("{xs:?} k{k:?} s{s:?} p{pd:?} d{d:?} {dt:?} {layout:?}");

                let mut out = Tensor::full(dt, &os, f64::NAN).unwrap();
                max_pool2d(&x, k, p, &mut out).unwrap();
                assert_same_bits(&out.to_vec_f64(), &want, &format!("forward {what}"));

                // The gradient contiguous, then transposed in (oH, oW).
                let g = make(dt, gv.clone(), &os);
                let gstore = make(dt, transpose_hw(&gv, os), &[os[0], os[1], os[3], os[2]]);
                for (gname, gview) in [("contiguous", g.view()), ("transposed", gstore.view().permuted(&[0, 1, 3, 2]).unwrap())] {
                    let mut dx = Tensor::full(dt, &xs, f64::NAN).unwrap();
                    max_pool2d_backward(&x, &gview, k, p, &mut dx).unwrap();
                    assert_same_bits(&dx.to_vec_f64(), &dx_want, &format!("backward {what}, grad {gname}"));
                }
            }
        }
    }
}

/// `(N, C, A, B)` row-major → `(N, C, B, A)` row-major.
fn transpose_hw(v: &[f64], s: [usize; 4]) -> Vec<f64> {
    let mut t = vec![0.0; v.len()];
    for pl in 0..s[0] * s[1] {
        for a in 0..s[2] {
            for b in 0..s[3] {
                t[pl * s[2] * s[3] + b * s[2] + a] = v[pl * s[2] * s[3] + a * s[3] + b];
            }
        }
    }
    t
}

/// Hand-checked windows of the 2×2 / stride 2 path: first maximum on ties, NaN wins (the
/// last NaN), −∞ windows, the sign of a tied zero, and `0 + g` routing.
#[test]
fn max_pool_2x2_hand_checked() {
    let nan = f64::NAN;
    let ninf = f64::NEG_INFINITY;
    // One 2×6 plane = three 2×2 windows, plus an odd extra column and row that no window sees.
    #[rustfmt::skip]
    let x = vec![
        1.0, 1.0,   -0.0, 0.0,   ninf, ninf,   9.0,
        3.0, 3.0,    0.0, -0.0,  ninf, ninf,   9.0,
        9.0, 9.0,    9.0, 9.0,   9.0,  9.0,    9.0,
    ];
    let p = Conv2dParams { stride: (2, 2), padding: (0, 0), dilation: (1, 1) };
    for dt in [DType::F32, DType::F64] {
        let xt = make(dt, x.clone(), &[1, 1, 3, 7]);
        let mut out = Tensor::zeros(dt, &[1, 1, 1, 3]);
        max_pool2d(&xt.view(), (2, 2), p, &mut out).unwrap();
        let o = out.to_vec_f64();
        assert_eq!(o[0], 3.0);
        assert!(o[1] == 0.0 && o[1].is_sign_negative(), "first of the tied zeros: {}", o[1]);
        assert_eq!(o[2], ninf);
        let g = make(dt, vec![-0.0, 5.0, 7.0], &[1, 1, 1, 3]);
        let mut dx = Tensor::full(dt, &[1, 1, 3, 7], nan).unwrap();
        max_pool2d_backward(&xt.view(), &g.view(), (2, 2), p, &mut dx).unwrap();
        let d = dx.to_vec_f64();
        #[rustfmt::skip]
        let want = vec![
            0.0, 0.0,  5.0, 0.0,  7.0, 0.0,  0.0,
            0.0, 0.0,  0.0, 0.0,  0.0, 0.0,  0.0,
            0.0, 0.0,  0.0, 0.0,  0.0, 0.0,  0.0,
        ];
        assert_eq!(bits(&d), bits(&want), "dx {d:?}");

        // NaNs: the last NaN of the window takes the gradient, and the output is NaN.
        let xn = make(dt, vec![nan, 1.0, 2.0, nan], &[1, 1, 2, 2]);
        let mut out = Tensor::zeros(dt, &[1, 1, 1, 1]);
        max_pool2d(&xn.view(), (2, 2), p, &mut out).unwrap();
        assert!(out.to_vec_f64()[0].is_nan());
        let g = make(dt, vec![2.0], &[1, 1, 1, 1]);
        let mut dx = Tensor::zeros(dt, &[1, 1, 2, 2]);
        max_pool2d_backward(&xn.view(), &g.view(), (2, 2), p, &mut dx).unwrap();
        assert_eq!(dx.to_vec_f64(), vec![0.0, 0.0, 0.0, 2.0]);
    }
}
