//! im2col and its adjoint col2im: the unrolling of an image into the patch matrix `col (K, P)`
//! and the scatter-add back.
//!
//! "Same"-size convolutions with stride 1 over contiguous rows (3×3 with padding 1, ...)
//! move each row of `col` as one run of the input plane ([`same_size_rows`]); other
//! geometries go output row by output row.

use super::Geom;
use crate::{Element, Float};

/// Output columns `[lo, hi)` whose tap at offset `off = j·d` lands inside `[0, len)` after
/// subtracting the padding: `0 ≤ o·s + off − pad < len`.
#[inline]
fn valid_range(n_out: usize, off: usize, pad: usize, s: usize, len: usize) -> (usize, usize) {
    let lo = if off >= pad { 0 } else { (pad - off).div_ceil(s) };
    let hi = if len + pad > off { (len + pad - off).div_ceil(s) } else { 0 };
    let hi = hi.min(n_out);
    let lo = lo.min(hi);
    (lo, hi)
}


/// True when the image's rows are contiguous (`W` apart, unit column stride) and, for every
/// tap, consecutive output rows read consecutive input rows at the same width (stride 1 and
/// `oW = W`, a "same" convolution such as 3×3 with padding 1). Then a row of `col` is one
/// contiguous run of the input plane, shifted, except for the few cells that fall on the
/// left/right padding: [`im2col_flat`] and [`col2im_flat`] move whole planes at once instead
/// of `oW`-long pieces.
fn same_size_rows(g: &Geom, xs: [isize; 3]) -> bool {
    g.p.stride == (1, 1) && g.ow == g.w && xs[2] == 1 && (xs[1] == g.w as isize || g.oh <= 1)
}

/// The part of tap row `(i, j)` that reads the input: output rows `[oy0, oy1)` and columns
/// `[lo, hi)`, and the offset `off` (in `(H, W)`-plane elements, may be negative) with
/// `col[q]` ↔ `plane[q + off]` for every `q = oy·oW + ox` inside it. `None` when the tap
/// reads no input cell.
#[inline]
fn flat_tap(g: &Geom, i: usize, j: usize) -> Option<(usize, usize, usize, usize, isize)> {
    let (oy0, oy1) = valid_range(g.oh, i * g.p.dilation.0, g.p.padding.0, 1, g.h);
    let (lo, hi) = valid_range(g.ow, j * g.p.dilation.1, g.p.padding.1, 1, g.w);
    if oy0 == oy1 || lo == hi {
        return None;
    }
    let dy = (i * g.p.dilation.0) as isize - g.p.padding.0 as isize;
    let dx = (j * g.p.dilation.1) as isize - g.p.padding.1 as isize;
    Some((oy0, oy1, lo, hi, dy * g.w as isize + dx))
}

/// Zeroes columns `[0, lo)` and `[hi, oW)` of output rows `[oy0, oy1)` of one `col` row:
/// a few strided stores per column (never a `memset` call per row).
#[inline]
fn zero_edges<T: Element>(dst: &mut [T], ow: usize, (oy0, oy1): (usize, usize), (lo, hi): (usize, usize)) {
    for t in (0..lo).chain(hi..ow) {
        for v in dst[oy0 * ow + t..].iter_mut().step_by(ow).take(oy1 - oy0) {
            *v = T::zero();
        }
    }
}

/// [`im2col`] for [`same_size_rows`] geometries: one copy per `col` row.
///
/// # Safety
/// As [`im2col`], with `xs = [cs, W, 1]`.
unsafe fn im2col_flat<T: Element>(x: *const T, cs: isize, g: &Geom, col: &mut [T]) {
    let (ow, pix) = (g.ow, g.oh * g.ow);
    if pix == 0 {
        return;
    }
    for (row, dst) in col.chunks_exact_mut(pix).take(g.k()).enumerate() {
        let (c, i, j) = (row / (g.kh * g.kw), row / g.kw % g.kh, row % g.kw);
        let Some((oy0, oy1, lo, hi, off)) = flat_tap(g, i, j) else {
            dst.fill(T::zero());
            continue;
        };
        let (start, end) = (oy0 * ow + lo, (oy1 - 1) * ow + hi);
        // SAFETY: plane cells start + off and end − 1 + off are real input cells (rows
        // oy0.., oy1 − 1 and columns lo, hi − 1 of the tap), and the plane is contiguous, so
        // the whole run between them lies inside it.
        let src = unsafe { std::slice::from_raw_parts(x.offset(c as isize * cs + start as isize + off), end - start) };
        dst[..start].fill(T::zero());
        dst[start..end].copy_from_slice(src);
        dst[end..].fill(T::zero());
        // The run also copied the neighbouring rows' cells where the tap is in the padding.
        zero_edges(dst, ow, (oy0, oy1), (lo, hi));
    }
}

/// [`col2im`] for [`same_size_rows`] geometries: one run of additions per `col` row, after
/// zeroing the row's padding cells in `col`. Each output cell receives the same values in the
/// same order as [`col2im_rows`] (plus `+0`s, which leave a sum that started at `+0`
/// unchanged), so the results are identical.
fn col2im_flat<T: Float>(col: &mut [T], g: &Geom, out: &mut [T]) {
    let (ow, pix, plane) = (g.ow, g.oh * g.ow, g.h * g.w);
    if pix == 0 {
        return;
    }
    for (row, src) in col.chunks_exact_mut(pix).take(g.k()).enumerate() {
        let (c, i, j) = (row / (g.kh * g.kw), row / g.kw % g.kh, row % g.kw);
        let Some((oy0, oy1, lo, hi, off)) = flat_tap(g, i, j) else {
            continue;
        };
        zero_edges(src, ow, (oy0, oy1), (lo, hi));
        let (start, end) = (oy0 * ow + lo, (oy1 - 1) * ow + hi);
        let o0 = (start as isize + off) as usize;
        let dst = &mut out[c * plane + o0..c * plane + o0 + (end - start)];
        for (d, &v) in dst.iter_mut().zip(&src[start..end]) {
            *d += v;
        }
    }
}

/// Unrolls one image (`x` points at `[n, 0, 0, 0]`, `xs` = strides of C, H, W) into
/// `col (K, P)` row-major.
///
/// # Safety
/// `x` with strides `xs` must address a live `(C, H, W)` array matching `g`.
pub(super) unsafe fn im2col<T: Element>(x: *const T, xs: [isize; 3], g: &Geom, col: &mut [T]) {
    if same_size_rows(g, xs) {
        // SAFETY: forwarded; the layout condition was just checked.
        return unsafe { im2col_flat(x, xs[0], g, col) };
    }
    // SAFETY: forwarded.
    unsafe { im2col_rows(x, xs, g, col) }
}

/// [`im2col`] one output row at a time: any geometry and strides.
///
/// # Safety
/// As [`im2col`].
unsafe fn im2col_rows<T: Element>(x: *const T, xs: [isize; 3], g: &Geom, col: &mut [T]) {
    let (sh, sw) = g.p.stride;
    let (ph, pw) = g.p.padding;
    let (dh, dw) = g.p.dilation;
    let (oh, ow) = (g.oh, g.ow);
    let pix = oh * ow;
    let mut row = 0;
    for c in 0..g.c {
        // SAFETY: c < C.
        let xc = unsafe { x.offset(c as isize * xs[0]) };
        for i in 0..g.kh {
            for j in 0..g.kw {
                let dst = &mut col[row * pix..(row + 1) * pix];
                let (lo, hi) = valid_range(ow, j * dw, pw, sw, g.w);
                for oy in 0..oh {
                    let d = &mut dst[oy * ow..(oy + 1) * ow];
                    let iy = (oy * sh + i * dh) as isize - ph as isize;
                    if iy < 0 || iy >= g.h as isize || lo == hi {
                        d.fill(T::zero());
                        continue;
                    }
                    d[..lo].fill(T::zero());
                    d[hi..].fill(T::zero());
                    let ix0 = (lo * sw + j * dw) as isize - pw as isize;
                    // SAFETY: 0 ≤ iy < H and every ix = ix0 + t·sw for t < hi−lo is in [0, W).
                    unsafe {
                        let xr = xc.offset(iy * xs[1] + ix0 * xs[2]);
                        if sw == 1 && xs[2] == 1 {
                            d[lo..hi].copy_from_slice(std::slice::from_raw_parts(xr, hi - lo));
                        } else {
                            let step = sw as isize * xs[2];
                            for (t, v) in d[lo..hi].iter_mut().enumerate() {
                                *v = *xr.offset(t as isize * step);
                            }
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// Adds `col (K, P)` back onto one image `out (C, H, W)` (contiguous): the adjoint of im2col.
/// `col` is scratch: its cells that fall on padding may be overwritten.
pub(super) fn col2im<T: Float>(col: &mut [T], g: &Geom, out: &mut [T]) {
    if same_size_rows(g, [(g.h * g.w) as isize, g.w as isize, 1]) {
        return col2im_flat(col, g, out);
    }
    col2im_rows(col, g, out)
}

/// [`col2im`] one output row at a time: any geometry.
fn col2im_rows<T: Float>(col: &[T], g: &Geom, out: &mut [T]) {
    let (sh, sw) = g.p.stride;
    let (ph, pw) = g.p.padding;
    let (dh, dw) = g.p.dilation;
    let (oh, ow) = (g.oh, g.ow);
    let (h, w) = (g.h, g.w);
    let pix = oh * ow;
    let mut row = 0;
    for c in 0..g.c {
        let oc = &mut out[c * h * w..(c + 1) * h * w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let src = &col[row * pix..(row + 1) * pix];
                let (lo, hi) = valid_range(ow, j * dw, pw, sw, w);
                row += 1;
                if lo == hi {
                    continue;
                }
                for oy in 0..oh {
                    let iy = (oy * sh + i * dh) as isize - ph as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let s = &src[oy * ow + lo..oy * ow + hi];
                    let ix0 = lo * sw + j * dw - pw;
                    let orow = &mut oc[iy as usize * w..(iy as usize + 1) * w];
                    if sw == 1 {
                        for (d, &v) in orow[ix0..ix0 + (hi - lo)].iter_mut().zip(s) {
                            *d += v;
                        }
                    } else {
                        for (t, &v) in s.iter().enumerate() {
                            orow[ix0 + t * sw] += v;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::{geometry, Conv2dParams};

    fn vals(seed: &mut u64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                match (*seed >> 33) % 40 {
                    0 => f64::NAN,
                    1 => -0.0,
                    2 => f64::INFINITY,
                    r => r as f64 / 7.0 - 3.0,
                }
            })
            .collect()
    }

    fn same_bits(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    /// The whole-plane paths against the row-by-row ones, bit for bit, on every "same"
    /// geometry shape: odd sizes, non-square kernels, dilation, no vertical padding.
    #[test]
    fn flat_paths_equal_row_paths() {
        let mut seed = 3;
        // (C, H, W, kH, kW, padding, dilation)
        let cases = [
            (3, 14, 14, 3, 3, (1, 1), (1, 1)),
            (2, 5, 7, 3, 3, (1, 1), (1, 1)),
            (2, 6, 9, 5, 5, (2, 2), (1, 1)),
            (1, 7, 6, 3, 3, (2, 2), (2, 2)),
            (2, 4, 5, 1, 3, (0, 1), (1, 1)),
            (2, 6, 5, 3, 1, (0, 0), (1, 1)),
            (1, 6, 4, 5, 3, (0, 1), (1, 1)),
            (2, 2, 3, 3, 3, (1, 1), (1, 1)),
            (1, 1, 1, 3, 3, (1, 1), (1, 1)),
            (1, 2, 2, 5, 5, (2, 2), (1, 1)),
        ];
        for &(c, h, w, kh, kw, pd, d) in &cases {
            let p = Conv2dParams { stride: (1, 1), padding: pd, dilation: d };
            let g = geometry("t", [1, c, h, w], 1, (kh, kw), p).unwrap();
            let xs = [(h * w) as isize, w as isize, 1];
            assert!(same_size_rows(&g, xs), "{c} {h} {w} {kh} {kw}");
            let what = format!("C{c} {h}x{w} k{kh}x{kw} p{pd:?} d{d:?}");
            let x = vals(&mut seed, c * h * w);
            let n = g.k() * g.pix();
            let (mut a, mut b) = (vals(&mut seed, n), vals(&mut seed, n));
            unsafe {
                im2col_flat(x.as_ptr(), xs[0], &g, &mut a);
                im2col_rows(x.as_ptr(), xs, &g, &mut b);
            }
            assert!(same_bits(&a, &b), "im2col {what}");
            let col = vals(&mut seed, n);
            let (mut oa, mut ob) = (vec![0.0; c * h * w], vec![0.0; c * h * w]);
            col2im_flat(&mut col.clone(), &g, &mut oa);
            col2im_rows(&col, &g, &mut ob);
            assert!(same_bits(&oa, &ob), "col2im {what}");
        }
        // Not "same": strided, or narrower output.
        let g = geometry("t", [1, 1, 6, 6], 1, (3, 3), Conv2dParams { stride: (2, 2), padding: (1, 1), dilation: (1, 1) }).unwrap();
        assert!(!same_size_rows(&g, [36, 6, 1]));
        let g = geometry("t", [1, 1, 6, 6], 1, (3, 3), Conv2dParams { stride: (1, 1), padding: (0, 0), dilation: (1, 1) }).unwrap();
        assert!(!same_size_rows(&g, [36, 6, 1]));
        let g = geometry("t", [1, 1, 6, 6], 1, (3, 3), Conv2dParams { stride: (1, 1), padding: (1, 1), dilation: (1, 1) }).unwrap();
        assert!(!same_size_rows(&g, [72, 12, 1]) && !same_size_rows(&g, [36, 6, 2]));
    }

    #[test]
    fn valid_range_matches_definition() {
        for n_out in 0..6 {
            for off in 0..7 {
                for pad in 0..4 {
                    for s in 1..4 {
                        for len in 0..6 {
                            let inside = |o: usize| {
                                let i = (o * s + off) as isize - pad as isize;
                                i >= 0 && i < len as isize
                            };
                            let (lo, hi) = valid_range(n_out, off, pad, s, len);
                            assert!(lo <= hi && hi <= n_out);
                            for o in 0..n_out {
                                assert_eq!(inside(o), o >= lo && o < hi, "{n_out} {off} {pad} {s} {len} o={o}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// `cargo test --release --lib im2col_timing -- --ignored --nocapture`: the convnet's
    /// second layer (32 channels, 14×14, 3×3, padding 1), 64 images, both paths.
    #[test]
    #[ignore]
    fn im2col_timing() {
        let p = Conv2dParams { stride: (1, 1), padding: (1, 1), dilation: (1, 1) };
        for &(c, h) in &[(32usize, 14usize), (1, 28)] {
            let g = geometry("t", [1, c, h, h], 1, (3, 3), p).unwrap();
            let xs = [(h * h) as isize, h as isize, 1];
            let x: Vec<f32> = (0..c * h * h).map(|i| i as f32).collect();
            let mut col = vec![0f32; g.k() * g.pix()];
            let mut out = vec![0f32; c * h * h];
            let mut best = [f64::INFINITY; 4];
            for _ in 0..20 {
                for (v, slot) in best.iter_mut().enumerate() {
                    let t = std::time::Instant::now();
                    for _ in 0..64 {
                        match v {
                            0 => unsafe { im2col_rows(x.as_ptr(), xs, &g, &mut col) },
                            1 => unsafe { im2col_flat(x.as_ptr(), xs[0], &g, &mut col) },
                            2 => col2im_rows(&col, &g, &mut out),
                            _ => col2im_flat(&mut col, &g, &mut out),
                        }
                    }
                    *slot = slot.min(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            println!("C{c} {h}x{h} x64: im2col rows {:.3} ms flat {:.3} ms; col2im rows {:.3} ms flat {:.3} ms", best[0], best[1], best[2], best[3]);
        }
    }
}
