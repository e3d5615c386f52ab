//! Fast paths of max pooling for "dense" windows: no padding, no dilation, and an input
//! whose rows are contiguous (unit stride along W). Every window then lies inside the input,
//! so there is no clipping, no division and no bounds arithmetic per output cell.
//!
//! The results are bit-for-bit those of the generic path (`window_argmax`): the running
//! maximum starts at the window's first cell and is replaced by a later cell `v` when
//! `v > best || v.is_nan()`, in row-major window order. So ties keep the first maximum
//! (including the sign of a zero), a NaN wins over numbers (the last NaN of the window is the
//! one reported), and the backward pass routes each gradient to that same cell, writing
//! `0 + g` (as the generic zero-fill-then-add does; it turns a `−0` gradient into `+0`).
//!
//! The loops are plain Rust written so LLVM vectorizes them; on x86-64 they are compiled a
//! second time with AVX2 enabled and picked at run time (see [`crate::kernels::simd`]).

use super::PGeom;
use crate::Float;

/// True when the fast paths apply: no padding, no dilation, unit stride along W.
pub(super) fn applies(g: &PGeom, sx: isize) -> bool {
    g.p.padding == (0, 0) && g.p.dilation == (1, 1) && (sx == 1 || g.w <= 1)
}

/// One step of the arg-max rule: `(v, i)` replaces `(best, idx)` when `v > best` or `v` is
/// NaN. Written as selects so it vectorizes.
#[inline(always)]
fn step<T: Float>(best: &mut T, idx: &mut u32, v: T, i: u32) {
    let take = (v > *best) | v.is_nan();
    *best = if take { v } else { *best };
    *idx = if take { i } else { *idx };
}

/// Forward pass of one plane, 2×2 windows with stride 2.
///
/// # Safety
/// `xp` with row stride `sy` (unit column stride) addresses a live `(H, W)` plane of `g`.
#[inline(always)]
unsafe fn fwd_2x2<T: Float>(xp: *const T, sy: isize, g: &PGeom, dst: &mut [T]) {
    let ow = g.ow;
    for (oy, d) in dst.chunks_exact_mut(ow).enumerate() {
        // SAFETY: rows 2·oy and 2·oy + 1 < H, and 2·ow ≤ W (no padding, ceil_mode=False).
        let (r0, r1) = unsafe {
            let p0 = xp.offset(2 * oy as isize * sy);
            (std::slice::from_raw_parts(p0, 2 * ow), std::slice::from_raw_parts(p0.offset(sy), 2 * ow))
        };
        for ((o, a), b) in d.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
            let mut best = a[0];
            let mut i = 0;
            step(&mut best, &mut i, a[1], 1);
            step(&mut best, &mut i, b[0], 2);
            step(&mut best, &mut i, b[1], 3);
            *o = best;
        }
    }
}

/// Forward pass of one plane, any window and stride.
///
/// # Safety
/// As [`fwd_2x2`].
#[inline(always)]
unsafe fn fwd_any<T: Float>(xp: *const T, sy: isize, g: &PGeom, dst: &mut [T]) {
    let (kh, kw, sh, sw) = (g.kh, g.kw, g.p.stride.0, g.p.stride.1);
    for (oy, d) in dst.chunks_exact_mut(g.ow).enumerate() {
        // SAFETY: the window rows oy·sh .. oy·sh + kh are < H.
        let row = unsafe { xp.offset((oy * sh) as isize * sy) };
        for (ox, o) in d.iter_mut().enumerate() {
            // SAFETY: the window columns ox·sw .. ox·sw + kw are < W.
            let wp = unsafe { row.add(ox * sw) };
            let mut best = unsafe { *wp };
            for a in 0..kh {
                // SAFETY: a < kh.
                let r = unsafe { std::slice::from_raw_parts(wp.offset(a as isize * sy), kw) };
                for (b, &v) in r.iter().enumerate() {
                    if (a, b) != (0, 0) && (v > best || v.is_nan()) {
                        best = v;
                    }
                }
            }
            *o = best;
        }
    }
}

/// Backward pass of one plane, 2×2 windows with stride 2: writes every cell of `dst` (no
/// zero-fill first).
///
/// # Safety
/// As [`fwd_2x2`]; `gp` with strides `(gy, gx)` addresses a live `(oH, oW)` gradient plane.
#[inline(always)]
unsafe fn bwd_2x2<T: Float>(xp: *const T, sy: isize, gp: *const T, gy: isize, gx: isize, g: &PGeom, dst: &mut [T]) {
    let (w, ow, z) = (g.w, g.ow, T::zero());
    let (covered, tail) = dst.split_at_mut(2 * g.oh * w);
    tail.fill(z);
    for (oy, d) in covered.chunks_exact_mut(2 * w).enumerate() {
        // SAFETY: as in fwd_2x2; gradient row oy < oH.
        let (r0, r1, grow) = unsafe {
            let p0 = xp.offset(2 * oy as isize * sy);
            (
                std::slice::from_raw_parts(p0, 2 * ow),
                std::slice::from_raw_parts(p0.offset(sy), 2 * ow),
                gp.offset(oy as isize * gy),
            )
        };
        let (d0, d1) = d.split_at_mut(w);
        d0[2 * ow..].fill(z);
        d1[2 * ow..].fill(z);
        let (d0, d1) = (&mut d0[..2 * ow], &mut d1[..2 * ow]);
        if gx == 1 {
            // SAFETY: a unit-stride gradient row of oW elements.
            let gs = unsafe { std::slice::from_raw_parts(grow, ow) };
            route_2x2(r0, r1, |ox| gs[ox], d0, d1);
        } else {
            // SAFETY: ox < oW.
            route_2x2(r0, r1, |ox| unsafe { *grow.offset(ox as isize * gx) }, d0, d1);
        }
    }
}

/// One row of 2×2 windows: `r0`, `r1` are the two input rows (`2·oW` cells each), `grad(ox)`
/// the gradient of window `ox`; writes `0 + grad` at each arg-max and 0 elsewhere.
#[inline(always)]
fn route_2x2<T: Float>(r0: &[T], r1: &[T], grad: impl Fn(usize) -> T, d0: &mut [T], d1: &mut [T]) {
    let z = T::zero();
    let n = r0.len() / 2;
    let (r0, r1, d0, d1) = (&r0[..2 * n], &r1[..2 * n], &mut d0[..2 * n], &mut d1[..2 * n]);
    for ox in 0..n {
        let (a0, a1, b0, b1) = (r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]);
        let mut best = a0;
        let mut i = 0;
        step(&mut best, &mut i, a1, 1);
        step(&mut best, &mut i, b0, 2);
        step(&mut best, &mut i, b1, 3);
        let gv = z + grad(ox);
        d0[2 * ox] = if i == 0 { gv } else { z };
        d0[2 * ox + 1] = if i == 1 { gv } else { z };
        d1[2 * ox] = if i == 2 { gv } else { z };
        d1[2 * ox + 1] = if i == 3 { gv } else { z };
    }
}

/// Backward pass of one plane, any window and stride: `dst` is zero-filled, then each
/// gradient is added at its window's arg-max (windows may overlap).
///
/// # Safety
/// As [`bwd_2x2`].
#[inline(always)]
unsafe fn bwd_any<T: Float>(xp: *const T, sy: isize, gp: *const T, gy: isize, gx: isize, g: &PGeom, dst: &mut [T]) {
    let (kh, kw, sh, sw, w) = (g.kh, g.kw, g.p.stride.0, g.p.stride.1, g.w);
    dst.fill(T::zero());
    for oy in 0..g.oh {
        // SAFETY: as in fwd_any; gradient row oy < oH.
        let (row, grow) = unsafe { (xp.offset((oy * sh) as isize * sy), gp.offset(oy as isize * gy)) };
        for ox in 0..g.ow {
            // SAFETY: as in fwd_any.
            let wp = unsafe { row.add(ox * sw) };
            let mut best = unsafe { *wp };
            let (mut ba, mut bb) = (0, 0);
            for a in 0..kh {
                // SAFETY: a < kh.
                let r = unsafe { std::slice::from_raw_parts(wp.offset(a as isize * sy), kw) };
                for (b, &v) in r.iter().enumerate() {
                    if (a, b) != (0, 0) && (v > best || v.is_nan()) {
                        best = v;
                        (ba, bb) = (a, b);
                    }
                }
            }
            // SAFETY: ox < oW.
            dst[(oy * sh + ba) * w + ox * sw + bb] += unsafe { *grow.offset(ox as isize * gx) };
        }
    }
}

/// Which fast kernel a geometry gets.
fn is_2x2(g: &PGeom) -> bool {
    (g.kh, g.kw) == (2, 2) && g.p.stride == (2, 2)
}

/// The forward pass of one plane (`dst` is `(oH, oW)`), [`applies`] having been checked.
///
/// # Safety
/// `xp` with row stride `sy` (unit column stride) addresses a live `(H, W)` plane of `g`.
pub(super) unsafe fn forward_plane<T: Float>(xp: *const T, sy: isize, g: &PGeom, dst: &mut [T]) {
    if g.ow == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 is available; caller contract. The casts are identities (T is f32).
        return unsafe {
            match as_f32(xp, dst) {
                Some((xp, dst)) if is_2x2(g) => super::avx2::forward_plane(xp, sy, g, dst),
                _ => x86::forward_plane(xp, sy, g, dst),
            }
        };
    }
    // SAFETY: caller contract.
    unsafe {
        if is_2x2(g) {
            fwd_2x2(xp, sy, g, dst)
        } else {
            fwd_any(xp, sy, g, dst)
        }
    }
}

/// The backward pass of one plane (`dst` is `(H, W)` and fully overwritten), [`applies`]
/// having been checked.
///
/// # Safety
/// As [`forward_plane`]; `gp` with strides `(gy, gx)` addresses a live `(oH, oW)` plane.
pub(super) unsafe fn backward_plane<T: Float>(xp: *const T, sy: isize, gp: *const T, gy: isize, gx: isize, g: &PGeom, dst: &mut [T]) {
    if g.ow == 0 || g.oh == 0 {
        dst.fill(T::zero());
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 is available; caller contract. The casts are identities (T is f32).
        unsafe {
            match as_f32(xp, dst) {
                Some((xf, df)) if is_2x2(g) => {
                    let (covered, tail) = df.split_at_mut(2 * g.oh * g.w);
                    tail.fill(0.0);
                    if g.w > 2 * g.ow {
                        for row in covered.chunks_exact_mut(g.w) {
                            row[2 * g.ow..].fill(0.0);
                        }
                    }
                    super::avx2::backward_plane(xf, sy, gp.cast(), gy, gx, g, covered)
                }
                _ => x86::backward_plane(xp, sy, gp, gy, gx, g, dst),
            }
        }
        return;
    }
    // SAFETY: caller contract.
    unsafe {
        if is_2x2(g) {
            bwd_2x2(xp, sy, gp, gy, gx, g, dst)
        } else {
            bwd_any(xp, sy, gp, gy, gx, g, dst)
        }
    }
}

/// `xp` and `dst` as float32 when `T` is float32.
#[cfg(target_arch = "x86_64")]
fn as_f32<T: Float>(xp: *const T, dst: &mut [T]) -> Option<(*const f32, &mut [f32])> {
    if T::DTYPE != crate::DType::F32 {
        return None;
    }
    let (p, n) = (dst.as_mut_ptr().cast::<f32>(), dst.len());
    // SAFETY: T is f32 (its dtype says so), so the slice is the same memory with the same type.
    Some((xp.cast(), unsafe { std::slice::from_raw_parts_mut(p, n) }))
}

#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    use crate::kernels::simd::{level, SimdLevel};
    matches!(level(), SimdLevel::Avx2Fma | SimdLevel::Avx512)
}

/// The portable loops compiled with AVX2 enabled.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;

    /// # Safety
    /// The CPU must support AVX2; as [`super::forward_plane`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward_plane<T: Float>(xp: *const T, sy: isize, g: &PGeom, dst: &mut [T]) {
        // SAFETY: caller contract.
        unsafe {
            if is_2x2(g) {
                fwd_2x2(xp, sy, g, dst)
            } else {
                fwd_any(xp, sy, g, dst)
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX2; as [`super::backward_plane`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn backward_plane<T: Float>(xp: *const T, sy: isize, gp: *const T, gy: isize, gx: isize, g: &PGeom, dst: &mut [T]) {
        // SAFETY: caller contract.
        unsafe {
            if is_2x2(g) {
                bwd_2x2(xp, sy, gp, gy, gx, g, dst)
            } else {
                bwd_any(xp, sy, gp, gy, gx, g, dst)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{max_bwd, max_fwd, pool_geometry};
    use crate::kernels::conv::Conv2dParams;
    use crate::{DType, Tensor};

    fn rand_vals(seed: &mut u64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                match (*seed >> 33) % 64 {
                    0 => f32::NAN,
                    1 => f32::NEG_INFINITY,
                    2 => -0.0,
                    r => (r % 7) as f32 - 3.0,
                }
            })
            .collect()
    }

    /// The fast paths against the generic walk, bit for bit, forward and backward.
    #[test]
    fn fast_equals_generic() {
        let mut seed = 7;
        for &(h, w, k, s) in &[(28, 28, (2, 2), (2, 2)), (7, 9, (2, 2), (2, 2)), (9, 8, (3, 2), (2, 1)), (6, 7, (2, 3), (3, 4)), (5, 5, (1, 1), (1, 1))] {
            let p = Conv2dParams { stride: s, padding: (0, 0), dilation: (1, 1) };
            let g = pool_geometry("t", [3, 4, h, w], k, p, true).unwrap();
            let x = Tensor::from_vec(rand_vals(&mut seed, 12 * h * w), &[3, 4, h, w]).unwrap();
            let gr = Tensor::from_vec(rand_vals(&mut seed, 12 * g.oh * g.ow), &[3, 4, g.oh, g.ow]).unwrap();
            let mut outs = Vec::new();
            for fast in [true, false] {
                let mut o = Tensor::full(DType::F32, &[3, 4, g.oh, g.ow], f64::NAN).unwrap();
                max_fwd::<f32>("t", &x.view(), &g, &mut o, fast).unwrap();
                let mut d = Tensor::full(DType::F32, &[3, 4, h, w], f64::NAN).unwrap();
                max_bwd::<f32>("t", &x.view(), &gr.view(), &g, &mut d, fast).unwrap();
                let b = |t: &Tensor| t.to_vec_f64().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                outs.push((b(&o), b(&d)));
            }
            assert!(outs[0] == outs[1], "{h}x{w} k{k:?} s{s:?}");
        }
    }

    /// `GORGON_NUM_THREADS=1 cargo test --release --lib pool_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn pool_timing() {
        let mut seed = 1;
        for &(n, c, h) in &[(64usize, 32usize, 28usize), (64, 64, 14)] {
            let p = Conv2dParams { stride: (2, 2), padding: (0, 0), dilation: (1, 1) };
            let g = pool_geometry("t", [n, c, h, h], (2, 2), p, true).unwrap();
            let x = Tensor::from_vec(rand_vals(&mut seed, n * c * h * h), &[n, c, h, h]).unwrap();
            let gr = Tensor::from_vec(rand_vals(&mut seed, n * c * g.oh * g.ow), &[n, c, g.oh, g.ow]).unwrap();
            let mut o = Tensor::zeros(DType::F32, &[n, c, g.oh, g.ow]);
            let mut d = Tensor::zeros(DType::F32, &[n, c, h, h]);
            let mut best = [f64::INFINITY; 4];
            for _ in 0..30 {
                for (v, fast) in [true, false].into_iter().enumerate() {
                    let t = std::time::Instant::now();
                    max_fwd::<f32>("t", &x.view(), &g, &mut o, fast).unwrap();
                    best[v] = best[v].min(t.elapsed().as_secs_f64() * 1e3);
                    let t = std::time::Instant::now();
                    max_bwd::<f32>("t", &x.view(), &gr.view(), &g, &mut d, fast).unwrap();
                    best[2 + v] = best[2 + v].min(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            println!("{n}x{c}x{h}x{h}: fwd fast {:.3} ms generic {:.3} ms; bwd fast {:.3} ms generic {:.3} ms", best[0], best[1], best[2], best[3]);
        }
    }
}
