//! Run-time availability checks and library loading. Owns every decision about *whether*
//! CUDA can be used in this process and *where* its shared libraries come from; it must not
//! allocate device memory or launch anything.
//!
//! cudarc (with `dynamic-loading`) panics the first time it needs a library that cannot be
//! found, so every check here first asks whether the library loads at all, and wraps the
//! cudarc calls in [`std::panic::catch_unwind`] as a second line of defence.
//!
//! Library search:
//! - **Driver** (`libcuda.so.1`): ships with the NVIDIA driver; found by the system loader.
//! - **NVRTC** (`libnvrtc.so.13`): if `GORGON_NVRTC_PATH` is set (a folder holding the
//!   library, or the library file itself), it is loaded from there by absolute path first;
//!   otherwise the system loader searches (`LD_LIBRARY_PATH`, ldconfig). `pip install
//!   nvidia-cuda-nvrtc` puts it in `site-packages/nvidia/cu13/lib/`.
//! - **cuBLAS** (`libcublas.so.13`): likewise from `GORGON_CUBLAS_PATH`, else from the
//!   `GORGON_NVRTC_PATH` folder when it holds one (pip's `nvidia-cublas` installs into the
//!   same `nvidia/cu13/lib/`), else the system loader.
//!
//! Loading by absolute path works because cudarc later asks for the library by bare name
//! (`libnvrtc.so.13`, among others) and glibc's `dlopen` answers a bare name with an already
//! loaded library whose SONAME matches. Setting the environment variables from inside the
//! process (before the first CUDA call) therefore works, unlike `LD_LIBRARY_PATH`.

#[cfg(feature = "cuda")]
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
#[cfg(feature = "cuda")]
use std::sync::{Mutex, OnceLock};

use crate::error::CudaError;

/// Environment variable naming the folder (or file) of `libnvrtc.so.13`.
pub const NVRTC_PATH_ENV: &str = "GORGON_NVRTC_PATH";
/// Environment variable naming the folder (or file) of `libcublas.so.13`.
pub const CUBLAS_PATH_ENV: &str = "GORGON_CUBLAS_PATH";
/// File name of the NVRTC library this build expects (CUDA 13).
pub const NVRTC_LIB: &str = "libnvrtc.so.13";
/// File name of the cuBLAS library this build expects (CUDA 13).
pub const CUBLAS_LIB: &str = "libcublas.so.13";
/// File name of the driver library.
pub const DRIVER_LIB: &str = "libcuda.so.1";

#[cfg(not(feature = "cuda"))]
const NOT_BUILT: &str = "gorgon-cuda was built without CUDA support (cargo feature `cuda` is off)";

/// Runs `f`, turning a panic (cudarc's reaction to a missing library or symbol) into an error.
#[cfg(feature = "cuda")]
pub(crate) fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, CudaError>) -> Result<T, CudaError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(CudaError::Driver(format!("{what}: {msg}")))
        }
    }
}

/// Number of CUDA devices, or why CUDA cannot be used. Checks that the driver library loads
/// before any cudarc call, then runs `cuInit` and `cuDeviceGetCount`. The answer is computed
/// once per process.
///
/// ```
/// match gorgon_cuda::probe::availability() {
///     Ok(n) => println!("{n} CUDA device(s)"),
///     Err(e) => println!("no CUDA: {e}"),
/// }
/// ```
pub fn availability() -> Result<usize, CudaError> {
    #[cfg(feature = "cuda")]
    {
        static ANSWER: OnceLock<Result<usize, CudaError>> = OnceLock::new();
        ANSWER.get_or_init(probe_driver).clone()
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(CudaError::NoDriver(NOT_BUILT.to_string()))
    }
}

#[cfg(feature = "cuda")]
fn probe_driver() -> Result<usize, CudaError> {
    use cudarc::driver::{result, sys};
    // SAFETY: only tries to dlopen a list of library names and closes them again.
    let present = guarded("probing the CUDA driver library", || Ok(unsafe { sys::is_culib_present() }))?;
    if !present {
        return Err(CudaError::NoDriver(format!(
            "no CUDA driver library ({DRIVER_LIB}) found; is the NVIDIA driver installed?"
        )));
    }
    guarded("initializing the CUDA driver", || {
        match result::init() {
            Ok(()) => {}
            Err(e) if e.0 == sys::CUresult::CUDA_ERROR_NO_DEVICE => return Err(CudaError::NoDevice),
            Err(e) => {
                let e = CudaError::from(e);
                return Err(CudaError::Driver(format!("cuInit failed ({e}); the driver may be older than CUDA 13.0 (driver 580)")));
            }
        }
        let n = result::device::get_count().map_err(CudaError::from)?;
        if n <= 0 {
            Err(CudaError::NoDevice)
        } else {
            Ok(n as usize)
        }
    })
}

/// True when at least one CUDA device can be used.
///
/// ```
/// if !gorgon_cuda::is_available() {
///     println!("{}", gorgon_cuda::unavailable_reason().unwrap());
/// }
/// ```
pub fn is_available() -> bool {
    availability().is_ok()
}

/// Number of usable CUDA devices (0 when CUDA is unavailable).
///
/// ```
/// let n = gorgon_cuda::device_count();
/// assert_eq!(n > 0, gorgon_cuda::is_available());
/// ```
pub fn device_count() -> usize {
    availability().unwrap_or(0)
}

/// Why CUDA is unavailable (e.g. "no CUDA driver library (libcuda.so.1) found"), or `None`
/// when it is available.
///
/// ```
/// assert_eq!(gorgon_cuda::unavailable_reason().is_none(), gorgon_cuda::is_available());
/// ```
pub fn unavailable_reason() -> Option<String> {
    availability().err().map(|e| e.to_string())
}

/// Where `name` lives according to the environment variable `env`: the variable may name the
/// library file itself or a folder holding it. `None` when the variable is unset or empty.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn path_from_env(env: &str, name: &str) -> Option<PathBuf> {
    let v = std::env::var_os(env)?;
    if v.is_empty() {
        return None;
    }
    let p = PathBuf::from(v);
    Some(if p.is_dir() { p.join(name) } else { p })
}

/// Libraries this module opened by absolute path; kept open for the life of the process.
#[cfg(feature = "cuda")]
static PRELOADED: OnceLock<Mutex<Vec<(PathBuf, libloading::Library)>>> = OnceLock::new();

/// Loads the shared library at `path` (absolute or relative path, not a bare name) with
/// `RTLD_NOW | RTLD_GLOBAL` and keeps it loaded for the rest of the process, so cudarc's
/// later lookup by bare name finds it. Loading the same path twice is a no-op.
///
/// ```no_run
/// gorgon_cuda::probe::preload_library(std::path::Path::new(
///     ".venv/lib/python3.11/site-packages/nvidia/cu13/lib/libnvrtc.so.13",
/// )).unwrap();
/// ```
pub fn preload_library(path: &Path) -> Result<(), String> {
    #[cfg(all(feature = "cuda", unix))]
    {
        use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
        let abs = path.canonicalize().map_err(|e| format!("{}: {e}", path.display()))?;
        let list = PRELOADED.get_or_init(|| Mutex::new(Vec::new()));
        let mut list = list.lock().unwrap_or_else(|p| p.into_inner());
        if list.iter().any(|(p, _)| *p == abs) {
            return Ok(());
        }
        // SAFETY: loading runs the library's initializers; these are NVIDIA's own CUDA
        // libraries, which are designed to be dlopen'ed.
        let lib = unsafe { Library::open(Some(&abs), RTLD_NOW | RTLD_GLOBAL) }.map_err(|e| e.to_string())?;
        list.push((abs, lib.into()));
        Ok(())
    }
    #[cfg(all(feature = "cuda", not(unix)))]
    {
        // SAFETY: as above.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
        let list = PRELOADED.get_or_init(|| Mutex::new(Vec::new()));
        list.lock().unwrap_or_else(|p| p.into_inner()).push((path.to_path_buf(), lib));
        Ok(())
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(format!("{}: {NOT_BUILT}", path.display()))
    }
}

/// Set once NVRTC has been found; later checks are free.
#[cfg(feature = "cuda")]
static NVRTC_FOUND: OnceLock<()> = OnceLock::new();

/// NVRTC `dlopen`s its builtins library (`libnvrtc-builtins.so.13.X`) by bare name at the
/// first compile. Some wheels (nvidia-cuda-nvrtc 13.0) carry no RPATH, so it is only found
/// on `LD_LIBRARY_PATH`; loading it from the same folder first makes the bare-name lookup
/// succeed (glibc matches the SONAME). Failures are ignored: the compile reports them.
#[cfg(feature = "cuda")]
fn preload_nvrtc_builtins_beside(nvrtc: &Path) {
    let Some(dir) = nvrtc.parent() else { return };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("libnvrtc-builtins.so") {
            let _ = preload_library(&entry.path());
        }
    }
}

/// Checks that NVRTC (`libnvrtc.so.13`) can be loaded, loading it from `GORGON_NVRTC_PATH`
/// first when that is set. Needed to compile the kernels; no GPU is needed for this.
///
/// ```
/// if let Err(e) = gorgon_cuda::probe::nvrtc_available() {
///     println!("cannot compile kernels: {e}");
/// }
/// ```
pub fn nvrtc_available() -> Result<(), CudaError> {
    #[cfg(feature = "cuda")]
    {
        if NVRTC_FOUND.get().is_some() {
            return Ok(());
        }
        if let Some(p) = path_from_env(NVRTC_PATH_ENV, NVRTC_LIB) {
            preload_nvrtc_builtins_beside(&p);
            preload_library(&p).map_err(|e| {
                CudaError::NvrtcMissing(format!("{NVRTC_PATH_ENV} points at {} but it cannot be loaded: {e}", p.display()))
            })?;
        }
        // SAFETY: only tries to dlopen a list of library names and closes them again.
        let present = guarded("probing NVRTC", || Ok(unsafe { cudarc::nvrtc::sys::is_culib_present() }))?;
        if !present {
            return Err(CudaError::NvrtcMissing(format!(
                "{NVRTC_LIB} not found: `pip install nvidia-cuda-nvrtc` and set {NVRTC_PATH_ENV} to its \
                 site-packages/nvidia/cu13/lib folder, or add the folder to LD_LIBRARY_PATH"
            )));
        }
        let _ = NVRTC_FOUND.set(());
        Ok(())
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(CudaError::NvrtcMissing(NOT_BUILT.to_string()))
    }
}

/// NVRTC's version `(major, minor)`, after [`nvrtc_available`] succeeds.
///
/// ```
/// if let Ok((major, minor)) = gorgon_cuda::probe::nvrtc_version() {
///     assert!(major >= 13, "{major}.{minor}");
/// }
/// ```
pub fn nvrtc_version() -> Result<(i32, i32), CudaError> {
    nvrtc_available()?;
    #[cfg(feature = "cuda")]
    {
        guarded("nvrtcVersion", || {
            let (mut major, mut minor) = (0, 0);
            // SAFETY: two valid out-pointers.
            let rc = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
            if rc != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
                return Err(CudaError::NvrtcMissing(format!("nvrtcVersion failed: {rc:?}")));
            }
            Ok((major, minor))
        })
    }
    #[cfg(not(feature = "cuda"))]
    {
        unreachable!("nvrtc_available fails without the cuda feature")
    }
}

/// Checks that cuBLAS (`libcublas.so.13`) can be loaded, loading it from
/// `GORGON_CUBLAS_PATH` (or the `GORGON_NVRTC_PATH` folder) first when set.
///
/// ```
/// let _ = gorgon_cuda::probe::cublas_available();
/// ```
pub fn cublas_available() -> Result<(), CudaError> {
    #[cfg(feature = "cuda")]
    {
        let explicit = path_from_env(CUBLAS_PATH_ENV, CUBLAS_LIB);
        let beside_nvrtc = path_from_env(NVRTC_PATH_ENV, NVRTC_LIB)
            .and_then(|p| p.parent().map(|d| d.join(CUBLAS_LIB)))
            .filter(|p| p.exists());
        if let Some(p) = explicit.clone().or(beside_nvrtc) {
            preload_library(&p).map_err(|e| CudaError::Blas(format!("cannot load {}: {e}", p.display())))?;
        }
        // SAFETY: only tries to dlopen a list of library names and closes them again.
        let present = guarded("probing cuBLAS", || Ok(unsafe { cudarc::cublas::sys::is_culib_present() }))?;
        if !present {
            return Err(CudaError::Blas(format!(
                "{CUBLAS_LIB} not found: install the CUDA 13 toolkit or `pip install nvidia-cublas` and set \
                 {CUBLAS_PATH_ENV} to its site-packages/nvidia/cu13/lib folder"
            )));
        }
        Ok(())
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(CudaError::Blas(NOT_BUILT.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_path_accepts_folder_or_file() {
        let dir = std::env::temp_dir();
        std::env::set_var("GORGON_TEST_LIBDIR_X", &dir);
        assert_eq!(path_from_env("GORGON_TEST_LIBDIR_X", "libfoo.so.1"), Some(dir.join("libfoo.so.1")));
        std::env::set_var("GORGON_TEST_LIBDIR_X", "/nonexistent/libbar.so");
        assert_eq!(path_from_env("GORGON_TEST_LIBDIR_X", "libfoo.so.1"), Some(PathBuf::from("/nonexistent/libbar.so")));
        std::env::set_var("GORGON_TEST_LIBDIR_X", "");
        assert_eq!(path_from_env("GORGON_TEST_LIBDIR_X", "libfoo.so.1"), None);
    }

    #[test]
    fn preload_of_missing_file_is_an_error() {
        assert!(preload_library(Path::new("/nonexistent/libnvrtc.so.13")).is_err());
    }
}
