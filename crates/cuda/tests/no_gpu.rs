//! Behaviour without a usable GPU: every entry point reports why, nothing panics. These run
//! on every machine; on a machine with a GPU they check the consistent "available" answers.

use gorgon_cuda::{CudaDevice, CudaError};

#[test]
fn availability_answers_are_consistent() {
    let avail = gorgon_cuda::is_available();
    assert_eq!(avail, gorgon_cuda::unavailable_reason().is_none());
    assert_eq!(avail, gorgon_cuda::device_count() > 0);
    assert_eq!(gorgon_cuda::availability().is_ok(), avail);
}

#[test]
fn without_a_gpu_the_reason_names_the_driver_and_opening_a_device_fails() {
    if gorgon_cuda::is_available() {
        eprintln!("skipping: this machine has a CUDA device");
        return;
    }
    let reason = gorgon_cuda::unavailable_reason().expect("a reason when unavailable");
    eprintln!("reason: {reason}");
    #[cfg(feature = "cuda")]
    assert!(reason.to_lowercase().contains("driver"), "{reason}");
    #[cfg(not(feature = "cuda"))]
    assert!(reason.contains("built without CUDA support"), "{reason}");

    let err = CudaDevice::new(0).expect_err("no device to open");
    assert!(matches!(err, CudaError::NoDriver(_) | CudaError::NoDevice), "{err:?}");
    // And as the core error the graph layer sees:
    let core: gorgon_core::CoreError = err.into();
    assert!(matches!(core, gorgon_core::CoreError::Device(ref m) if m.contains("CUDA unavailable")), "{core}");
    // Asking twice gives the same answer (cached, still no panic).
    assert!(CudaDevice::new(3).is_err());
}

/// Runs `f` with GORGON_NVRTC_PATH pointing nowhere, then restores the caller's value (CI
/// may set it for the whole test run). No other test in this binary reads it.
fn with_bad_nvrtc_path<T>(f: impl FnOnce() -> T) -> T {
    let saved = std::env::var_os("GORGON_NVRTC_PATH");
    std::env::set_var("GORGON_NVRTC_PATH", "/nonexistent/gorgon/nvrtc");
    let r = f();
    match saved {
        Some(v) => std::env::set_var("GORGON_NVRTC_PATH", v),
        None => std::env::remove_var("GORGON_NVRTC_PATH"),
    }
    r
}

#[test]
fn a_bad_nvrtc_path_is_an_error_not_a_panic() {
    let r = with_bad_nvrtc_path(gorgon_cuda::probe::nvrtc_available);
    match r {
        Err(CudaError::NvrtcMissing(msg)) => {
            #[cfg(feature = "cuda")]
            assert!(msg.contains("GORGON_NVRTC_PATH"), "{msg}");
            let _ = msg;
        }
        other => panic!("expected NvrtcMissing, got {other:?}"),
    }
    // Compiling then fails the same way instead of panicking inside cudarc.
    let r = with_bad_nvrtc_path(gorgon_cuda::kernels::compile_all);
    assert!(matches!(r, Err(CudaError::NvrtcMissing(_))), "{:?}", r.err());
}
