//! The error type of gorgon-autodiff. Messages are complete sentences that name the op, the
//! operands (name, shape as a Python tuple, dtype) and where the user built the node.

use gorgon_core::CoreError;

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while building, differentiating, compiling or running a graph.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// Shapes that do not fit (Python: `gorgon_rs.ShapeError`, a ValueError).
    #[error("{0}")]
    Shape(String),
    /// A dtype that does not fit (Python: `gorgon_rs.DTypeError`, a TypeError).
    #[error("{0}")]
    DType(String),
    /// Misuse of the graph or a machine (Python: `gorgon_rs.GraphError`, a RuntimeError).
    #[error("{0}")]
    Graph(String),
    /// NaN or Inf caught by `nan_guard` (Python: `gorgon_rs.NumericError`).
    #[error("{0}")]
    Numeric(String),
    /// A malformed file (Python: `gorgon_rs.FormatError`, a ValueError).
    #[error("{0}")]
    Format(String),
    /// A device problem (Python: `gorgon_rs.DeviceError`).
    #[error("{0}")]
    Device(String),
    /// Memory could not be allocated (Python: `MemoryError`).
    #[error("{0}")]
    Alloc(String),
    /// A file was not found (Python: `FileNotFoundError`).
    #[error("{0}")]
    NotFound(String),
    /// Any other I/O failure (Python: `OSError`).
    #[error("{0}")]
    Io(String),
    /// A bug in gorgon_rs (Python: `gorgon_rs.InternalError`).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// Prefixes the message with context (e.g. the op and operands), keeping the variant.
    pub fn context(self, ctx: impl AsRef<str>) -> Error {
        let c = ctx.as_ref();
        let f = |m: String| format!("{c}: {m}");
        match self {
            Error::Shape(m) => Error::Shape(f(m)),
            Error::DType(m) => Error::DType(f(m)),
            Error::Graph(m) => Error::Graph(f(m)),
            Error::Numeric(m) => Error::Numeric(f(m)),
            Error::Format(m) => Error::Format(f(m)),
            Error::Device(m) => Error::Device(f(m)),
            Error::Alloc(m) => Error::Alloc(f(m)),
            Error::NotFound(m) => Error::NotFound(f(m)),
            Error::Io(m) => Error::Io(f(m)),
            Error::Internal(m) => Error::Internal(f(m)),
        }
    }
}

impl From<CoreError> for Error {
    fn from(e: CoreError) -> Self {
        let m = e.to_string();
        match e {
            CoreError::Shape { .. } => Error::Shape(m),
            CoreError::DType { .. } => Error::DType(m),
            CoreError::Index { .. } => Error::Shape(m),
            CoreError::Alloc { .. } => Error::Alloc(m),
            CoreError::Device(_) => Error::Device(m),
        }
    }
}
