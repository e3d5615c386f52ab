//! Runs the CUDA kernel sources on the host (no GPU, no NVRTC): `host_emulation/` has a tiny
//! CUDA shim (blocks run in turn, a block's threads are real threads with a barrier for
//! `__syncthreads`) and reference checks for every kernel family. This checks the kernels'
//! arithmetic and index math on every machine with a C++20 compiler (`$CXX` or `c++`);
//! without one it prints why and skips. The launch code on the Rust side needs a GPU
//! (tests/gpu.rs).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn kernel_sources_compute_the_right_values_on_the_host() {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/host_emulation");
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gorgon_cuda_kernels_on_host");
    // The folder may be missing when the test binary runs outside its build tree.
    let _ = std::fs::create_dir_all(env!("CARGO_TARGET_TMPDIR"));
    let compiled = Command::new(&cxx)
        .args(["-std=c++20", "-O1", "-pthread", "-w"])
        .arg(dir.join("kernels_on_host.cpp"))
        .arg("-o")
        .arg(&exe)
        .output();
    let out = match compiled {
        Err(e) => {
            eprintln!("skipping: no C++ compiler `{cxx}` ({e}); set CXX to a C++20 compiler");
            return;
        }
        Ok(o) => o,
    };
    assert!(out.status.success(), "compiling the host emulation failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let run = Command::new(&exe).output().expect("run the host emulation");
    let stdout = String::from_utf8_lossy(&run.stdout);
    eprintln!("{stdout}");
    assert!(run.status.success(), "kernel checks failed:\n{stdout}{}", String::from_utf8_lossy(&run.stderr));

    // Structs passed to kernels by value must have the same size on both sides.
    let sizes = stdout.lines().find(|l| l.starts_with("sizes:")).expect("a sizes line");
    let layout = std::mem::size_of::<gorgon_cuda::layout::KernelLayout>();
    let geom = std::mem::size_of::<gorgon_cuda::layout::ConvGeom>();
    assert!(sizes.contains(&format!("Layout={layout} ")), "{sizes}");
    assert!(sizes.contains(&format!("ConvGeom={geom} ")), "{sizes}");
    #[cfg(feature = "cuda")]
    {
        let optim = std::mem::size_of::<gorgon_cuda::UpdateParams>();
        assert!(sizes.ends_with(&format!("OptimParams={optim}")), "{sizes}");
    }
}
