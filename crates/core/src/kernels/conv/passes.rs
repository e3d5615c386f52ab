//! The typed forward and backward passes: per image an im2col (or a direct view for
//! pointwise convolutions) and one GEMM, split over the batch.

use super::gemm::{gemm_in, ConvFloat, Mat};
use super::im2col::{col2im, im2col};
use super::plumbing::{as_matrix, for_each_item, max_threads, merged_stride, out_slice, raw4, typed, with_buf};
use super::Geom;
use crate::kernels::threads::SendPtr;
use crate::{Element, Result, Tensor, TensorView};
use ndarray::{ArrayViewD, CowArray, IxDyn};
use rayon::prelude::*;

/// The typed operands `(a, b)` and output elements of a pass, or `None` when there is nothing
/// to compute: `out` is empty, or the pass is an empty sum (`zero`; `out` is zeroed).
#[allow(clippy::type_complexity)]
fn operands<'a, 'b, 'o, T: Element>(
    op: &'static str,
    a: &TensorView<'a>,
    b: &TensorView<'b>,
    out: &'o mut Tensor,
    zero: bool,
) -> Result<Option<(ArrayViewD<'a, T>, ArrayViewD<'b, T>, &'o mut [T])>> {
    let a = typed::<T>(op, a)?;
    let b = typed::<T>(op, b)?;
    let out = out_slice::<T>(op, out)?;
    if out.is_empty() {
        return Ok(None);
    }
    if zero {
        out.fill(T::zero());
        return Ok(None);
    }
    Ok(Some((a, b, out)))
}

/// `grad (N, O, oH, oW)` as one `(O, oH·oW)` matrix per image, copied once to standard layout
/// when its spatial axes do not merge.
struct GradImages<'a, T> {
    /// Keeps a copied gradient alive while `ptr` points into it.
    _data: CowArray<'a, T, IxDyn>,
    ptr: SendPtr<T>,
    strides: [isize; 4],
    cs: isize,
}

impl<'a, T: Element> GradImages<'a, T> {
    fn new(grad: ArrayViewD<'a, T>) -> Self {
        let data: CowArray<'a, T, IxDyn> = match merged_stride(&grad.shape()[2..], &grad.strides()[2..]) {
            Some(_) => CowArray::from(grad),
            None => CowArray::from(grad.as_standard_layout().into_owned()),
        };
        let (ptr, strides, cs) = {
            let v = data.view();
            let (ptr, strides) = raw4(&v);
            (ptr, strides, merged_stride(&v.shape()[2..], &v.strides()[2..]).unwrap_or(1))
        };
        // Moving `data` keeps its elements where they are (a view, or an owned heap buffer).
        GradImages { _data: data, ptr, strides, cs }
    }

    /// Image `n`'s `(O, P)` matrix.
    ///
    /// # Safety
    /// `n < N`.
    #[inline]
    unsafe fn image(&self, n: usize) -> Mat<T> {
        // SAFETY: caller contract.
        Mat { ptr: unsafe { self.ptr.get().offset(n as isize * self.strides[0]) }, rs: self.strides[1], cs: self.cs }
    }
}

pub(super) fn conv2d_t<T: ConvFloat>(op: &'static str, x: &TensorView, w: &TensorView, g: &Geom, out: &mut Tensor) -> Result<()> {
    let (k, pix, o) = (g.k(), g.pix(), g.o);
    let Some((x, w, out)) = operands::<T>(op, x, w, out, k == 0)? else {
        return Ok(());
    };
    let (wm, w_rs, w_cs) = as_matrix(&w);
    let wmat = SendPtr(wm.as_ptr());
    let (xp, xs) = raw4(&x);
    let pointwise = if g.is_pointwise() { merged_stride(&x.shape()[2..], &x.strides()[2..]) } else { None };

    let parts = if g.parallel() { max_threads() } else { 1 };
    let par = parts > 1;
    for_each_item(out, o * pix, parts, |n, dst| {
        let a = Mat { ptr: wmat.get(), rs: w_rs, cs: w_cs };
        // SAFETY: n < N so the image offset is in bounds.
        let xn = unsafe { xp.get().offset(n as isize * xs[0]) };
        if let Some(ps) = pointwise {
            let b = Mat { ptr: xn, rs: xs[1], cs: ps };
            // SAFETY: W is (O, K=C), x[n] is (C, P) with the strides above, dst is (O, P).
            unsafe { gemm_in(par, o, k, pix, a, b, T::zero(), dst, pix) };
            return Ok(());
        }
        with_buf(T::scratch(), k * pix, |col| {
            // SAFETY: x[n] is a live (C, H, W) array with strides xs[1..].
            unsafe { im2col(xn, [xs[1], xs[2], xs[3]], g, col) };
            let b = Mat { ptr: col.as_ptr(), rs: pix as isize, cs: 1 };
            // SAFETY: W (O, K), col (K, P), dst (O, P) contiguous and distinct from both.
            unsafe { gemm_in(par, o, k, pix, a, b, T::zero(), dst, pix) };
        })
    })
}

pub(super) fn conv2d_bi_t<T: ConvFloat>(op: &'static str, grad: &TensorView, w: &TensorView, g: &Geom, out: &mut Tensor) -> Result<()> {
    let (k, pix, o) = (g.k(), g.pix(), g.o);
    let img = g.c * g.h * g.w;
    let Some((grad, w, out)) = operands::<T>(op, grad, w, out, k == 0 || o == 0)? else {
        return Ok(());
    };
    let (wm, w_rs, w_cs) = as_matrix(&w);
    let wmat = SendPtr(wm.as_ptr());
    let grads = GradImages::new(grad);
    let pointwise = g.is_pointwise();

    let parts = if g.parallel() { max_threads() } else { 1 };
    let par = parts > 1;
    for_each_item(out, img, parts, |n, dst| {
        // Wᵀ: (K, O).
        let a = Mat { ptr: wmat.get(), rs: w_cs, cs: w_rs };
        // SAFETY: n < N.
        let b = unsafe { grads.image(n) };
        if pointwise {
            // SAFETY: Wᵀ (C, O) · grad[n] (O, H·W) → dst (C, H·W) contiguous.
            unsafe { gemm_in(par, k, o, pix, a, b, T::zero(), dst, pix) };
            return Ok(());
        }
        with_buf(T::scratch(), k * pix, |col| {
            // SAFETY: Wᵀ (K, O), grad[n] (O, P), col (K, P) contiguous and private.
            unsafe { gemm_in(par, k, o, pix, a, b, T::zero(), col, pix) };
            dst.fill(T::zero());
            col2im(col, g, dst);
        })
    })
}

pub(super) fn conv2d_bw_t<T: ConvFloat>(op: &'static str, x: &TensorView, grad: &TensorView, g: &Geom, out: &mut Tensor) -> Result<()> {
    let (k, pix, o) = (g.k(), g.pix(), g.o);
    let Some((x, grad, out)) = operands::<T>(op, x, grad, out, g.n == 0 || pix == 0)? else {
        return Ok(());
    };
    let grads = GradImages::new(grad);
    let (xp, xst) = raw4(&x);
    let pointwise = if g.is_pointwise() { merged_stride(&x.shape()[2..], &x.strides()[2..]) } else { None };

    let chunks = if g.parallel() { max_threads().min(g.n) } else { 1 };
    let par = chunks > 1;
    // Sums images [lo, hi) into dst (O, K), overwriting it.
    let range = |lo: usize, hi: usize, dst: &mut [T]| -> Result<()> {
        // SAFETY: n < N.
        let x_n = |n: usize| unsafe { xp.get().offset(n as isize * xst[0]) };
        if let Some(ps) = pointwise {
            for n in lo..hi {
                let beta = if n == lo { T::zero() } else { T::one() };
                // x[n]ᵀ: (P, C).
                let b = Mat { ptr: x_n(n), rs: ps, cs: xst[1] };
                // SAFETY: grad[n] (O, P) · x[n]ᵀ (P, C) → dst (O, C); n < N.
                unsafe { gemm_in(par, o, pix, k, grads.image(n), b, beta, dst, k) };
            }
            return Ok(());
        }
        with_buf(T::scratch(), k * pix, |col| {
            for n in lo..hi {
                let beta = if n == lo { T::zero() } else { T::one() };
                // SAFETY: x[n] is a live (C, H, W) array with strides xst[1..].
                unsafe { im2col(x_n(n), [xst[1], xst[2], xst[3]], g, col) };
                let b = Mat { ptr: col.as_ptr(), rs: 1, cs: pix as isize };
                // SAFETY: grad[n] (O, P) · colᵀ (P, K) → dst (O, K); n < N.
                unsafe { gemm_in(par, o, pix, k, grads.image(n), b, beta, dst, k) };
            }
        })
    };

    if chunks <= 1 {
        return range(0, g.n, out);
    }
    let bounds = |i: usize| i * g.n / chunks;
    let ok = out.len();
    let mut go = |partials: &mut [T]| -> Result<()> {
        let (r0, r1) = rayon::join(
            || range(bounds(0), bounds(1), &mut *out),
            || {
                partials
                    .par_chunks_mut(ok)
                    .enumerate()
                    .try_for_each(|(i, dst)| range(bounds(i + 1), bounds(i + 2), dst))
            },
        );
        r0?;
        r1?;
        for part in partials.chunks(ok) {
            for (d, &v) in out.iter_mut().zip(part) {
                *d += v;
            }
        }
        Ok(())
    };
    with_buf(T::partials(), (chunks - 1) * ok, |parts| go(parts))?
}

#[cfg(test)]
mod tests {
    use super::super::{conv2d, conv2d_backward_input, conv2d_backward_weight, Conv2dParams};
    use crate::{DType, Tensor};

    /// `cargo test --release --lib conv_timing -- --ignored --nocapture` (the convnet's layers).
    #[test]
    #[ignore]
    fn conv_timing() {
        let p = Conv2dParams { stride: (1, 1), padding: (1, 1), dilation: (1, 1) };
        for &(n, c, o, h) in &[(64usize, 1usize, 32usize, 28usize), (64, 32, 64, 14)] {
            let x = Tensor::from_vec((0..n * c * h * h).map(|i| (i % 13) as f32 - 6.0).collect::<Vec<_>>(), &[n, c, h, h]).unwrap();
            let w = Tensor::from_vec((0..o * c * 9).map(|i| (i % 7) as f32 - 3.0).collect::<Vec<_>>(), &[o, c, 3, 3]).unwrap();
            let gr = Tensor::from_vec((0..n * o * h * h).map(|i| (i % 5) as f32 - 2.0).collect::<Vec<_>>(), &[n, o, h, h]).unwrap();
            let mut out = Tensor::zeros(DType::F32, &[n, o, h, h]);
            let mut dx = Tensor::zeros(DType::F32, &[n, c, h, h]);
            let mut dw = Tensor::zeros(DType::F32, &[o, c, 3, 3]);
            let mut best = [f64::INFINITY; 3];
            for _ in 0..20 {
                let t = std::time::Instant::now();
                conv2d(&x.view(), &w.view(), p, &mut out).unwrap();
                best[0] = best[0].min(t.elapsed().as_secs_f64() * 1e3);
                let t = std::time::Instant::now();
                conv2d_backward_input(&gr.view(), &w.view(), p, &mut dx).unwrap();
                best[1] = best[1].min(t.elapsed().as_secs_f64() * 1e3);
                let t = std::time::Instant::now();
                conv2d_backward_weight(&x.view(), &gr.view(), p, &mut dw).unwrap();
                best[2] = best[2].min(t.elapsed().as_secs_f64() * 1e3);
            }
            let gf = |ms: f64| 2.0 * (n * o * c * 9 * h * h) as f64 / ms / 1e6;
            println!(
                "N{n} C{c} O{o} {h}x{h}: fwd {:.3} ms ({:.0} GF/s), bwd input {:.3} ms ({:.0}), bwd weight {:.3} ms ({:.0})",
                best[0], gf(best[0]), best[1], gf(best[1]), best[2], gf(best[2])
            );
        }
    }
}
