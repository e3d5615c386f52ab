//! Times reductions and softmax of a 4096×4096 f32 matrix (best of several runs):
//! `cargo run --release -p gorgon-core --example reduce_timing`.
use gorgon_core::kernels::reduce::{reduce, ReduceOp};
use gorgon_core::kernels::softmax::softmax;
use gorgon_core::{DType, Tensor};
use std::time::Instant;

fn best(mut f: impl FnMut()) -> f64 {
    f();
    (0..15)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let n = 4096;
    let v: Vec<f32> = (0..n * n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let x = Tensor::from_vec(v, &[n, n]).unwrap();
    let gb = (n * n * 4) as f64 / 1e9;
    for (name, op, axes, oshape) in [
        ("sum all", ReduceOp::Sum, vec![0, 1], vec![]),
        ("sum axis0", ReduceOp::Sum, vec![0], vec![n]),
        ("sum axis1", ReduceOp::Sum, vec![1], vec![n]),
        ("max axis1", ReduceOp::Max, vec![1], vec![n]),
        ("max axis0", ReduceOp::Max, vec![0], vec![n]),
        ("logsumexp axis1", ReduceOp::LogSumExp, vec![1], vec![n]),
        ("logsumexp axis0", ReduceOp::LogSumExp, vec![0], vec![n]),
    ] {
        let mut out = Tensor::zeros(DType::F32, &oshape);
        let t = best(|| reduce(op, &x.view(), &axes, &mut out).unwrap());
        println!("{name:18} {:8.3} ms  {:6.1} GB/s", t * 1e3, gb / t);
    }
    let xt = x.view().permuted(&[1, 0]).unwrap();
    let mut out = Tensor::zeros(DType::F32, &[n]);
    let t = best(|| reduce(ReduceOp::Sum, &xt, &[0], &mut out).unwrap());
    println!(
        "{:18} {:8.3} ms  {:6.1} GB/s",
        "sum x.T axis0",
        t * 1e3,
        gb / t
    );
    let mut out = Tensor::zeros(DType::F32, &[n, n]);
    for axis in [1, 0] {
        let t = best(|| softmax(&x.view(), axis, false, &mut out).unwrap());
        println!("{:18} {:8.3} ms", format!("softmax axis{axis}"), t * 1e3);
    }
}
