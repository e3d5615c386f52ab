//! NumPy broadcasting with the tensor core alone: a column `(3, 1)` plus a row `(1, 4)` gives a
//! `(3, 4)` table, computed by the SIMD elementwise kernel (`GORGON_SIMD=scalar` forces the
//! scalar fallback). Small and fast: `make test` runs it.
//!
//! Run with `cargo run -p gorgon-core --example broadcast_add`.
use gorgon_core::kernels::elementwise::{binary, BinaryOp};
use gorgon_core::shape::broadcast_shapes;
use gorgon_core::{DType, Tensor};

fn main() -> Result<(), gorgon_core::CoreError> {
    let col = Tensor::from_vec_f64(vec![0.0, 10.0, 20.0], &[3, 1])?;
    let row = Tensor::from_vec_f64(vec![1.0, 2.0, 3.0, 4.0], &[1, 4])?;

    // The result shape follows NumPy's rules: (3, 1) and (1, 4) broadcast to (3, 4).
    let shape = broadcast_shapes(col.shape(), row.shape())?;
    let mut out = Tensor::zeros(DType::F64, &shape);
    binary(BinaryOp::Add, &col.view(), &row.view(), &mut out)?;

    let values = out.to_vec_f64();
    for r in values.chunks(shape[1]) {
        println!("{r:?}");
    }
    assert_eq!(shape, vec![3, 4]);
    assert_eq!(values[..4], [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(values[8..], [21.0, 22.0, 23.0, 24.0]);

    // Shapes that do not broadcast are an error value, never a panic.
    let bad = Tensor::from_vec_f64(vec![1.0, 2.0], &[2])?;
    let err = binary(BinaryOp::Add, &col.view(), &bad.view(), &mut out).unwrap_err();
    println!("error, as expected: {err}");
    println!("simd level: {}", gorgon_core::kernels::simd::level().name());
    Ok(())
}
