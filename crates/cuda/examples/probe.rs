//! Prints whether CUDA is usable here and why not; with a GPU, opens each device (which
//! compiles the kernels through NVRTC) and prints its name.
//!
//! ```text
//! cargo run -p gorgon-cuda --example probe
//! GORGON_NVRTC_PATH=.venv/lib/python3.11/site-packages/nvidia/cu13/lib cargo run -p gorgon-cuda --example probe
//! ```

fn main() {
    match gorgon_cuda::availability() {
        Ok(n) => println!("CUDA available: {n} device(s)"),
        Err(e) => println!("{e}"),
    }
    match gorgon_cuda::probe::nvrtc_version() {
        Ok((major, minor)) => println!("NVRTC {major}.{minor}: kernels can be compiled"),
        Err(e) => println!("{e}"),
    }
    match gorgon_cuda::probe::cublas_available() {
        Ok(()) => println!("cuBLAS: found"),
        Err(e) => println!("{e}"),
    }
    for ordinal in 0..gorgon_cuda::device_count() {
        match gorgon_cuda::CudaDevice::new(ordinal) {
            Ok(dev) => {
                let (major, minor) = dev.compute_capability();
                println!("cuda:{ordinal}: {} (compute capability {major}.{minor})", dev.name());
            }
            Err(e) => println!("cuda:{ordinal}: cannot open: {e}"),
        }
    }
}
