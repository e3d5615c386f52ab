//! The device abstraction: where a program's buffers live and its kernels run.
//!
//! The CPU implementation is [`CpuDevice`]; `gorgon-cuda` implements [`Device`] for NVIDIA
//! GPUs. The graph compiler only ever talks to this trait and to [`DeviceKind`].

use crate::{DType, Result, Tensor};

/// Which device a machine runs on.
///
/// ```
/// use gorgon_core::DeviceKind;
/// assert_eq!(DeviceKind::parse("cuda:1"), Some(DeviceKind::Cuda(1)));
/// assert_eq!(DeviceKind::parse("cpu"), Some(DeviceKind::Cpu));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// The host CPU.
    Cpu,
    /// An NVIDIA GPU by ordinal.
    Cuda(usize),
}

impl DeviceKind {
    /// Parses `"cpu"`, `"cuda"` (ordinal 0) or `"cuda:N"`.
    pub fn parse(s: &str) -> Option<DeviceKind> {
        match s {
            "cpu" => Some(DeviceKind::Cpu),
            "cuda" | "gpu" => Some(DeviceKind::Cuda(0)),
            _ => s.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(DeviceKind::Cuda),
        }
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceKind::Cpu => f.write_str("cpu"),
            DeviceKind::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// A device that can hold buffers and move them to and from the host.
///
/// Buffers are opaque to callers: a device hands out [`Device::Buffer`]s and copies host
/// tensors in and out. Kernels are dispatched by the program executor of each backend.
pub trait Device: Send {
    /// The device's buffer type.
    type Buffer: Send;
    /// Which device this is.
    fn kind(&self) -> DeviceKind;
    /// Allocates a zeroed buffer.
    fn alloc(&mut self, dtype: DType, shape: &[usize]) -> Result<Self::Buffer>;
    /// Copies a host tensor into a buffer of the same shape and dtype.
    fn upload(&mut self, src: &Tensor, dst: &mut Self::Buffer) -> Result<()>;
    /// Copies a buffer back to a new host tensor.
    fn download(&mut self, src: &Self::Buffer) -> Result<Tensor>;
    /// Waits for all queued work.
    fn synchronize(&mut self) -> Result<()>;
}

/// The host CPU as a [`Device`]: buffers are plain [`Tensor`]s.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuDevice;

impl Device for CpuDevice {
    type Buffer = Tensor;
    fn kind(&self) -> DeviceKind {
        DeviceKind::Cpu
    }
    fn alloc(&mut self, dtype: DType, shape: &[usize]) -> Result<Tensor> {
        Tensor::try_zeros(dtype, shape)
    }
    fn upload(&mut self, src: &Tensor, dst: &mut Tensor) -> Result<()> {
        dst.clone_from(src);
        Ok(())
    }
    fn download(&mut self, src: &Tensor) -> Result<Tensor> {
        Ok(src.clone())
    }
    fn synchronize(&mut self) -> Result<()> {
        Ok(())
    }
}
