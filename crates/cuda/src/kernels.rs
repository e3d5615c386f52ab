//! The CUDA C kernel sources (compiled into the binary with `include_str!`) and their
//! run-time compilation through NVRTC. Owns the source list and the compiler options; must
//! not touch devices (compiling needs NVRTC only, no GPU).
//!
//! Every source is the shared header `kernels/common.cuh` followed by one `kernels/*.cu`
//! file; exported kernels are `extern "C"` with a dtype suffix (`unary_f32`, `cast_i64_f32`).

use crate::error::CudaError;

/// The shared header every source starts with (types, grid-stride loop, `Layout`,
/// `ConvGeom`, float/double math overloads, NaN-aware max/min, atomics).
pub const COMMON: &str = include_str!("kernels/common.cuh");

macro_rules! kernel_source {
    ($file:literal) => {
        concat!(include_str!("kernels/common.cuh"), "\n#line 1 \"", $file, "\"\n", include_str!(concat!("kernels/", $file)))
    };
}

/// All kernel sources as `(name, full CUDA C source)`, one module each.
///
/// ```
/// let names: Vec<&str> = gorgon_cuda::kernels::SOURCES.iter().map(|s| s.0).collect();
/// assert!(names.contains(&"elementwise") && names.contains(&"optim"));
/// ```
pub const SOURCES: &[(&str, &str)] = &[
    ("elementwise", kernel_source!("elementwise.cu")),
    ("convert", kernel_source!("convert.cu")),
    ("reduce", kernel_source!("reduce.cu")),
    ("softmax", kernel_source!("softmax.cu")),
    ("index", kernel_source!("index.cu")),
    ("conv", kernel_source!("conv.cu")),
    ("pool", kernel_source!("pool.cu")),
    ("optim", kernel_source!("optim.cu")),
];

/// The virtual architecture [`compile_all`] targets: Hopper (H100/H200).
pub const DEFAULT_ARCH: &str = "compute_90";

/// What NVRTC should produce.
///
/// ```
/// use gorgon_cuda::kernels::Target;
/// assert_eq!(Target::ptx_for(9, 0).arch(), "compute_90");
/// assert_eq!(Target::cubin_for(8, 6).arch(), "sm_86");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// PTX for a virtual architecture (`compute_XY`), JIT-compiled by the driver at load
    /// time. The driver must know the PTX ISA version NVRTC emits: a driver older than the
    /// NVRTC release rejects it (`CUDA_ERROR_UNSUPPORTED_PTX_VERSION`).
    Ptx(String),
    /// Machine code for a real architecture (`sm_XY`); loads on any driver of the same CUDA
    /// major version, but only on GPUs of that architecture.
    Cubin(String),
}

impl Target {
    /// PTX for compute capability `major.minor`.
    pub fn ptx_for(major: i32, minor: i32) -> Target {
        Target::Ptx(format!("compute_{major}{minor}"))
    }
    /// A cubin for compute capability `major.minor`.
    pub fn cubin_for(major: i32, minor: i32) -> Target {
        Target::Cubin(format!("sm_{major}{minor}"))
    }
    /// The `--gpu-architecture` value.
    pub fn arch(&self) -> &str {
        match self {
            Target::Ptx(a) | Target::Cubin(a) => a,
        }
    }
}

/// A compiled module image: cudarc's `Ptx` (which also carries cubins).
#[cfg(feature = "cuda")]
pub use cudarc::nvrtc::Ptx;

/// Placeholder for cudarc's `Ptx` in builds without the `cuda` feature (never constructed).
#[cfg(not(feature = "cuda"))]
#[derive(Clone, Debug)]
pub struct Ptx {
    _never: (),
}

/// The NVRTC options used for every source (besides the architecture).
pub const NVRTC_OPTIONS: &[&str] = &["--std=c++17", "--fmad=true"];

/// Compiles one source to PTX or a cubin. A source that does not compile gives
/// [`CudaError::Compile`] with NVRTC's log; a missing NVRTC gives [`CudaError::NvrtcMissing`].
///
/// ```no_run
/// use gorgon_cuda::kernels::{compile_source, Target};
/// let src = r#"extern "C" __global__ void k(float* x) { x[threadIdx.x] = 1.0f; }"#;
/// let ptx = compile_source("k", src, &Target::Ptx("compute_90".into())).unwrap();
/// ```
pub fn compile_source(name: &str, src: &str, target: &Target) -> Result<Ptx, CudaError> {
    let bytes = compile_source_bytes(name, src, target)?;
    Ok(image_from_bytes(target, bytes))
}

/// Like [`compile_source`], but returns the raw image: PTX text (no trailing NUL) or cubin
/// bytes — what the on-disk cache stores.
pub fn compile_source_bytes(name: &str, src: &str, target: &Target) -> Result<Vec<u8>, CudaError> {
    crate::probe::nvrtc_available()?;
    #[cfg(feature = "cuda")]
    {
        crate::probe::guarded("NVRTC", || nvrtc_compile(name, src, target))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (name, src, target);
        unreachable!("nvrtc_available fails without the cuda feature")
    }
}

/// Wraps a raw image from [`compile_source_bytes`] for loading.
#[cfg(feature = "cuda")]
pub fn image_from_bytes(target: &Target, bytes: Vec<u8>) -> Ptx {
    match target {
        Target::Ptx(_) => Ptx::from_src(String::from_utf8_lossy(&bytes).into_owned()),
        Target::Cubin(_) => Ptx::from_binary(bytes),
    }
}

/// Wraps a raw image (unreachable without the `cuda` feature: nothing compiles).
#[cfg(not(feature = "cuda"))]
pub fn image_from_bytes(target: &Target, bytes: Vec<u8>) -> Ptx {
    let _ = (target, bytes);
    unreachable!("no images exist without the cuda feature")
}

/// Compiles every entry of [`SOURCES`] to PTX for [`DEFAULT_ARCH`] (`compute_90`).
///
/// ```no_run
/// let modules = gorgon_cuda::kernels::compile_all().unwrap();
/// assert_eq!(modules.len(), gorgon_cuda::kernels::SOURCES.len());
/// ```
pub fn compile_all() -> Result<Vec<(String, Ptx)>, CudaError> {
    compile_all_for(&Target::Ptx(DEFAULT_ARCH.to_string()))
}

/// Compiles every entry of [`SOURCES`] for `target`, one thread per source (NVRTC
/// compiles separate programs concurrently).
///
/// ```no_run
/// use gorgon_cuda::kernels::{compile_all_for, Target};
/// let cubins = compile_all_for(&Target::cubin_for(9, 0)).unwrap();
/// ```
pub fn compile_all_for(target: &Target) -> Result<Vec<(String, Ptx)>, CudaError> {
    crate::probe::nvrtc_available()?;
    std::thread::scope(|scope| {
        let jobs: Vec<_> = SOURCES
            .iter()
            .map(|(name, src)| (name, scope.spawn(move || compile_source(name, src, target))))
            .collect();
        jobs.into_iter()
            .map(|(name, job)| {
                let image = job
                    .join()
                    .map_err(|_| CudaError::Compile { kernel: name.to_string(), log: "the compiler thread panicked".into() })??;
                Ok((name.to_string(), image))
            })
            .collect()
    })
}

#[cfg(feature = "cuda")]
fn nvrtc_compile(name: &str, src: &str, target: &Target) -> Result<Vec<u8>, CudaError> {
    use cudarc::nvrtc::{result, sys};
    use std::ffi::CString;

    /// Destroys the NVRTC program on every exit path, ignoring errors (never panics).
    struct Program(sys::nvrtcProgram);
    impl Drop for Program {
        fn drop(&mut self) {
            // SAFETY: created by nvrtcCreateProgram and destroyed exactly once.
            let _ = unsafe { result::destroy_program(self.0) };
        }
    }
    fn to_text(v: &[std::ffi::c_char]) -> String {
        let bytes: Vec<u8> = v.iter().map(|&c| c as u8).take_while(|&c| c != 0).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    let compile_err = |log: String| CudaError::Compile { kernel: name.to_string(), log };
    let csrc = CString::new(src).map_err(|_| compile_err("source contains a NUL byte".into()))?;
    let cname = CString::new(format!("{name}.cu")).map_err(|_| compile_err("name contains a NUL byte".into()))?;
    let prog = Program(
        result::create_program(&csrc, Some(&cname)).map_err(|e| compile_err(format!("nvrtcCreateProgram: {e:?}")))?,
    );
    let mut opts: Vec<String> = vec![format!("--gpu-architecture={}", target.arch())];
    opts.extend(NVRTC_OPTIONS.iter().map(|s| s.to_string()));
    // SAFETY: `prog` is a live program; the options are NUL-free strings.
    if let Err(e) = unsafe { result::compile_program(prog.0, &opts) } {
        // SAFETY: as above.
        let log = unsafe { result::get_program_log(prog.0) }.map(|l| to_text(&l)).unwrap_or_default();
        return Err(compile_err(format!("{e:?} (options {opts:?})\n{log}")));
    }
    match target {
        Target::Ptx(_) => {
            // SAFETY: the program compiled successfully.
            let ptx = unsafe { result::get_ptx(prog.0) }.map_err(|e| compile_err(format!("nvrtcGetPTX: {e:?}")))?;
            // cudarc turns a source Ptx into a CString when loading: drop the trailing NUL.
            Ok(to_text(&ptx).into_bytes())
        }
        Target::Cubin(_) => {
            let mut size = 0usize;
            // SAFETY: the program compiled successfully; `size` is a valid out-pointer and the
            // buffer has exactly the size NVRTC reported.
            let cubin = unsafe {
                let rc = sys::nvrtcGetCUBINSize(prog.0, &mut size);
                if rc != sys::nvrtcResult::NVRTC_SUCCESS {
                    return Err(compile_err(format!("nvrtcGetCUBINSize: {rc:?}")));
                }
                let mut buf = vec![0u8; size];
                let rc = sys::nvrtcGetCUBIN(prog.0, buf.as_mut_ptr() as *mut std::ffi::c_char);
                if rc != sys::nvrtcResult::NVRTC_SUCCESS {
                    return Err(compile_err(format!("nvrtcGetCUBIN: {rc:?}")));
                }
                buf
            };
            Ok(cubin)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_starts_with_the_common_header_and_exports_c_kernels() {
        for (name, src) in SOURCES {
            assert!(src.starts_with(COMMON), "{name}");
            assert!(src.contains("extern \"C\" __global__"), "{name}");
            assert!(!src.contains('\0'), "{name}");
        }
    }
}
