//! im2col and its adjoint col2im: the unrolling of an image into the patch matrix `col (K, P)`
//! and the scatter-add back.

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

/// Unrolls one image (`x` points at `[n, 0, 0, 0]`, `xs` = strides of C, H, W) into
/// `col (K, P)` row-major.
///
/// # Safety
/// `x` with strides `xs` must address a live `(C, H, W)` array matching `g`.
pub(super) unsafe fn im2col<T: Element>(x: *const T, xs: [isize; 3], g: &Geom, col: &mut [T]) {
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
pub(super) fn col2im<T: Float>(col: &[T], g: &Geom, out: &mut [T]) {
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
}
