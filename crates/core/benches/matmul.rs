//! Criterion benchmarks for GEMM (square f32/f64 products, N = 256 … 2048, reported as
//! FLOP throughput) and reductions of a 4096×4096 f32 matrix (all / axis 0 / axis 1,
//! reported as bytes read).
//!
//! `cargo bench -p gorgon-core --bench matmul` (add `-- matmul/f32` to filter).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gorgon_core::kernels::matmul::matmul;
use gorgon_core::kernels::reduce::{reduce, ReduceOp};
use gorgon_core::{DType, Tensor};
use std::hint::black_box;
use std::time::Duration;

fn filled(dt: DType, shape: &[usize]) -> Tensor {
    // deterministic, non-constant values
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f64 / 1000.0 - 0.5)
        .collect();
    match dt {
        DType::F32 => {
            Tensor::from_vec(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), shape).unwrap()
        }
        _ => Tensor::from_vec(v, shape).unwrap(),
    }
}

fn bench_matmul(c: &mut Criterion) {
    for dt in [DType::F32, DType::F64] {
        let mut g = c.benchmark_group(format!("matmul/{}", dt));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for n in [256usize, 512, 1024, 2048] {
            let a = filled(dt, &[n, n]);
            let b = filled(dt, &[n, n]);
            let mut out = Tensor::zeros(dt, &[n, n]);
            g.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
            g.bench_with_input(BenchmarkId::from_parameter(n), &n, |bch, _| {
                bch.iter(|| matmul(black_box(&a.view()), black_box(&b.view()), &mut out).unwrap())
            });
        }
        g.finish();
    }
}

fn bench_reduce(c: &mut Criterion) {
    let n = 4096usize;
    let x = filled(DType::F32, &[n, n]);
    let mut g = c.benchmark_group("reduce/f32_4096x4096");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes((n * n * 4) as u64));
    let cases: [(&str, &[usize], Vec<usize>); 3] = [
        ("sum_all", &[0, 1], vec![]),
        ("sum_axis0", &[0], vec![n]),
        ("sum_axis1", &[1], vec![n]),
    ];
    for (name, axes, oshape) in cases {
        let mut out = Tensor::zeros(DType::F32, &oshape);
        g.bench_function(name, |bch| {
            bch.iter(|| reduce(ReduceOp::Sum, black_box(&x.view()), axes, &mut out).unwrap())
        });
    }
    let mut out = Tensor::zeros(DType::F32, &[n]);
    g.bench_function("max_axis1", |bch| {
        bch.iter(|| reduce(ReduceOp::Max, black_box(&x.view()), &[1], &mut out).unwrap())
    });
    g.bench_function("logsumexp_axis1", |bch| {
        bch.iter(|| reduce(ReduceOp::LogSumExp, black_box(&x.view()), &[1], &mut out).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_matmul, bench_reduce);
criterion_main!(benches);
