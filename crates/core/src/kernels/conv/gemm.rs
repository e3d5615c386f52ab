//! The GEMMs of the convolution: `matrixmultiply` behind [`ConvFloat`], and a blocked
//! variant that never threads, for use inside batch-parallel regions.

use crate::kernels::matmul::Gemm;
use crate::Float;
use std::cell::RefCell;
use std::thread::LocalKey;

/// Float types the convolution supports: a GEMM and per-thread scratch buffers.
pub(crate) trait ConvFloat: Float + Gemm {
    /// The im2col scratch of this thread.
    fn scratch() -> &'static LocalKey<RefCell<Vec<Self>>>;
    /// Per-thread partial sums for the weight gradient (owned by the calling thread).
    fn partials() -> &'static LocalKey<RefCell<Vec<Self>>>;
}

macro_rules! impl_conv_float {
    ($($t:ty: $scratch:ident, $partials:ident;)*) => {$(
        thread_local! {
            static $scratch: RefCell<Vec<$t>> = const { RefCell::new(Vec::new()) };
            static $partials: RefCell<Vec<$t>> = const { RefCell::new(Vec::new()) };
        }

        impl ConvFloat for $t {
            fn scratch() -> &'static LocalKey<RefCell<Vec<$t>>> {
                &$scratch
            }
            fn partials() -> &'static LocalKey<RefCell<Vec<$t>>> {
                &$partials
            }
        }
    )*};
}

impl_conv_float! {
    f32: SCRATCH_F32, PARTIAL_F32;
    f64: SCRATCH_F64, PARTIAL_F64;
}

/// A strided read-only matrix operand.
#[derive(Clone, Copy)]
pub(super) struct Mat<T> {
    pub(super) ptr: *const T,
    pub(super) rs: isize,
    pub(super) cs: isize,
}

#[allow(clippy::too_many_arguments)]
/// `c (m×n, row-major with row stride ldc) ← A·B + β·c`, with the degenerate sizes handled.
///
/// # Safety
/// As [`Gemm::gemm_raw`]; `c` must hold `m` rows of `ldc ≥ n` elements.
unsafe fn gemm<T: ConvFloat>(m: usize, k: usize, n: usize, a: Mat<T>, b: Mat<T>, beta: T, c: &mut [T], ldc: usize) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for r in 0..m {
            for v in &mut c[r * ldc..r * ldc + n] {
                *v = if beta == T::zero() { T::zero() } else { *v * beta };
            }
        }
        return;
    }
    // SAFETY: caller contract; `c` is a live exclusive slice large enough.
    unsafe {
        T::gemm_raw(m, k, n, T::one(), a.ptr, a.rs, a.cs, b.ptr, b.rs, b.cs, beta, c.as_mut_ptr(), ldc as isize, 1)
    }
}

/// `matrixmultiply` splits a product across its own threads once `m·k + k·n ≥ 2¹⁵`; inside
/// our batch-parallel regions that nests pools and oversubscribes the cores (measured ~40%
/// slower on 2 cores, and its small shared pool serializes many callers), so there every
/// product is cut into blocks below that size.
const MM_SERIAL_LIMIT: usize = 1 << 15;

/// Block sizes `(mb, kb, nb)` for [`gemm_serial`]: every block satisfies
/// `kb·(mb + nb) < MM_SERIAL_LIMIT`, chosen to minimize the relative extra memory traffic
/// `1/mb + 1/nb + 1/kb` (B repacked per row block, A per column block, C re-read per k-block).
fn serial_blocks(m: usize, k: usize, n: usize) -> (usize, usize, usize) {
    let mut best = (f64::INFINITY, (1, 1, 1));
    // k-blocks of at least 16 (or all of k).
    let max_nk = k.div_ceil(16).max(1);
    for nk in 1..=max_nk {
        let kb = k.div_ceil(nk);
        if nk > 1 && k.div_ceil(kb) != nk {
            continue; // same kb as a smaller nk
        }
        let budget = (MM_SERIAL_LIMIT - 1) / kb; // mb + nb ≤ budget
        if budget < 2 {
            continue;
        }
        let (mb, nb) = if m + n <= budget {
            (m, n)
        } else if 2 * m <= budget {
            (m, budget - m)
        } else if 2 * n <= budget {
            (budget - n, n)
        } else {
            (budget / 2, budget - budget / 2)
        };
        let mb = m.div_ceil(m.div_ceil(mb));
        let nb = n.div_ceil(n.div_ceil(nb));
        let cost = 1.0 / mb as f64 + 1.0 / nb as f64 + 1.0 / kb as f64;
        if cost < best.0 {
            best = (cost, (mb, kb, nb));
        }
    }
    best.1
}

#[allow(clippy::too_many_arguments)]
/// Like [`gemm`] but guaranteed to run on the calling thread: large products are done as a
/// sequence of blocks that matrixmultiply will not thread.
///
/// # Safety
/// As [`gemm`].
unsafe fn gemm_serial<T: ConvFloat>(m: usize, k: usize, n: usize, a: Mat<T>, b: Mat<T>, beta: T, c: &mut [T], ldc: usize) {
    if k == 0 || m == 0 || n == 0 || m * k + k * n < MM_SERIAL_LIMIT {
        // SAFETY: forwarded.
        unsafe { gemm(m, k, n, a, b, beta, c, ldc) };
        return;
    }
    let (mb, kb, nb) = serial_blocks(m, k, n);
    let mut i0 = 0;
    while i0 < m {
        let mi = mb.min(m - i0);
        let mut j0 = 0;
        while j0 < n {
            let nj = nb.min(n - j0);
            let mut k0 = 0;
            while k0 < k {
                let kk = kb.min(k - k0);
                let bt = if k0 == 0 { beta } else { T::one() };
                // SAFETY: the offsets select the (i0.., k0..) block of A, the (k0.., j0..) block
                // of B and the (i0.., j0..) block of C, all inside the caller's matrices.
                unsafe {
                    let ab = Mat { ptr: a.ptr.offset(i0 as isize * a.rs + k0 as isize * a.cs), ..a };
                    let bb = Mat { ptr: b.ptr.offset(k0 as isize * b.rs + j0 as isize * b.cs), ..b };
                    gemm(mi, kk, nj, ab, bb, bt, &mut c[i0 * ldc + j0..], ldc);
                }
                k0 += kk;
            }
            j0 += nj;
        }
        i0 += mi;
    }
}

/// [`gemm_serial`] inside parallel regions, [`gemm`] (which may use matrixmultiply's threads)
/// otherwise.
///
/// # Safety
/// As [`gemm`].
#[inline]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_in<T: ConvFloat>(par: bool, m: usize, k: usize, n: usize, a: Mat<T>, b: Mat<T>, beta: T, c: &mut [T], ldc: usize) {
    // SAFETY: forwarded.
    unsafe {
        if par {
            gemm_serial(m, k, n, a, b, beta, c, ldc)
        } else {
            gemm(m, k, n, a, b, beta, c, ldc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::plumbing::with_buf;
    use super::*;

    #[test]
    fn scratch_grows_and_survives_reentrancy() {
        let r = with_buf(f64::scratch(), 10, |a| {
            a.fill(1.0);
            // Nested use of the same buffer falls back to a fresh allocation.
            let inner = with_buf(f64::scratch(), 4, |b| b.len()).unwrap();
            a.len() + inner
        })
        .unwrap();
        assert_eq!(r, 14);
        SCRATCH_F64.with(|c| assert!(c.borrow().len() >= 10));
    }

    #[test]
    fn blocked_gemm_matches_plain() {
        for &(m, k, n) in &[(64, 288, 196), (300, 700, 5), (3, 900, 400), (200, 20, 1000), (1, 5000, 1)] {
            let a: Vec<f64> = (0..m * k).map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0).collect();
            let b: Vec<f64> = (0..k * n).map(|i| ((i * 104729) % 97) as f64 / 48.0 - 1.0).collect();
            // A row-major, B column-major (transposed view), C with an extra-wide row.
            let am = Mat { ptr: a.as_ptr(), rs: k as isize, cs: 1 };
            let bm = Mat { ptr: b.as_ptr(), rs: 1, cs: k as isize };
            let ldc = n + 3;
            let mut c1 = vec![0.5; m * ldc];
            let mut c2 = c1.clone();
            unsafe {
                gemm(m, k, n, am, bm, 2.0, &mut c1, ldc);
                gemm_serial(m, k, n, am, bm, 2.0, &mut c2, ldc);
            }
            let err = c1.iter().zip(&c2).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
            assert!(err < 1e-10, "{m}x{k}x{n}: {err}");
            // The padding columns are untouched.
            assert!((0..m).all(|r| c2[r * ldc + n..r * ldc + ldc].iter().all(|&v| v == 0.5)));
        }
    }

    /// `MATMUL_NUM_THREADS=1 cargo test --release --lib blocked_gemm_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn blocked_gemm_timing() {
        for &(m, k, n) in &[(64usize, 288usize, 196usize), (64, 196, 288), (288, 64, 196), (128, 1152, 784), (256, 2304, 196)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32).collect();
            let am = Mat { ptr: a.as_ptr(), rs: k as isize, cs: 1 };
            let bm = Mat { ptr: b.as_ptr(), rs: n as isize, cs: 1 };
            // The same products with A column-major, and with B column-major.
            let am_t = Mat { ptr: a.as_ptr(), rs: 1, cs: m as isize };
            let bm_t = Mat { ptr: b.as_ptr(), rs: 1, cs: k as isize };
            let mut c = vec![0f32; m * n];
            let mut best = [f64::INFINITY; 4];
            for _ in 0..100 {
                for (v, slot) in best.iter_mut().enumerate() {
                    let t = std::time::Instant::now();
                    unsafe {
                        match v {
                            0 => gemm(m, k, n, am, bm, 0.0, &mut c, n),
                            1 => gemm_serial(m, k, n, am, bm, 0.0, &mut c, n),
                            2 => gemm(m, k, n, am_t, bm, 0.0, &mut c, n),
                            _ => gemm(m, k, n, am, bm_t, 0.0, &mut c, n),
                        }
                    }
                    *slot = slot.min(t.elapsed().as_secs_f64() * 1e6);
                }
            }
            let gf = |us: f64| 2.0 * (m * k * n) as f64 / us / 1e3;
            println!(
                "{m}x{k}x{n}: plain {:.0} us ({:.1} GF/s), blocked {:.0} us ({:.1} GF/s), A col-major {:.0} us, B col-major {:.0} us",
                best[0], gf(best[0]), best[1], gf(best[1]), best[2], best[3]
            );
        }
    }
}
