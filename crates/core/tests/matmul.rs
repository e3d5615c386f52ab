//! Matrix products against a naive reference: every dtype, broadcast batch dimensions,
//! transposed / reversed / broadcast operand views, degenerate sizes, the threaded paths, and
//! errors.

mod common;

use common::views::*;
use gorgon_core::error::CoreError;
use gorgon_core::kernels::matmul::matmul;
use gorgon_core::{DType, Tensor};

fn matmul_ref(
    a: &[f64],
    ash: &[usize],
    b: &[f64],
    bsh: &[usize],
    dt: DType,
) -> (Vec<f64>, Vec<usize>) {
    let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let n = bsh[bsh.len() - 1];
    let abat = &ash[..ash.len() - 2];
    let bbat = &bsh[..bsh.len() - 2];
    let nd = abat.len().max(bbat.len());
    let pad = |s: &[usize]| {
        let mut v = vec![1; nd - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (pa, pb) = (pad(abat), pad(bbat));
    let batch: Vec<usize> = pa
        .iter()
        .zip(&pb)
        .map(|(&x, &y)| if x == 1 { y } else { x })
        .collect();
    let mut out = vec![];
    for_each_index(&batch, |bi| {
        let (mut oa, mut ob) = (0, 0);
        for d in 0..nd {
            oa = oa * pa[d] + if pa[d] == 1 { 0 } else { bi[d] };
            ob = ob * pb[d] + if pb[d] == 1 { 0 } else { bi[d] };
        }
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                let mut si = 0i64;
                for p in 0..k {
                    let x = a[oa * m * k + i * k + p];
                    let y = b[ob * k * n + p * n + j];
                    s += x * y;
                    si = si.wrapping_add((x as i64).wrapping_mul(y as i64));
                }
                out.push(match dt {
                    DType::I32 => si as i32 as f64,
                    DType::I64 => si as f64,
                    _ => s,
                });
            }
        }
    });
    let mut sh = batch;
    sh.extend_from_slice(&[m, n]);
    (out, sh)
}

fn check_matmul(dt: DType, ash: &[usize], bsh: &[usize], la: &Layout, lb: &Layout, seed: u64) {
    let sa = storage(dt, ash, la, seed);
    let sb = storage(dt, bsh, lb, seed + 7);
    let (va, vb) = (view_of(&sa, ash, la), view_of(&sb, bsh, lb));
    let (want, osh) = matmul_ref(
        &va.to_owned().to_vec_f64(),
        ash,
        &vb.to_owned().to_vec_f64(),
        bsh,
        dt,
    );
    let mut out = Tensor::full(dt, &osh, 3.0).unwrap();
    let what = format!(
        "{dt} {ash:?}@{bsh:?} {}x{}",
        layout_name(la),
        layout_name(lb)
    );
    matmul(&va, &vb, &mut out).unwrap_or_else(|e| panic!("{what}: {e}"));
    let k = ash[ash.len() - 1] as f64;
    let tol = match dt {
        DType::F32 => 1e-6 * k.sqrt().max(1.0) * 4.0,
        DType::F64 => 1e-13 * k.max(1.0),
        _ => 0.0,
    };
    close(&out.to_vec_f64(), &want, tol, &what);
}

#[test]
fn matmul_matches_reference() {
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 4], &[4, 5]),
        (&[1, 1], &[1, 1]),
        (&[0, 4], &[4, 5]),
        (&[3, 0], &[0, 5]),
        (&[3, 4], &[4, 0]),
        (&[2, 1, 3, 4], &[5, 4, 2]),
        (&[1, 3, 4], &[6, 4, 2]),
        (&[4, 9, 17], &[17, 13]),
        (&[33, 65], &[65, 31]),
        (&[2, 0, 3, 4], &[4, 2]),
    ];
    let mut seed = 9000;
    for &(ash, bsh) in cases {
        for la in &LAYOUTS {
            for lb in &LAYOUTS {
                for dt in [DType::F32, DType::F64, DType::I32, DType::I64] {
                    seed += 1;
                    check_matmul(dt, ash, bsh, la, lb, seed);
                }
            }
        }
    }
}

#[test]
fn matmul_large_and_batched_threaded() {
    // big single product (row-block / matrixmultiply-threaded path), transposed operand
    check_matmul(
        DType::F32,
        &[300, 200],
        &[200, 500],
        &Layout::Contiguous,
        &Layout::Permuted,
        1,
    );
    check_matmul(
        DType::F64,
        &[257, 129],
        &[129, 263],
        &Layout::Reversed,
        &Layout::Contiguous,
        2,
    );
    // many small matrices (parallel over the batch), broadcast right operand
    check_matmul(
        DType::F32,
        &[64, 16, 24],
        &[24, 16],
        &Layout::Contiguous,
        &Layout::Contiguous,
        3,
    );
    check_matmul(
        DType::F64,
        &[8, 8, 40, 40],
        &[8, 1, 40, 40],
        &Layout::Permuted,
        &Layout::Contiguous,
        4,
    );
    check_matmul(
        DType::I64,
        &[16, 20, 30],
        &[16, 30, 40],
        &Layout::Contiguous,
        &Layout::Contiguous,
        5,
    );
}

#[test]
fn matmul_f32_kernel_edges() {
    // Sizes around the f32 SIMD GEMM's tile edges (12-row tiles, 16/32-column strips, k panels
    // of at most 512), large enough to be threaded, every operand layout.
    let cases: &[(&[usize], &[usize])] = &[
        (&[13, 513], &[513, 33]),
        (&[128, 784], &[784, 10]),
        (&[130, 40], &[40, 300]),
        (&[300, 130], &[130, 16]),
        (&[2, 25, 70], &[2, 70, 17]),
    ];
    let mut seed = 7100;
    for &(ash, bsh) in cases {
        for la in &LAYOUTS {
            for lb in &LAYOUTS {
                seed += 1;
                check_matmul(DType::F32, ash, bsh, la, lb, seed);
            }
        }
    }
}

#[test]
fn matmul_zero_stride_inside_matrix() {
    // a (3, 4) operand that is one row broadcast: zero row stride
    let row = rand_tensor(DType::F64, &[1, 4], 11);
    let a = row.view().broadcast_to(&[3, 4]).unwrap();
    let b = rand_tensor(DType::F64, &[4, 2], 12);
    let (want, _) = matmul_ref(
        &a.to_owned().to_vec_f64(),
        &[3, 4],
        &b.to_vec_f64(),
        &[4, 2],
        DType::F64,
    );
    let mut out = Tensor::zeros(DType::F64, &[3, 2]);
    matmul(&a, &b.view(), &mut out).unwrap();
    close(&out.to_vec_f64(), &want, 1e-14, "zero-stride");
}

#[test]
fn matmul_errors() {
    let a = Tensor::zeros(DType::F32, &[2, 3]);
    let b = Tensor::zeros(DType::F32, &[4, 5]);
    let mut out = Tensor::zeros(DType::F32, &[2, 5]);
    let err = matmul(&a.view(), &b.view(), &mut out).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, CoreError::Shape { .. }) && msg.contains("(2, 3)") && msg.contains("(4, 5)"),
        "{msg}"
    );
    let b = Tensor::zeros(DType::F32, &[3, 5]);
    let mut bad = Tensor::zeros(DType::F32, &[5, 2]);
    assert!(matches!(
        matmul(&a.view(), &b.view(), &mut bad),
        Err(CoreError::Shape { .. })
    ));
    let mut wrong_dt = Tensor::zeros(DType::F64, &[2, 5]);
    assert!(matches!(
        matmul(&a.view(), &b.view(), &mut wrong_dt),
        Err(CoreError::DType { .. })
    ));
    let b64 = Tensor::zeros(DType::F64, &[3, 5]);
    assert!(matches!(
        matmul(&a.view(), &b64.view(), &mut out),
        Err(CoreError::DType { .. })
    ));
    let v = Tensor::zeros(DType::F32, &[3]);
    let mut o1 = Tensor::zeros(DType::F32, &[2]);
    assert!(matches!(
        matmul(&a.view(), &v.view(), &mut o1),
        Err(CoreError::Shape { .. })
    ));
    let a3 = Tensor::zeros(DType::F32, &[2, 2, 3]);
    let b3 = Tensor::zeros(DType::F32, &[3, 3, 5]);
    let mut o3 = Tensor::zeros(DType::F32, &[3, 2, 5]);
    assert!(matches!(
        matmul(&a3.view(), &b3.view(), &mut o3),
        Err(CoreError::Shape { .. })
    ));
    let ab = Tensor::zeros(DType::Bool, &[2, 3]);
    let bb = Tensor::zeros(DType::Bool, &[3, 5]);
    let mut ob = Tensor::zeros(DType::Bool, &[2, 5]);
    assert!(matches!(
        matmul(&ab.view(), &bb.view(), &mut ob),
        Err(CoreError::DType { .. })
    ));
}
