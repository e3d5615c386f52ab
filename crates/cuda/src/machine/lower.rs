//! Lowering of one compiled instruction to the GPU: which [`CudaDevice`](crate::CudaDevice)
//! launch method runs it ([`Kind`]) and which extra device buffers it needs ([`Aux`]: index
//! tables uploaded once, scratch space allocated once). Decided when the machine is created,
//! from dtypes and shapes only, so it is pure host code and tested without a GPU. It must not
//! touch a device.
//!
//! Ops with no kernel for their dtype (e.g. an int32 matmul, a bool gather), custom ops and
//! dropout masks lower to [`Kind::Host`]: the machine downloads the operands, runs the CPU
//! kernel and uploads the result (correct, but it costs transfers every run).

use gorgon_autodiff::compile::BufSpec;
use gorgon_autodiff::op::{Op, PoolGeom};
use gorgon_autodiff::{Error, Result};
use gorgon_core::kernels::conv::Conv2dParams;
use gorgon_core::kernels::elementwise::{BinaryOp, UnaryOp};
use gorgon_core::kernels::reduce::ReduceOp;
use gorgon_core::{DType, Tensor};

/// Largest one-hot lookup table (`n × n` elements, i.e. `n ≤ 2048`) kept on the device; a
/// wider one-hot runs on the host.
pub(crate) const ONE_HOT_TABLE_MAX: usize = 1 << 22;

/// A strided view of a contiguous buffer: element `idx` is `x[offset + Σ idx[d]·strides[d]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StridedView {
    pub shape: Vec<usize>,
    pub strides: Vec<isize>,
    pub offset: usize,
}

/// How an instruction runs on the device.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Unary(UnaryOp),
    Binary(BinaryOp),
    Where,
    Cast,
    Reduce { op: ReduceOp, axes: Vec<usize> },
    ArgReduce { is_max: bool, axis: Option<usize> },
    MatMul { ta: bool, tb: bool },
    /// Reshape: a device-to-device copy into the output's buffer.
    Copy,
    Permute(Vec<usize>),
    /// Slice: a strided copy.
    Strided(StridedView),
    BroadcastTo,
    /// aux: `[positions]` (int64, the gradient's shape): flat output index of each element;
    /// the output is zeroed and the gradient scattered there.
    SliceGrad,
    /// Concatenation where everything before the axis has size 1: the inputs are copied
    /// back to back into the output.
    ConcatLeading,
    /// aux: `[staging (N,), index (int64, output shape)]`: inputs copied back to back into
    /// `staging`, then gathered into the output.
    ConcatGather,
    Take(usize),
    ScatterAdd(usize),
    /// aux: `[table (n, n), zero (idx dtype), n (int64), negative? (idx shape, idx dtype),
    /// idx as int64, checked idx (int64)]` plus `[int32 output]` for a bool output: a
    /// negative index is replaced by `n` so the gather flags it as out of range, like the CPU.
    OneHot { bool_out: bool },
    Softmax { axis: usize, log: bool },
    SoftmaxGrad { axis: usize, log: bool },
    Conv2d(Conv2dParams),
    Conv2dGradInput(Conv2dParams),
    Conv2dGradWeight(Conv2dParams),
    MaxPool(PoolGeom),
    MaxPoolGrad(PoolGeom),
    AvgPool(PoolGeom),
    AvgPoolGrad(PoolGeom),
    /// A fused elementwise tree: one generated kernel (see [`crate::fused`]), compiled when
    /// the machine is created. Operands are full-size or hold one element (broadcast).
    Fused(std::sync::Arc<gorgon_autodiff::fused::FusedExpr>),
    /// Download the operands (when `inputs`), run the CPU kernel, upload the result.
    Host { inputs: bool },
}

/// An extra device buffer of one instruction.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Aux {
    /// Uploaded once, when the machine is created.
    Table(Tensor),
    /// Allocated once; written by the instruction before it is read.
    Scratch(DType, Vec<usize>),
}

/// One instruction, lowered.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Lowered {
    pub kind: Kind,
    pub aux: Vec<Aux>,
}

impl Lowered {
    fn plain(kind: Kind) -> Lowered {
        Lowered { kind, aux: Vec::new() }
    }
}

/// Lowers `op` with operand `(dtype, shape)`s `ins` and output buffer `out`.
pub(crate) fn lower(op: &Op, ins: &[(DType, Vec<usize>)], out: &BufSpec) -> Result<Lowered> {
    let want = match op {
        Op::Where => 3,
        Op::Binary(_) | Op::MatMul { .. } | Op::Take(_) | Op::ScatterAdd { .. } | Op::SoftmaxGrad { .. } => 2,
        Op::Conv2d(_) | Op::Conv2dGradInput { .. } | Op::Conv2dGradWeight { .. } | Op::MaxPool2dGrad(_) => 2,
        Op::Concat(_) => ins.len().max(1),
        Op::Custom(_) | Op::CustomGrad { .. } | Op::Fused(_) | Op::FusedReduce { .. } => ins.len(),
        _ => 1,
    };
    if ins.len() != want {
        return Err(Error::Internal(format!("cuda: {} has {} operands, expected {want}", op.name(), ins.len())));
    }
    let dt = ins.first().map_or(out.dtype, |i| i.0);
    let host = Lowered::plain(Kind::Host { inputs: !matches!(op, Op::DropoutMask { .. }) });
    let float = |k: Kind| if dt.is_float() { Lowered::plain(k) } else { host.clone() };
    let not_bool = |k: Kind| if dt == DType::Bool { host.clone() } else { Lowered::plain(k) };
    Ok(match op {
        Op::Unary(u) => {
            let int_ok = matches!(u, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Square | UnaryOp::Cube);
            if dt.is_float() || (dt.is_int() && int_ok) { Lowered::plain(Kind::Unary(*u)) } else { host }
        }
        Op::Binary(b) => not_bool(Kind::Binary(*b)),
        Op::Where => Lowered::plain(Kind::Where),
        Op::Cast(_) => Lowered::plain(Kind::Cast),
        Op::Reduce { op, axes, .. } => not_bool(Kind::Reduce { op: *op, axes: axes.clone() }),
        Op::ArgReduce { is_max, axis, .. } => not_bool(Kind::ArgReduce { is_max: *is_max, axis: *axis }),
        Op::MatMul { ta, tb } => float(Kind::MatMul { ta: *ta, tb: *tb }),
        Op::Reshape(_) => Lowered::plain(Kind::Copy),
        Op::Transpose(axes) => Lowered::plain(Kind::Permute(axes.clone())),
        Op::Slice(spec) => Lowered::plain(Kind::Strided(slice_view(&ins[0].1, spec)?)),
        Op::SliceGrad { spec, input_shape } => {
            if dt == DType::Bool {
                return Ok(host);
            }
            let pos = slice_positions(input_shape, spec)?;
            let table = Tensor::from_vec(pos, &ins[0].1).map_err(|e| Error::Internal(format!("cuda: slice_grad positions: {e}")))?;
            Lowered { kind: Kind::SliceGrad, aux: vec![Aux::Table(table)] }
        }
        Op::BroadcastTo(_) => Lowered::plain(Kind::BroadcastTo),
        Op::Concat(axis) => {
            let outer: usize = out.shape[..*axis].iter().product();
            if outer <= 1 {
                Lowered::plain(Kind::ConcatLeading)
            } else if dt == DType::Bool {
                host
            } else {
                let shapes: Vec<&[usize]> = ins.iter().map(|i| i.1.as_slice()).collect();
                let index = Tensor::from_vec(concat_index(&shapes, *axis), &out.shape)
                    .map_err(|e| Error::Internal(format!("cuda: concat index: {e}")))?;
                let n: usize = out.shape.iter().product();
                Lowered { kind: Kind::ConcatGather, aux: vec![Aux::Scratch(dt, vec![n]), Aux::Table(index)] }
            }
        }
        Op::Take(axis) => not_bool(Kind::Take(*axis)),
        Op::ScatterAdd { axis, .. } => not_bool(Kind::ScatterAdd(*axis)),
        Op::OneHot { n, dtype } => {
            let fits = matches!(n.checked_mul(*n), Some(nn) if nn <= ONE_HOT_TABLE_MAX);
            if !fits || !dt.is_int() {
                return Ok(host);
            }
            let bool_out = *dtype == DType::Bool;
            let tdt = if bool_out { DType::I32 } else { *dtype };
            let ishape = ins[0].1.clone();
            let mut aux = vec![
                Aux::Table(eye(*n, tdt)?),
                Aux::Table(Tensor::scalar(dt, 0.0)),
                Aux::Table(Tensor::scalar(DType::I64, *n as f64)),
                Aux::Scratch(dt, ishape.clone()),
                Aux::Scratch(DType::I64, ishape.clone()),
                Aux::Scratch(DType::I64, ishape),
            ];
            if bool_out {
                aux.push(Aux::Scratch(DType::I32, out.shape.clone()));
            }
            Lowered { kind: Kind::OneHot { bool_out }, aux }
        }
        Op::Softmax { axis, log } => float(Kind::Softmax { axis: *axis, log: *log }),
        Op::SoftmaxGrad { axis, log } => float(Kind::SoftmaxGrad { axis: *axis, log: *log }),
        Op::Conv2d(p) => float(Kind::Conv2d(*p)),
        // Conv2dGradInput's first operand is the output gradient; all operands share a dtype.
        Op::Conv2dGradInput { p, .. } => float(Kind::Conv2dGradInput(*p)),
        Op::Conv2dGradWeight { p, .. } => float(Kind::Conv2dGradWeight(*p)),
        Op::MaxPool2d(g) => float(Kind::MaxPool(*g)),
        Op::MaxPool2dGrad(g) => float(Kind::MaxPoolGrad(*g)),
        Op::AvgPool2d(g) => float(Kind::AvgPool(*g)),
        Op::AvgPool2dGrad { g, .. } => float(Kind::AvgPoolGrad(*g)),
        // Fused trees of float ops become one generated kernel; operands must be full-size
        // or single elements (what the compiler's fusion forms), anything else runs on the host.
        Op::Fused(e) => {
            let n: usize = out.shape.iter().product();
            let fits = |(d, s): &(DType, Vec<usize>)| {
                let len: usize = s.iter().product();
                *d == out.dtype && (len == 1 || len == n)
            };
            let ok = out.dtype.is_float() && ins.iter().all(fits);
            if ok { Lowered::plain(Kind::Fused(e.clone())) } else { host }
        }
        // Dropout masks are drawn on the host (the CPU generator, so a seed gives the same
        // masks on both machines); custom ops are host callbacks by nature.
        // The CUDA machine compiles without reduction fusion; were one given, the host runs it.
        Op::DropoutMask { .. } | Op::Custom(_) | Op::CustomGrad { .. } | Op::FusedReduce { .. } => host,
    })
}

/// The strided view `x[spec]` of a contiguous `shape`, with the semantics of
/// `gorgon_core::TensorView::slice` (normalized Python `(start, stop, step)` per axis).
pub(crate) fn slice_view(shape: &[usize], spec: &[(isize, isize, isize)]) -> Result<StridedView> {
    if spec.len() != shape.len() || spec.iter().any(|s| s.2 == 0) {
        return Err(Error::Shape(format!("slice: bad spec {spec:?} for shape {shape:?}")));
    }
    let cs = crate::layout::contiguous_strides(shape);
    let (mut out_shape, mut strides, mut offset) = (Vec::new(), Vec::new(), 0isize);
    for (ax, &(start, stop, step)) in spec.iter().enumerate() {
        // Same ranges as the CPU view: [start, max(stop, start)) forwards, or the elements
        // start, start+step, ... > stop backwards.
        let (lo, hi) = if step > 0 { (start, stop.max(start)) } else { ((stop + 1).min(start + 1), start + 1) };
        let n = ((hi - lo).max(0) as usize).div_ceil(step.unsigned_abs());
        let first = if step > 0 { lo } else { hi - 1 };
        if n > 0 && (first < 0 || first as usize >= shape[ax]) {
            return Err(Error::Shape(format!("slice: start {first} out of range for axis {ax} of size {}", shape[ax])));
        }
        out_shape.push(n);
        strides.push(step * cs[ax]);
        offset += first.max(0) * cs[ax];
    }
    if out_shape.contains(&0) {
        offset = 0;
    }
    Ok(StridedView { shape: out_shape, strides, offset: offset as usize })
}

/// Flat index into a contiguous `input_shape` of every element of `x[spec]`, in row-major
/// order of the slice (where `slice_grad` puts each gradient element).
pub(crate) fn slice_positions(input_shape: &[usize], spec: &[(isize, isize, isize)]) -> Result<Vec<i64>> {
    let v = slice_view(input_shape, spec)?;
    let n: usize = v.shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; v.shape.len()];
    for _ in 0..n {
        let p: isize = v.offset as isize + idx.iter().zip(&v.strides).map(|(&i, &s)| i as isize * s).sum::<isize>();
        out.push(p as i64);
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < v.shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(out)
}

/// For a concatenation along `axis` of inputs of `shapes` laid back to back in one flat
/// buffer, the flat source index of every output element (row-major output order).
pub(crate) fn concat_index(shapes: &[&[usize]], axis: usize) -> Vec<i64> {
    let Some(first) = shapes.first() else { return Vec::new() };
    let outer: usize = first[..axis].iter().product();
    let inner: usize = first[axis + 1..].iter().product();
    let mut bases = Vec::with_capacity(shapes.len());
    let mut base = 0usize;
    for s in shapes {
        bases.push(base);
        base += s.iter().product::<usize>();
    }
    let mut out = Vec::with_capacity(base);
    for o in 0..outer {
        for (s, &b) in shapes.iter().zip(&bases) {
            let len = s[axis];
            for a in 0..len {
                let start = b + (o * len + a) * inner;
                out.extend((start..start + inner).map(|v| v as i64));
            }
        }
    }
    out
}

/// The `n × n` identity in `dt` (the one-hot lookup table).
pub(crate) fn eye(n: usize, dt: DType) -> Result<Tensor> {
    fn build<T: gorgon_core::Element>(n: usize) -> Vec<T> {
        let mut v = vec![T::zero(); n * n];
        for i in 0..n {
            v[i * n + i] = T::one();
        }
        v
    }
    let shape = [n, n];
    let t = match dt {
        DType::F32 => Tensor::from_vec(build::<f32>(n), &shape),
        DType::F64 => Tensor::from_vec(build::<f64>(n), &shape),
        DType::I32 => Tensor::from_vec(build::<i32>(n), &shape),
        DType::I64 => Tensor::from_vec(build::<i64>(n), &shape),
        DType::Bool => Tensor::from_vec(build::<bool>(n), &shape),
    };
    t.map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gorgon_core::kernels::index;

    fn arange(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec((0..n as i64).collect::<Vec<i64>>(), shape).unwrap()
    }

    type SliceSpec = Vec<(isize, isize, isize)>;

    fn specs() -> Vec<(Vec<usize>, SliceSpec)> {
        vec![
            (vec![5], vec![(1, 4, 1)]),
            (vec![5], vec![(0, 5, 2)]),
            (vec![5], vec![(4, -1, -1)]),
            (vec![5], vec![(4, 0, -2)]),
            (vec![5], vec![(3, 3, 1)]),
            (vec![5], vec![(2, 4, -1)]),
            (vec![4, 6], vec![(1, 3, 1), (5, 0, -2)]),
            (vec![3, 4, 5], vec![(2, -1, -1), (0, 4, 3), (1, 5, 2)]),
            (vec![2, 3], vec![(1, 2, 1), (0, 3, 1)]),
            (vec![0, 3], vec![(0, 0, 1), (0, 3, 1)]),
        ]
    }

    #[test]
    fn slice_views_match_the_cpu_slice() {
        for (shape, spec) in specs() {
            let x = arange(&shape);
            let want = x.view().slice(&spec).unwrap().to_owned();
            let v = slice_view(&shape, &spec).unwrap();
            assert_eq!(v.shape, want.shape(), "{shape:?} {spec:?}");
            let got = slice_positions(&shape, &spec).unwrap();
            assert_eq!(got.iter().map(|&p| p as f64).collect::<Vec<_>>(), want.to_vec_f64(), "{shape:?} {spec:?}");
        }
    }

    #[test]
    fn slice_grad_by_scatter_matches_the_cpu_kernel() {
        for (shape, spec) in specs() {
            let gshape = slice_view(&shape, &spec).unwrap().shape;
            let gn: usize = gshape.iter().product();
            let grad = Tensor::from_vec_f64((0..gn).map(|i| i as f64 + 0.5).collect(), &gshape).unwrap();
            let op = Op::SliceGrad { spec: spec.clone(), input_shape: shape.clone() };
            let mut want = Tensor::zeros(DType::F64, &shape);
            op.forward(&[grad.view()], &mut want).unwrap();
            // What the device does: zero the output, scatter the gradient to `positions`.
            let mut got = vec![0.0; shape.iter().product()];
            let out = BufSpec { dtype: DType::F64, shape: shape.clone() };
            let low = lower(&op, &[(DType::F64, gshape.clone())], &out).unwrap();
            let Aux::Table(pos) = &low.aux[0] else { panic!("positions table") };
            assert_eq!(pos.shape(), gshape.as_slice());
            for (p, g) in pos.to_vec_f64().iter().zip(grad.to_vec_f64()) {
                got[*p as usize] += g;
            }
            assert_eq!(got, want.to_vec_f64(), "{shape:?} {spec:?}");
        }
    }

    #[test]
    fn concat_by_gather_matches_the_cpu_kernel() {
        for (shapes, axis) in [
            (vec![vec![2, 3], vec![2, 1], vec![2, 4]], 1),
            (vec![vec![2, 3, 2], vec![2, 1, 2]], 1),
            (vec![vec![3, 2, 2], vec![3, 2, 1]], 2),
            (vec![vec![2, 2], vec![1, 2]], 0),
        ] {
            let mut base = 0.0;
            let xs: Vec<Tensor> = shapes
                .iter()
                .map(|s| {
                    let n: usize = s.iter().product();
                    let t = Tensor::from_vec_f64((0..n).map(|i| base + i as f64).collect(), s).unwrap();
                    base += 100.0;
                    t
                })
                .collect();
            let mut oshape = shapes[0].clone();
            oshape[axis] = shapes.iter().map(|s| s[axis]).sum();
            let mut want = Tensor::zeros(DType::F64, &oshape);
            index::concat(&xs.iter().map(|t| t.view()).collect::<Vec<_>>(), axis, &mut want).unwrap();
            let staging: Vec<f64> = xs.iter().flat_map(|t| t.to_vec_f64()).collect();
            let refs: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
            let got: Vec<f64> = concat_index(&refs, axis).iter().map(|&i| staging[i as usize]).collect();
            assert_eq!(got, want.to_vec_f64(), "{shapes:?} axis {axis}");
            let ins: Vec<(DType, Vec<usize>)> = shapes.iter().map(|s| (DType::F64, s.clone())).collect();
            let low = lower(&Op::Concat(axis), &ins, &BufSpec { dtype: DType::F64, shape: oshape.clone() }).unwrap();
            let leading = oshape[..axis].iter().product::<usize>() <= 1;
            assert_eq!(matches!(low.kind, Kind::ConcatLeading), leading);
            if leading {
                assert_eq!(staging, want.to_vec_f64(), "back to back is the concatenation");
            }
        }
    }

    #[test]
    fn one_hot_by_table_gather_matches_the_cpu_kernel_and_rejects_negatives() {
        let n = 4;
        let out = BufSpec { dtype: DType::F32, shape: vec![5, n] };
        let low = lower(&Op::OneHot { n, dtype: DType::F32 }, &[(DType::I32, vec![5])], &out).unwrap();
        assert_eq!(low.kind, Kind::OneHot { bool_out: false });
        let Aux::Table(table) = &low.aux[0] else { panic!("table") };
        let table = table.to_vec_f64();
        // The device: idx' = idx < 0 ? n : idx, then take(table, idx', 0) (n is out of range).
        let emulate = |idx: &[i64]| -> Option<Vec<f64>> {
            let mut v = Vec::new();
            for &i in idx {
                let k = if i < 0 { n as i64 } else { i };
                if k >= n as i64 {
                    return None;
                }
                v.extend_from_slice(&table[k as usize * n..(k as usize + 1) * n]);
            }
            Some(v)
        };
        let idx = [3i32, 0, 1, 1, 2];
        let mut want = Tensor::zeros(DType::F32, &[5, n]);
        index::one_hot(&Tensor::from_vec(idx.to_vec(), &[5]).unwrap().view(), n, &mut want).unwrap();
        assert_eq!(emulate(&idx.map(i64::from)).unwrap(), want.to_vec_f64());
        for bad in [[-1i32, 0, 0, 0, 0], [0, 0, 4, 0, 0]] {
            let cpu = index::one_hot(&Tensor::from_vec(bad.to_vec(), &[5]).unwrap().view(), n, &mut want);
            assert!(cpu.is_err() && emulate(&bad.map(i64::from)).is_none(), "{bad:?}");
        }
        // A bool one-hot gathers int32 and casts; a huge one runs on the host.
        let b = lower(&Op::OneHot { n, dtype: DType::Bool }, &[(DType::I64, vec![5])], &BufSpec { dtype: DType::Bool, shape: vec![5, n] }).unwrap();
        assert_eq!((b.kind, b.aux.len()), (Kind::OneHot { bool_out: true }, 7));
        let big = lower(&Op::OneHot { n: 5000, dtype: DType::F32 }, &[(DType::I64, vec![5])], &BufSpec { dtype: DType::F32, shape: vec![5, 5000] }).unwrap();
        assert_eq!(big.kind, Kind::Host { inputs: true });
    }

    #[test]
    fn dtype_gaps_fall_back_to_the_host() {
        let spec = |s: &[usize]| BufSpec { dtype: DType::I32, shape: s.to_vec() };
        let mm = lower(&Op::MatMul { ta: false, tb: false }, &[(DType::I32, vec![2, 2]), (DType::I32, vec![2, 2])], &spec(&[2, 2])).unwrap();
        assert_eq!(mm.kind, Kind::Host { inputs: true });
        let relu = lower(&Op::Unary(UnaryOp::Relu), &[(DType::I32, vec![3])], &spec(&[3])).unwrap();
        assert_eq!(relu.kind, Kind::Host { inputs: true });
        let neg = lower(&Op::Unary(UnaryOp::Neg), &[(DType::I32, vec![3])], &spec(&[3])).unwrap();
        assert_eq!(neg.kind, Kind::Unary(UnaryOp::Neg));
        let f = BufSpec { dtype: DType::F32, shape: vec![2, 2] };
        let mmf = lower(&Op::MatMul { ta: true, tb: false }, &[(DType::F32, vec![2, 2]), (DType::F32, vec![2, 2])], &f).unwrap();
        assert_eq!(mmf.kind, Kind::MatMul { ta: true, tb: false });
        let drop = lower(&Op::DropoutMask { p: 0.5, stream: 1 }, &[(DType::F32, vec![2, 2])], &f).unwrap();
        assert_eq!(drop.kind, Kind::Host { inputs: false });
        let bad = lower(&Op::Binary(BinaryOp::Add), &[(DType::F32, vec![2, 2])], &f);
        assert!(matches!(bad, Err(Error::Internal(_))));
    }
}
