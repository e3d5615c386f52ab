//! Reductions, matmul, softmax and gather/scatter kernels against naive f64 references,
//! over contiguous, permuted, reversed (negative-stride) and broadcast views, 0-size and 0-d
//! shapes, and inputs large enough to take the threaded paths.

use gorgon_core::error::CoreError;
use gorgon_core::kernels::index::{concat, one_hot, scatter_add, take};
use gorgon_core::kernels::matmul::matmul;
use gorgon_core::kernels::reduce::{arg_reduce, reduce, ReduceOp};
use gorgon_core::kernels::softmax::{softmax, softmax_backward};
use gorgon_core::{DType, Tensor, TensorView};

// ----------------------------------------------------------------------------------------
// helpers

/// Deterministic xorshift generator.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// uniform in [-1, 1)
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

fn rand_tensor(dt: DType, shape: &[usize], seed: u64) -> Tensor {
    let mut r = Rng::new(seed);
    let n = numel(shape);
    match dt {
        DType::F32 => {
            Tensor::from_vec((0..n).map(|_| r.f() as f32).collect::<Vec<_>>(), shape).unwrap()
        }
        DType::F64 => Tensor::from_vec((0..n).map(|_| r.f()).collect::<Vec<_>>(), shape).unwrap(),
        DType::I32 => Tensor::from_vec(
            (0..n).map(|_| r.int(-3, 3) as i32).collect::<Vec<_>>(),
            shape,
        )
        .unwrap(),
        DType::I64 => {
            Tensor::from_vec((0..n).map(|_| r.int(-3, 3)).collect::<Vec<_>>(), shape).unwrap()
        }
        DType::Bool => {
            Tensor::from_vec((0..n).map(|_| r.next() & 1 == 0).collect::<Vec<_>>(), shape).unwrap()
        }
    }
}

/// Owned storage behind differently laid-out views of the same logical shape.
enum Layout {
    Contiguous,
    /// stored with axes reversed, viewed through a transpose
    Permuted,
    /// stored in a longer axis-0 buffer, viewed through a step −1 slice
    Reversed,
    /// axis 0 of length 1 broadcast (only used when shape[0] is 1 at the source)
    Broadcast,
}

/// Builds storage for `layout` and returns it; `view_of` makes the view of logical `shape`.
fn storage(dt: DType, shape: &[usize], layout: &Layout, seed: u64) -> Tensor {
    match layout {
        Layout::Contiguous => rand_tensor(dt, shape, seed),
        Layout::Permuted => {
            let rev: Vec<usize> = shape.iter().rev().copied().collect();
            rand_tensor(dt, &rev, seed)
        }
        Layout::Reversed => {
            let mut s = shape.to_vec();
            if !s.is_empty() {
                s[0] = 2 * s[0] + 1;
            }
            rand_tensor(dt, &s, seed)
        }
        Layout::Broadcast => {
            let mut s = shape.to_vec();
            if !s.is_empty() {
                s[0] = 1;
            }
            rand_tensor(dt, &s, seed)
        }
    }
}

fn view_of<'a>(t: &'a Tensor, shape: &[usize], layout: &Layout) -> TensorView<'a> {
    match layout {
        Layout::Contiguous => t.view(),
        Layout::Permuted => {
            let nd = shape.len();
            let axes: Vec<usize> = (0..nd).rev().collect();
            t.view().permuted(&axes).unwrap()
        }
        Layout::Reversed => {
            if shape.is_empty() {
                return t.view();
            }
            let ts = t.shape();
            // elements 2*s0-1, 2*s0-3, ..., 1 (step -2) along axis 0
            let mut spec: Vec<(isize, isize, isize)> =
                ts.iter().map(|&d| (0, d as isize, 1)).collect();
            spec[0] = (ts[0] as isize - 2, -1, -2);
            let v = t.view().slice(&spec).unwrap();
            assert_eq!(v.shape(), shape);
            v
        }
        Layout::Broadcast => t.view().broadcast_to(shape).unwrap(),
    }
}

const LAYOUTS: [Layout; 4] = [
    Layout::Contiguous,
    Layout::Permuted,
    Layout::Reversed,
    Layout::Broadcast,
];

/// All subsets of `0..nd`, sorted.
fn subsets(nd: usize) -> Vec<Vec<usize>> {
    (0..1usize << nd)
        .map(|m| (0..nd).filter(|&a| m >> a & 1 == 1).collect())
        .collect()
}

fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * (1.0 + w.abs());
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

/// Row-major multi-index iteration.
fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    let n = numel(shape);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        f(&idx);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

// ----------------------------------------------------------------------------------------
// reductions

fn reduce_ref(op: ReduceOp, dt: DType, data: &[f64], shape: &[usize], axes: &[usize]) -> Vec<f64> {
    let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    let kshape: Vec<usize> = kept.iter().map(|&a| shape[a]).collect();
    let nout = numel(&kshape);
    let mut groups: Vec<Vec<f64>> = vec![vec![]; nout];
    let mut pos = 0;
    for_each_index(shape, |idx| {
        let mut o = 0;
        for &a in &kept {
            o = o * shape[a] + idx[a];
        }
        groups[o].push(data[pos]);
        pos += 1;
    });
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

fn layout_name(l: &Layout) -> &'static str {
    match l {
        Layout::Contiguous => "contiguous",
        Layout::Permuted => "permuted",
        Layout::Reversed => "reversed",
        Layout::Broadcast => "broadcast",
    }
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
    assert!(matches!(
        reduce(ReduceOp::Mean, &xi.view(), &[1], &mut oi),
        Err(CoreError::DType { .. })
    ));
    assert!(matches!(
        reduce(ReduceOp::LogSumExp, &xi.view(), &[1], &mut oi),
        Err(CoreError::DType { .. })
    ));
    let xb = Tensor::zeros(DType::Bool, &[2, 3]);
    let mut ob = Tensor::zeros(DType::Bool, &[2]);
    assert!(matches!(
        reduce(ReduceOp::Sum, &xb.view(), &[1], &mut ob),
        Err(CoreError::DType { .. })
    ));
    let mut of = Tensor::zeros(DType::F32, &[2]);
    assert!(matches!(
        reduce(ReduceOp::Sum, &xi.view(), &[1], &mut of),
        Err(CoreError::DType { .. })
    ));
    let mut bad = Tensor::zeros(DType::I32, &[3]);
    assert!(matches!(
        reduce(ReduceOp::Sum, &xi.view(), &[1], &mut bad),
        Err(CoreError::Shape { .. })
    ));
    assert!(matches!(
        reduce(ReduceOp::Sum, &xi.view(), &[2], &mut oi),
        Err(CoreError::Index { .. })
    ));
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
            let nout = kept.iter().map(|&a| shape[a]).product();
            let mut groups: Vec<Vec<f64>> = vec![vec![]; nout];
            let mut pos = 0;
            for_each_index(shape, |idx| {
                let mut o = 0;
                for &a in &kept {
                    o = o * shape[a] + idx[a];
                }
                groups[o].push(data[pos]);
                pos += 1;
            });
            groups.iter().map(|g| pick(g)).collect()
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

// ----------------------------------------------------------------------------------------
// matmul

fn matmul_ref(
    a: &[f64],
    ash: &[usize],
    b: &[f64],
    bsh: &[usize],
    dt: DType,
) -> (Vec<f64>, Vec<usize>) {
    let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let n = bsh[bsh.len() - 1];
    let abat = &ash[..ash.len() - 2];
    let bbat = &bsh[..bsh.len() - 2];
    let nd = abat.len().max(bbat.len());
    let pad = |s: &[usize]| {
        let mut v = vec![1; nd - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (pa, pb) = (pad(abat), pad(bbat));
    let batch: Vec<usize> = pa
        .iter()
        .zip(&pb)
        .map(|(&x, &y)| if x == 1 { y } else { x })
        .collect();
    let mut out = vec![];
    for_each_index(&batch, |bi| {
        let (mut oa, mut ob) = (0, 0);
        for d in 0..nd {
            oa = oa * pa[d] + if pa[d] == 1 { 0 } else { bi[d] };
            ob = ob * pb[d] + if pb[d] == 1 { 0 } else { bi[d] };
        }
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                let mut si = 0i64;
                for p in 0..k {
                    let x = a[oa * m * k + i * k + p];
                    let y = b[ob * k * n + p * n + j];
                    s += x * y;
                    si = si.wrapping_add((x as i64).wrapping_mul(y as i64));
                }
                out.push(match dt {
                    DType::I32 => si as i32 as f64,
                    DType::I64 => si as f64,
                    _ => s,
                });
            }
        }
    });
    let mut sh = batch;
    sh.extend_from_slice(&[m, n]);
    (out, sh)
}

fn check_matmul(dt: DType, ash: &[usize], bsh: &[usize], la: &Layout, lb: &Layout, seed: u64) {
    let sa = storage(dt, ash, la, seed);
    let sb = storage(dt, bsh, lb, seed + 7);
    let (va, vb) = (view_of(&sa, ash, la), view_of(&sb, bsh, lb));
    let (want, osh) = matmul_ref(
        &va.to_owned().to_vec_f64(),
        ash,
        &vb.to_owned().to_vec_f64(),
        bsh,
        dt,
    );
    let mut out = Tensor::full(dt, &osh, 3.0).unwrap();
    let what = format!(
        "{dt} {ash:?}@{bsh:?} {}x{}",
        layout_name(la),
        layout_name(lb)
    );
    matmul(&va, &vb, &mut out).unwrap_or_else(|e| panic!("{what}: {e}"));
    let k = ash[ash.len() - 1] as f64;
    let tol = match dt {
        DType::F32 => 1e-6 * k.sqrt().max(1.0) * 4.0,
        DType::F64 => 1e-13 * k.max(1.0),
        _ => 0.0,
    };
    close(&out.to_vec_f64(), &want, tol, &what);
}

#[test]
fn matmul_matches_reference() {
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 4], &[4, 5]),
        (&[1, 1], &[1, 1]),
        (&[0, 4], &[4, 5]),
        (&[3, 0], &[0, 5]),
        (&[3, 4], &[4, 0]),
        (&[2, 1, 3, 4], &[5, 4, 2]),
        (&[1, 3, 4], &[6, 4, 2]),
        (&[4, 9, 17], &[17, 13]),
        (&[33, 65], &[65, 31]),
        (&[2, 0, 3, 4], &[4, 2]),
    ];
    let mut seed = 9000;
    for &(ash, bsh) in cases {
        for la in &LAYOUTS {
            for lb in &LAYOUTS {
                for dt in [DType::F32, DType::F64, DType::I32, DType::I64] {
                    seed += 1;
                    check_matmul(dt, ash, bsh, la, lb, seed);
                }
            }
        }
    }
}

#[test]
fn matmul_large_and_batched_threaded() {
    // big single product (row-block / matrixmultiply-threaded path), transposed operand
    check_matmul(
        DType::F32,
        &[300, 200],
        &[200, 500],
        &Layout::Contiguous,
        &Layout::Permuted,
        1,
    );
    check_matmul(
        DType::F64,
        &[257, 129],
        &[129, 263],
        &Layout::Reversed,
        &Layout::Contiguous,
        2,
    );
    // many small matrices (parallel over the batch), broadcast right operand
    check_matmul(
        DType::F32,
        &[64, 16, 24],
        &[24, 16],
        &Layout::Contiguous,
        &Layout::Contiguous,
        3,
    );
    check_matmul(
        DType::F64,
        &[8, 8, 40, 40],
        &[8, 1, 40, 40],
        &Layout::Permuted,
        &Layout::Contiguous,
        4,
    );
    check_matmul(
        DType::I64,
        &[16, 20, 30],
        &[16, 30, 40],
        &Layout::Contiguous,
        &Layout::Contiguous,
        5,
    );
}

#[test]
fn matmul_zero_stride_inside_matrix() {
    // a (3, 4) operand that is one row broadcast: zero row stride
    let row = rand_tensor(DType::F64, &[1, 4], 11);
    let a = row.view().broadcast_to(&[3, 4]).unwrap();
    let b = rand_tensor(DType::F64, &[4, 2], 12);
    let (want, _) = matmul_ref(
        &a.to_owned().to_vec_f64(),
        &[3, 4],
        &b.to_vec_f64(),
        &[4, 2],
        DType::F64,
    );
    let mut out = Tensor::zeros(DType::F64, &[3, 2]);
    matmul(&a, &b.view(), &mut out).unwrap();
    close(&out.to_vec_f64(), &want, 1e-14, "zero-stride");
}

#[test]
fn matmul_errors() {
    let a = Tensor::zeros(DType::F32, &[2, 3]);
    let b = Tensor::zeros(DType::F32, &[4, 5]);
    let mut out = Tensor::zeros(DType::F32, &[2, 5]);
    let err = matmul(&a.view(), &b.view(), &mut out).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, CoreError::Shape { .. }) && msg.contains("(2, 3)") && msg.contains("(4, 5)"),
        "{msg}"
    );
    let b = Tensor::zeros(DType::F32, &[3, 5]);
    let mut bad = Tensor::zeros(DType::F32, &[5, 2]);
    assert!(matches!(
        matmul(&a.view(), &b.view(), &mut bad),
        Err(CoreError::Shape { .. })
    ));
    let mut wrong_dt = Tensor::zeros(DType::F64, &[2, 5]);
    assert!(matches!(
        matmul(&a.view(), &b.view(), &mut wrong_dt),
        Err(CoreError::DType { .. })
    ));
    let b64 = Tensor::zeros(DType::F64, &[3, 5]);
    assert!(matches!(
        matmul(&a.view(), &b64.view(), &mut out),
        Err(CoreError::DType { .. })
    ));
    let v = Tensor::zeros(DType::F32, &[3]);
    let mut o1 = Tensor::zeros(DType::F32, &[2]);
    assert!(matches!(
        matmul(&a.view(), &v.view(), &mut o1),
        Err(CoreError::Shape { .. })
    ));
    let a3 = Tensor::zeros(DType::F32, &[2, 2, 3]);
    let b3 = Tensor::zeros(DType::F32, &[3, 3, 5]);
    let mut o3 = Tensor::zeros(DType::F32, &[3, 2, 5]);
    assert!(matches!(
        matmul(&a3.view(), &b3.view(), &mut o3),
        Err(CoreError::Shape { .. })
    ));
    let ab = Tensor::zeros(DType::Bool, &[2, 3]);
    let bb = Tensor::zeros(DType::Bool, &[3, 5]);
    let mut ob = Tensor::zeros(DType::Bool, &[2, 5]);
    assert!(matches!(
        matmul(&ab.view(), &bb.view(), &mut ob),
        Err(CoreError::DType { .. })
    ));
}

// ----------------------------------------------------------------------------------------
// softmax

fn softmax_ref(data: &[f64], shape: &[usize], axis: usize, log: bool) -> Vec<f64> {
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = vec![0.0; data.len()];
    for o in 0..outer {
        for c in 0..inner {
            let at = |i: usize| o * n * inner + i * inner + c;
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
        }
    }
    out
}

fn softmax_bwd_ref(y: &[f64], g: &[f64], shape: &[usize], axis: usize, log: bool) -> Vec<f64> {
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = vec![0.0; y.len()];
    for o in 0..outer {
        for c in 0..inner {
            let at = |i: usize| o * n * inner + i * inner + c;
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
        }
    }
    out
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

// ----------------------------------------------------------------------------------------
// take / scatter_add / concat / one_hot

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
                        let mut r = Rng::new(seed);
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
