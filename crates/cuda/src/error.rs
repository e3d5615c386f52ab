//! The error type of gorgon-cuda. Owns [`CudaError`] and its conversion into
//! [`gorgon_core::CoreError`]; must not depend on cudarc types in its public variants (they
//! carry strings), so the enum is the same with or without the `cuda` feature.

/// Everything that can go wrong in the CUDA backend.
///
/// ```
/// use gorgon_cuda::CudaError;
/// let e = CudaError::NoDevice;
/// assert!(e.to_string().contains("no CUDA device"));
/// let core: gorgon_core::CoreError = e.into();
/// assert!(matches!(core, gorgon_core::CoreError::Device(_)));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CudaError {
    /// The CUDA driver library could not be loaded (or the crate was built without CUDA).
    #[error("CUDA unavailable: {0}")]
    NoDriver(String),
    /// The driver loaded but reports no usable device.
    #[error("CUDA unavailable: driver present but no CUDA device found")]
    NoDevice,
    /// The NVRTC runtime compiler library could not be loaded.
    #[error("NVRTC unavailable: {0}")]
    NvrtcMissing(String),
    /// A kernel source failed to compile; `log` is NVRTC's program log.
    #[error("CUDA kernel source `{kernel}` failed to compile:\n{log}")]
    Compile {
        /// Name of the kernel source (see [`crate::kernels::SOURCES`]).
        kernel: String,
        /// The compiler's log (errors and warnings).
        log: String,
    },
    /// A driver call failed (allocation, copy, launch, module load, ...).
    #[error("CUDA driver error: {0}")]
    Driver(String),
    /// A cuBLAS call failed.
    #[error("cuBLAS error: {0}")]
    Blas(String),
    /// The operation/dtype/shape combination has no CUDA kernel.
    #[error("not supported on CUDA: {op}")]
    Unsupported {
        /// What was asked for, e.g. `"unary Exp on int32"`.
        op: String,
    },
}

impl From<CudaError> for gorgon_core::CoreError {
    fn from(e: CudaError) -> Self {
        gorgon_core::CoreError::Device(e.to_string())
    }
}

#[cfg(feature = "cuda")]
impl From<cudarc::driver::DriverError> for CudaError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        let name = e.error_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let text = e.error_string().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if name.is_empty() && text.is_empty() {
            CudaError::Driver(format!("{:?}", e.0))
        } else {
            CudaError::Driver(format!("{name}: {text}"))
        }
    }
}

#[cfg(feature = "cuda")]
impl From<cudarc::cublas::result::CublasError> for CudaError {
    fn from(e: cudarc::cublas::result::CublasError) -> Self {
        CudaError::Blas(format!("{:?}", e.0))
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, CudaError>;
