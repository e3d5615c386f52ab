//! Every kernel source compiles through NVRTC (no GPU needed). Needs `libnvrtc.so.13`:
//! set `GORGON_NVRTC_PATH` to the folder holding it (`pip install nvidia-cuda-nvrtc` puts it
//! in `site-packages/nvidia/cu13/lib`) or put that folder on `LD_LIBRARY_PATH`. When NVRTC
//! cannot be found the tests print why and skip — except when `GORGON_NVRTC_PATH` is set,
//! where a failure to load it fails the tests.
#![cfg(feature = "cuda")]

use gorgon_cuda::kernels::{compile_all, compile_all_for, compile_source, Target, SOURCES};
use gorgon_cuda::CudaError;

fn nvrtc_ready() -> bool {
    match gorgon_cuda::probe::nvrtc_available() {
        Ok(()) => true,
        Err(e) if std::env::var_os("GORGON_NVRTC_PATH").is_some() => {
            panic!("GORGON_NVRTC_PATH is set but NVRTC does not load: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            false
        }
    }
}

#[test]
fn every_kernel_source_compiles_to_ptx_for_compute_90() {
    if !nvrtc_ready() {
        return;
    }
    let (major, minor) = gorgon_cuda::probe::nvrtc_version().unwrap();
    eprintln!("NVRTC {major}.{minor}");
    let modules = compile_all().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(modules.len(), SOURCES.len());
    for (name, ptx) in &modules {
        let text = ptx.to_src();
        assert!(text.contains(".target sm_90"), "{name}: {}", &text[..text.len().min(400)]);
        assert!(text.contains(".entry"), "{name} has no kernels");
    }
}

#[test]
#[ignore = "slow (about 20 s of CPU: NVRTC runs ptxas for every kernel); the PTX test covers the sources. Run with --ignored"]
fn every_kernel_source_compiles_to_a_cubin_for_sm_90() {
    if !nvrtc_ready() {
        return;
    }
    let modules = compile_all_for(&Target::cubin_for(9, 0)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(modules.len(), SOURCES.len());
}

#[test]
fn a_broken_kernel_is_a_compile_error_with_the_log() {
    if !nvrtc_ready() {
        return;
    }
    let src = "extern \"C\" __global__ void broken(float* x) { x[0] = undefined_name; }";
    match compile_source("broken", src, &Target::Ptx("compute_90".into())) {
        Err(CudaError::Compile { kernel, log }) => {
            assert_eq!(kernel, "broken");
            assert!(log.contains("undefined_name"), "{log}");
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
}

#[test]
fn the_disk_cache_is_filled_once_and_reused() {
    if !nvrtc_ready() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("gorgon_cuda_cache_it_{}", std::process::id()));
    std::env::set_var("GORGON_CUDA_CACHE", &dir);
    let target = Target::ptx_for(9, 0);
    let first = gorgon_cuda::cache::compile_all_cached(&target).unwrap_or_else(|e| panic!("{e}"));
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(files, SOURCES.len());
    let t = std::time::Instant::now();
    let second = gorgon_cuda::cache::compile_all_cached(&target).unwrap();
    assert!(t.elapsed().as_secs_f64() < 1.0, "cache hit took {:?}", t.elapsed());
    for ((n1, p1), (n2, p2)) in first.iter().zip(&second) {
        assert_eq!((n1, p1.to_src()), (n2, p2.to_src()));
    }
    std::env::remove_var("GORGON_CUDA_CACHE");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every unary and binary op and `where`, in one generated fused kernel per dtype, with
/// scalar and full operands: the generated source compiles, and its kernel is there.
#[test]
fn generated_fused_kernels_compile_for_every_op() {
    use gorgon_autodiff::fused::{FusedExpr, Step};
    use gorgon_core::kernels::elementwise::{BinaryOp as B, UnaryOp as U};
    if !nvrtc_ready() {
        return;
    }
    let unary = [
        U::Neg, U::Abs, U::Sign, U::Exp, U::Log, U::Log1p, U::Expm1, U::Log2, U::Sqrt, U::Square, U::Cube, U::Inverse,
        U::InverseSqrt, U::Sin, U::Cos, U::Tanh, U::Sigmoid, U::Softplus, U::Relu, U::Mish, U::Floor, U::Ceil,
        U::LeakyRelu(0.1), U::Clip(-1.0, f64::INFINITY), U::Step, U::InRange(-0.5, 0.5), U::LeakyStep(0.2), U::MishGrad,
    ];
    let binary = [B::Add, B::Sub, B::Mul, B::Div, B::Pow, B::FloorDiv, B::Maximum, B::Minimum, B::Lt, B::Le, B::Gt, B::Ge, B::Eq, B::Ne];
    let mut steps = vec![Step::Input(0), Step::Input(1)];
    for u in unary {
        let last = steps.len() - 1;
        steps.push(Step::Unary(u, last));
    }
    for b in binary {
        let last = steps.len() - 1;
        steps.push(Step::Binary(b, last, 1));
    }
    let last = steps.len() - 1;
    steps.push(Step::Where(0, last, 1));
    let e = FusedExpr { steps };
    for dt in [gorgon_core::DType::F32, gorgon_core::DType::F64] {
        let k = gorgon_cuda::fused::kernel_source(&e, dt, &[false, true]).unwrap();
        let ptx = compile_source(&k.name, &k.source, &Target::ptx_for(9, 0)).unwrap_or_else(|e| panic!("{e}"));
        let text = ptx.to_src();
        assert!(text.contains(&format!(".entry {}", k.name)), "{}", &text[..text.len().min(400)]);
        // 16-byte vector loads of the full operand.
        let v = if dt == gorgon_core::DType::F32 { "ld.global.nc.v4.f32" } else { "ld.global.nc.v2.f64" };
        assert!(text.contains(v), "no {v} in the fused kernel's PTX");
    }
}
