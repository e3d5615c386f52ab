//! float32 2×2 / stride 2 max pooling with AVX2 intrinsics, eight windows per step.
//!
//! Rows of pooled planes are short (7 or 14 windows in a typical convnet), too short for the
//! compiler's vectorized loops, whose scalar remainders then dominate; here a row's tail is
//! done with masked loads and stores instead, so every window goes through the vector code.
//!
//! A pair of input rows holds windows `w = 0..8` as `r0[2w], r0[2w+1], r1[2w], r1[2w+1]`.
//! Within 128-bit lanes, `shuffle_ps` splits 16 floats into even and odd cells with the
//! windows in the order `0 1 4 5 2 3 6 7`; `unpacklo/hi_ps` undo exactly that, so the
//! backward pass never reorders, and the forward pass fixes the order with one 64-bit
//! permute (its own inverse). Same rule as [`super::fast`]: `take = v > best | v is NaN`.

use super::PGeom;
use std::arch::x86_64::*;

/// Lanes `< n` set (`n` clamped to `0..=8`).
#[inline(always)]
unsafe fn mask(n: usize) -> __m256i {
    // SAFETY: AVX2 (caller).
    unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)) }
}

/// Window order `0 1 4 5 2 3 6 7` ⇄ `0..8` (64-bit chunks `0 2 1 3`).
#[inline(always)]
unsafe fn swap_mid(v: __m256) -> __m256 {
    // SAFETY: AVX2 (caller).
    unsafe { _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(v))) }
}

/// The arg-max rule's selection: lanes where `v` replaces `best`.
#[inline(always)]
unsafe fn take(v: __m256, best: __m256) -> __m256 {
    // SAFETY: AVX (caller).
    unsafe { _mm256_or_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(v, best), _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v)) }
}

/// Eight windows from two rows, 16 floats each starting at `r0`, `r1` (or fewer, masked by
/// `(lo, hi)`): the maximum and the selection masks of steps 1–3, in shuffled window order.
#[inline(always)]
unsafe fn windows(r0: *const f32, r1: *const f32, m: Option<(__m256i, __m256i)>) -> (__m256, [__m256; 3]) {
    // SAFETY: AVX2 (caller); the (masked) loads stay inside the rows.
    unsafe {
        let (x0, x1, y0, y1) = match m {
            None => (_mm256_loadu_ps(r0), _mm256_loadu_ps(r0.add(8)), _mm256_loadu_ps(r1), _mm256_loadu_ps(r1.add(8))),
            Some((lo, hi)) => (
                _mm256_maskload_ps(r0, lo),
                _mm256_maskload_ps(r0.wrapping_add(8), hi),
                _mm256_maskload_ps(r1, lo),
                _mm256_maskload_ps(r1.wrapping_add(8), hi),
            ),
        };
        let (a0, a1) = (_mm256_shuffle_ps::<0x88>(x0, x1), _mm256_shuffle_ps::<0xDD>(x0, x1));
        let (b0, b1) = (_mm256_shuffle_ps::<0x88>(y0, y1), _mm256_shuffle_ps::<0xDD>(y0, y1));
        let m1 = take(a1, a0);
        let best = _mm256_blendv_ps(a0, a1, m1);
        let m2 = take(b0, best);
        let best = _mm256_blendv_ps(best, b0, m2);
        let m3 = take(b1, best);
        (_mm256_blendv_ps(best, b1, m3), [m1, m2, m3])
    }
}

/// Forward pass of one plane.
///
/// # Safety
/// The CPU supports AVX2; `xp` with row stride `sy` (unit column stride) addresses a live
/// `(H, W)` plane of `g`, which is 2×2 / stride 2 / unpadded; `dst` is `(oH, oW)`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn forward_plane(xp: *const f32, sy: isize, g: &PGeom, dst: &mut [f32]) {
    let ow = g.ow;
    for (oy, d) in dst.chunks_exact_mut(ow).enumerate() {
        // SAFETY: rows 2·oy, 2·oy + 1 < H hold 2·oW ≤ W cells each; ox + 8 ≤ oW in the loop,
        // and the tail's masks cover exactly the 2·(oW − ox) remaining cells / oW − ox outputs.
        unsafe {
            let r0 = xp.offset(2 * oy as isize * sy);
            let r1 = r0.offset(sy);
            let dp = d.as_mut_ptr();
            let mut ox = 0;
            while ox + 8 <= ow {
                let (best, _) = windows(r0.add(2 * ox), r1.add(2 * ox), None);
                _mm256_storeu_ps(dp.add(ox), swap_mid(best));
                ox += 8;
            }
            if ox < ow {
                let t = ow - ox;
                let m = (mask(2 * t), mask((2 * t).saturating_sub(8)));
                let (best, _) = windows(r0.add(2 * ox), r1.add(2 * ox), Some(m));
                _mm256_maskstore_ps(dp.add(ox), mask(t), swap_mid(best));
            }
        }
    }
}

/// Backward pass over the covered rows of one plane: `dst` holds the `2·oH` rows of `W`
/// cells that windows cover; their first `2·oW` cells get `0 + grad` at each window's
/// arg-max and 0 elsewhere (the caller zeroes the rest).
///
/// # Safety
/// As [`forward_plane`]; `gp` with strides `(gy, gx)` addresses a live `(oH, oW)` plane;
/// `dst` has `2·oH·W` elements.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn backward_plane(xp: *const f32, sy: isize, gp: *const f32, gy: isize, gx: isize, g: &PGeom, dst: &mut [f32]) {
    let (w, ow) = (g.w, g.ow);
    for (oy, d) in dst.chunks_exact_mut(2 * w).enumerate() {
        // SAFETY: as in forward_plane; gradient row oy < oH; the destination rows are
        // dst[2·oy·W..] and dst[(2·oy + 1)·W..], each with 2·oW ≤ W cells written.
        unsafe {
            let r0 = xp.offset(2 * oy as isize * sy);
            let r1 = r0.offset(sy);
            let grow = gp.offset(oy as isize * gy);
            let d0 = d.as_mut_ptr();
            let d1 = d0.add(w);
            let zero = _mm256_setzero_ps();
            let mut ox = 0;
            while ox < ow {
                let t = (ow - ox).min(8);
                let m = (t < 8).then(|| (mask(2 * t), mask((2 * t).saturating_sub(8))));
                let gv = if gx == 1 {
                    match m {
                        None => _mm256_loadu_ps(grow.add(ox)),
                        Some(_) => _mm256_maskload_ps(grow.add(ox), mask(t)),
                    }
                } else {
                    let mut tmp = [0f32; 8];
                    for (i, v) in tmp.iter_mut().enumerate().take(t) {
                        *v = *grow.offset((ox + i) as isize * gx);
                    }
                    _mm256_loadu_ps(tmp.as_ptr())
                };
                // 0 + g, as the generic zero-fill-then-add computes it (−0 becomes +0).
                let gv = _mm256_add_ps(zero, swap_mid(gv));
                let (_, [m1, m2, m3]) = windows(r0.add(2 * ox), r1.add(2 * ox), m);
                let m23 = _mm256_or_ps(m2, m3);
                let c0 = _mm256_andnot_ps(_mm256_or_ps(m1, m23), gv);
                let c1 = _mm256_and_ps(_mm256_andnot_ps(m23, m1), gv);
                let c2 = _mm256_and_ps(_mm256_andnot_ps(m3, m2), gv);
                let c3 = _mm256_and_ps(m3, gv);
                let cells = [
                    (d0, _mm256_unpacklo_ps(c0, c1), _mm256_unpackhi_ps(c0, c1)),
                    (d1, _mm256_unpacklo_ps(c2, c3), _mm256_unpackhi_ps(c2, c3)),
                ];
                for (row, lo, hi) in cells {
                    let p = row.add(2 * ox);
                    match m {
                        None => {
                            _mm256_storeu_ps(p, lo);
                            _mm256_storeu_ps(p.add(8), hi);
                        }
                        Some((ml, mh)) => {
                            _mm256_maskstore_ps(p, ml, lo);
                            _mm256_maskstore_ps(p.wrapping_add(8), mh, hi);
                        }
                    }
                }
                ox += t;
            }
        }
    }
}
