//! The error type of gorgon-core: one enum, structured variants, no panics in library code.

use crate::DType;

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, CoreError>;

/// Everything that can go wrong inside the tensor core.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum CoreError {
    /// Shapes that do not fit the operation.
    #[error("{op}: shape mismatch: {detail}")]
    Shape {
        /// The kernel or operation name.
        op: &'static str,
        /// Human-readable detail naming the shapes (as Python tuples).
        detail: String,
    },
    /// A dtype the operation does not accept.
    #[error("{op}: unsupported dtype {dtype}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    DType {
        /// The kernel or operation name.
        op: &'static str,
        /// The offending dtype.
        dtype: DType,
        /// Extra detail.
        detail: String,
    },
    /// An index or axis out of range.
    #[error("{op}: index out of range: {detail}")]
    Index {
        /// The kernel or operation name.
        op: &'static str,
        /// Detail naming the index and the bound.
        detail: String,
    },
    /// A buffer could not be allocated.
    #[error("cannot allocate {bytes} bytes for a tensor of shape {shape}")]
    Alloc {
        /// Bytes requested.
        bytes: usize,
        /// The shape, as a Python tuple.
        shape: String,
    },
    /// A device-level failure (driver, missing library, ...).
    #[error("device error: {0}")]
    Device(String),
}

/// Formats a shape as a Python tuple: `()`, `(4,)`, `(2, 3)`.
///
/// ```
/// assert_eq!(gorgon_core::error::fmt_shape(&[4]), "(4,)");
/// assert_eq!(gorgon_core::error::fmt_shape(&[2, 3]), "(2, 3)");
/// ```
pub fn fmt_shape(shape: &[usize]) -> String {
    match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}
