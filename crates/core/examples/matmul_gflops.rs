//! Prints f32/f64 matmul throughput (GFLOP/s):
//! `cargo run --release -p gorgon-core --example matmul_gflops [N...]` for square `N×N`
//! products, or `... -- batch B N` for a `(B, N, N) @ (B, N, N)` batched product.
use gorgon_core::kernels::matmul::matmul;
use gorgon_core::{DType, Tensor};
use std::time::Instant;

fn time(dt: DType, batch: &[usize], n: usize) -> (f64, usize) {
    let mut sa = batch.to_vec();
    sa.extend_from_slice(&[n, n]);
    let a = Tensor::full(dt, &sa, 0.5).unwrap();
    let b = Tensor::full(dt, &sa, 0.25).unwrap();
    let mut c = Tensor::zeros(dt, &sa);
    matmul(&a.view(), &b.view(), &mut c).unwrap();
    let nb: usize = batch.iter().product();
    let flop = 2.0 * (n as f64).powi(3) * nb as f64;
    let reps = ((2e10 / flop) as usize).clamp(3, 200);
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        matmul(&a.view(), &b.view(), &mut c).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (flop / best / 1e9, reps)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(|s| s == "batch").unwrap_or(false) {
        let b: usize = args[1].parse().unwrap();
        let n: usize = args[2].parse().unwrap();
        for dt in [DType::F32, DType::F64] {
            let (g, reps) = time(dt, &[b], n);
            println!(
                "{} B={} N={:5}: {:7.1} GFLOP/s (best of {})",
                dt, b, n, g, reps
            );
        }
        return;
    }
    let nums: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if nums.is_empty() {
        vec![256, 512, 1024, 2048]
    } else {
        nums
    };
    for dt in [DType::F32, DType::F64] {
        for &n in &sizes {
            let (g, reps) = time(dt, &[], n);
            println!("{} N={:5}: {:7.1} GFLOP/s (best of {})", dt, n, g, reps);
        }
    }
}
