//! The VM's small-operand fast path gives bit-identical results to the core kernels for every
//! op it takes, on NaN, ±0, ±inf, subnormal and ordinary values, float32 and float64, with
//! each operand full-size or a broadcast single element; and a machine run takes it.
use gorgon_autodiff::attrs::Attrs;
use gorgon_autodiff::graph::Value;
use gorgon_autodiff::op::Op;
use gorgon_autodiff::smallops::{self, Operand, SmallOp};
use gorgon_autodiff::vm::{node_value, MachineOptions, TapeMachine};
use gorgon_autodiff::Graph;
use gorgon_core::kernels::elementwise::{BinaryOp as B, UnaryOp as U};
use gorgon_core::{DType, Tensor};
use std::sync::{Arc, RwLock};

const VALUES: [f64; 16] = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-310, -1e-310, 1e300, -1e300, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 88.0, -750.0];

fn tensor(dtype: DType, v: &[f64], shape: &[usize]) -> Tensor {
    match dtype {
        DType::F32 => Tensor::from_vec(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), shape).unwrap(),
        _ => Tensor::from_vec(v.to_vec(), shape).unwrap(),
    }
}

fn bits(t: &Tensor) -> Vec<u64> {
    match t {
        Tensor::F32(a) => a.iter().map(|x| x.to_bits() as u64).collect(),
        Tensor::F64(a) => a.iter().map(|x| x.to_bits()).collect(),
        _ => unreachable!(),
    }
}

fn check(op: Op, ins: &[Tensor], out_shape: &[usize]) {
    let dtype = ins[0].dtype();
    let shapes: Vec<(DType, &[usize])> = ins.iter().map(|t| (t.dtype(), t.shape())).collect();
    let small = smallops::classify(&op, &shapes, (dtype, out_shape)).unwrap_or_else(|| panic!("{op:?} {shapes:?} should take the fast path"));
    let mut want = Tensor::zeros(dtype, out_shape);
    let views: Vec<_> = ins.iter().map(|t| t.view()).collect();
    op.forward(&views, &mut want).unwrap();
    let mut got = Tensor::zeros(dtype, out_shape);
    let operands: Vec<Operand> = ins.iter().map(Operand::Tensor).collect();
    assert!(smallops::run(small, &operands, &mut got), "{op:?} refused contiguous operands");
    assert_eq!(bits(&got), bits(&want), "{op:?} {dtype} on {:?}", ins.iter().map(|t| t.to_vec_f64()).collect::<Vec<_>>());
    // The same through borrowed views.
    let mut got2 = Tensor::zeros(dtype, out_shape);
    let operands: Vec<Operand> = ins.iter().map(|t| Operand::View(t.view())).collect();
    assert!(smallops::run(small, &operands, &mut got2));
    assert_eq!(bits(&got2), bits(&want));
}

#[test]
fn fast_path_matches_core_kernels_bit_for_bit() {
    let n = VALUES.len();
    let unary = [U::Neg, U::Abs, U::Sqrt, U::Square, U::Inverse, U::Relu, U::Step, U::Exp, U::Log, U::Log1p, U::Expm1, U::Tanh, U::Sigmoid];
    let binary = [B::Add, B::Sub, B::Mul, B::Div, B::Maximum, B::Minimum, B::Lt, B::Le, B::Gt, B::Ge, B::Eq, B::Ne];
    for dtype in [DType::F32, DType::F64] {
        let x = tensor(dtype, &VALUES, &[n]);
        for u in unary {
            check(Op::Unary(u), std::slice::from_ref(&x), &[n]);
        }
        for b in binary {
            for (i, &v) in VALUES.iter().enumerate() {
                // Every pair of values: x against a rotation of itself, and against each value
                // as a broadcast scalar on either side.
                let rot: Vec<f64> = (0..n).map(|k| VALUES[(k + i) % n]).collect();
                check(Op::Binary(b), &[x.clone(), tensor(dtype, &rot, &[n])], &[n]);
                check(Op::Binary(b), &[x.clone(), tensor(dtype, &[v], &[])], &[n]);
                check(Op::Binary(b), &[tensor(dtype, &[v], &[1]), x.clone()], &[n]);
                check(Op::Binary(b), &[tensor(dtype, &[v], &[]), tensor(dtype, &[VALUES[(i + 3) % n]], &[])], &[]);
            }
        }
    }
}

#[test]
fn fast_path_refuses_what_it_cannot_do() {
    let op = SmallOp::Binary(B::Add);
    let a = Tensor::zeros(DType::F64, &[4]);
    let wrong_len = Tensor::zeros(DType::F64, &[3]);
    let mut out = Tensor::zeros(DType::F64, &[4]);
    assert!(!smallops::run(op, &[Operand::Tensor(&a), Operand::Tensor(&wrong_len)], &mut out));
    let f32s = Tensor::zeros(DType::F32, &[4]);
    assert!(!smallops::run(op, &[Operand::Tensor(&a), Operand::Tensor(&f32s)], &mut out));
    // A transposed (non-contiguous) operand is refused; the VM then runs the core kernel.
    let m = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    let t = m.view().permuted(&[1, 0]).unwrap();
    let mut out2 = Tensor::zeros(DType::F64, &[2, 2]);
    assert!(!smallops::run(op, &[Operand::View(t), Operand::Tensor(&m)], &mut out2));
}

#[test]
fn machine_results_are_unchanged_by_the_fast_path() {
    // A small graph mixing fast-path ops, broadcast scalars and ops the path does not take.
    let mut g = Graph::new(false);
    let x = g.leaf(DType::F32, &[5], Some("x".into()), None).unwrap();
    let s = g.leaf(DType::F32, &[], Some("s".into()), None).unwrap();
    g.let_value(x, Value::Owned(tensor(DType::F32, &[0.5, -1.0, 2.0, f64::NAN, 0.0], &[5]))).unwrap();
    g.let_value(s, Value::Owned(tensor(DType::F32, &[3.0], &[]))).unwrap();
    let a = Attrs::new();
    let m1 = g.apply_named("mul", &[x, s], &a, None).unwrap();
    let t = g.apply_named("tanh", &[m1], &a, None).unwrap();
    let p = g.apply_named("pow", &[t, s], &a, None).unwrap();
    let r = g.apply_named("maximum", &[p, x], &a, None).unwrap();
    let sum = g.apply_named("sum", &[r], &a, None).unwrap();
    let g = Arc::new(RwLock::new(g));
    let m = TapeMachine::new(g.clone(), MachineOptions { keep_all: true, ..MachineOptions::default() }).unwrap();
    m.run_all().unwrap();
    // The reference: each op through the core kernels.
    let gr = g.read().unwrap();
    let mut want: Vec<Tensor> = Vec::new();
    let get = |id: usize, want: &Vec<Tensor>| -> Tensor {
        match id {
            _ if id == x || id == s => gr.stored_value(id).unwrap().view().to_owned(),
            _ => want[[m1, t, p, r].iter().position(|&k| k == id).unwrap()].clone(),
        }
    };
    for id in [m1, t, p, r] {
        let node = gr.node(id);
        let ins: Vec<Tensor> = node.inputs.iter().map(|&i| get(i, &want)).collect();
        let views: Vec<_> = ins.iter().map(|t| t.view()).collect();
        let mut out = Tensor::zeros(node.dtype, &node.shape);
        gr.op_of(id).unwrap().forward(&views, &mut out).unwrap();
        want.push(out);
    }
    drop(gr);
    for (k, id) in [m1, t, p, r].into_iter().enumerate() {
        assert_eq!(bits(&node_value(&g, id).unwrap()), bits(&want[k]));
    }
    assert_eq!(node_value(&g, sum).unwrap().dtype(), DType::F32);
}
