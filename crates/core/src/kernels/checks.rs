//! Output checks shared by the kernels, and the errors they report.

use crate::error::{fmt_shape, CoreError, Result};
use crate::Tensor;

/// The error for an output that is not contiguous row-major.
pub(crate) fn not_contiguous(name: &'static str) -> CoreError {
    CoreError::Shape {
        op: name,
        detail: "out must be contiguous (row-major)".into(),
    }
}

/// Errors unless `out` is contiguous row-major.
pub(crate) fn check_contiguous(name: &'static str, out: &Tensor) -> Result<()> {
    let contiguous = crate::match_tensor!(Tensor, out, o => o.is_standard_layout());
    if contiguous {
        Ok(())
    } else {
        Err(not_contiguous(name))
    }
}

/// The error for an output whose shape is not the result's.
pub(crate) fn result_shape_err(name: &'static str, out: &[usize], result: &[usize]) -> CoreError {
    CoreError::Shape {
        op: name,
        detail: format!(
            "out has shape {} but the result has shape {}",
            fmt_shape(out),
            fmt_shape(result)
        ),
    }
}
