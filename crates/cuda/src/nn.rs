//! Kernel launches for the neural-network families: matrix products through cuBLAS
//! (row-major handled by swapping operands: Cᵀ = Bᵀ·Aᵀ), 2-D convolution by im2col + GEMM
//! with both backward passes, max/average pooling, and the fused solver updates. Shapes and
//! dtypes are checked like the CPU kernels of `gorgon_core::kernels` (float32/float64 only).
//!
//! Only with the `cuda` feature.

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{DevicePtr, DevicePtrMut, DeviceRepr, PushKernelArg};
use gorgon_core::error::fmt_shape;
use gorgon_core::kernels::conv::Conv2dParams;
use gorgon_core::kernels::reduce::ReduceOp;
use gorgon_core::shape::broadcast_shapes;
use gorgon_core::{CoreError, DType, Element, Result};

use crate::device::{cfg_elems, expect_dtype, expect_shape, CudaBuffer, CudaDevice, DevElem};
use crate::layout::ConvGeom;
use crate::ops::{cudarc_zero, dtype_arm, launch, with_dtype};
use crate::CudaError;

/// Which fused solver update to run (PyTorch's optimizer of the same name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Update {
    /// `w ← w − lr·g`; no state.
    Sgd,
    /// SGD with momentum (and optional dampening / Nesterov); state: momentum buffer.
    SgdMomentum,
    /// Adam, or AdamW when `weight_decay != 0`; state: first and second moments.
    Adam,
    /// RMSProp (not centered, no momentum); state: square average.
    RmsProp,
    /// AdaGrad; state: sum of squares.
    AdaGrad,
    /// AdaDelta; state: square average, accumulated delta.
    AdaDelta,
}

impl Update {
    /// How many state buffers (each shaped like the parameter, zero-initialized) it needs.
    ///
    /// ```
    /// assert_eq!(gorgon_cuda::Update::Adam.state_count(), 2);
    /// ```
    pub fn state_count(self) -> usize {
        match self {
            Update::Sgd => 0,
            Update::SgdMomentum | Update::RmsProp | Update::AdaGrad => 1,
            Update::Adam | Update::AdaDelta => 2,
        }
    }

    fn kernel(self) -> &'static str {
        match self {
            Update::Sgd => "sgd",
            Update::SgdMomentum => "sgd_momentum",
            Update::Adam => "adam",
            Update::RmsProp => "rmsprop",
            Update::AdaGrad => "adagrad",
            Update::AdaDelta => "adadelta",
        }
    }
}

/// Hyper-parameters of one solver step; mirrors `struct OptimParams` in `kernels/optim.cu`.
/// The gradient is preprocessed as `g·scale`, clipped to `±clip` when `clip > 0`, then
/// `+ l2·w + l1·sign(w)`, before the update itself.
///
/// ```
/// let p = gorgon_cuda::UpdateParams { lr: 1e-3, step: 1, ..Default::default() };
/// assert_eq!(p.beta1, 0.9);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateParams {
    /// Learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD dampening.
    pub dampening: f64,
    /// Adam β₁.
    pub beta1: f64,
    /// Adam β₂.
    pub beta2: f64,
    /// RMSProp smoothing constant α.
    pub alpha: f64,
    /// AdaDelta decay ρ.
    pub rho: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 for plain Adam.
    pub weight_decay: f64,
    /// Gradient scale, usually `1 / batch_size`.
    pub scale: f64,
    /// Clip each gradient element to ±clip when > 0.
    pub clip: f64,
    /// L1 penalty.
    pub l1: f64,
    /// L2 penalty (PyTorch's coupled `weight_decay`).
    pub l2: f64,
    /// Step number, 1 for the first update (bias correction, momentum initialization).
    pub step: i64,
    /// Nonzero for Nesterov momentum.
    pub nesterov: i64,
}

impl Default for UpdateParams {
    fn default() -> Self {
        UpdateParams {
            lr: 0.01,
            momentum: 0.0,
            dampening: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            alpha: 0.99,
            rho: 0.9,
            eps: 1e-8,
            weight_decay: 0.0,
            scale: 1.0,
            clip: 0.0,
            l1: 0.0,
            l2: 0.0,
            step: 1,
            nesterov: 0,
        }
    }
}

// SAFETY: #[repr(C)] plain-old-data mirror of OptimParams in kernels/optim.cu.
unsafe impl DeviceRepr for UpdateParams {}

/// One (possibly batched) row-major GEMM: `c[i] = alpha·op(a[i])·op(b[i]) + beta·c[i]` for
/// `i < batch`, where op(a) is `m×k` and op(b) is `k×n`; `ta`/`tb` say the stored matrix is
/// the transpose; a stride of 0 reuses one matrix for every batch entry.
#[derive(Clone, Copy, Debug)]
struct RowMajorGemm {
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    batch: usize,
    stride_a: usize,
    stride_b: usize,
    stride_c: usize,
    alpha: f64,
    beta: f64,
}

fn to_c_int(v: usize) -> std::result::Result<i32, CudaError> {
    i32::try_from(v).map_err(|_| CudaError::Unsupported { op: format!("GEMM dimension {v} exceeds cuBLAS's int range") })
}

fn gemm_on<T, A, B, C>(blas: &CudaBlas, g: RowMajorGemm, a: &A, b: &B, c: &mut C) -> std::result::Result<(), CudaError>
where
    T: Element,
    CudaBlas: Gemm<T>,
    A: DevicePtr<T>,
    B: DevicePtr<T>,
    C: DevicePtrMut<T>,
{
    if g.m == 0 || g.n == 0 || g.batch == 0 {
        return Ok(());
    }
    let op = |t: bool| if t { cublasOperation_t::CUBLAS_OP_T } else { cublasOperation_t::CUBLAS_OP_N };
    // Column-major view: Cᵀ (n×m) = op(B)ᵀ (n×k) · op(A)ᵀ (k×m); the row-major buffers of
    // B and A are exactly those column-major transposes (or their transposes when t*).
    let cfg = GemmConfig {
        transa: op(g.tb),
        transb: op(g.ta),
        m: to_c_int(g.n)?,
        n: to_c_int(g.m)?,
        k: to_c_int(g.k)?,
        alpha: T::from_f64(g.alpha),
        lda: to_c_int(if g.tb { g.k } else { g.n }.max(1))?,
        ldb: to_c_int(if g.ta { g.m } else { g.k }.max(1))?,
        beta: T::from_f64(g.beta),
        ldc: to_c_int(g.n.max(1))?,
    };
    // SAFETY: the callers size a, b and c for `batch` matrices of the stated shapes/strides.
    unsafe {
        if g.batch == 1 {
            blas.gemm(cfg, b, a, c)?;
        } else {
            let sb = StridedBatchedConfig {
                gemm: cfg,
                batch_size: to_c_int(g.batch)?,
                stride_a: g.stride_b as i64,
                stride_b: g.stride_a as i64,
                stride_c: g.stride_c as i64,
            };
            blas.gemm_strided_batched(sb, b, a, c)?;
        }
    }
    Ok(())
}

impl CudaDevice {
    fn gemm_buffers(&mut self, g: RowMajorGemm, a: &CudaBuffer, b: &CudaBuffer, c: &mut CudaBuffer) -> Result<()> {
        self.ctx.bind_to_thread().map_err(CudaError::from)?;
        match c.dtype() {
            DType::F32 => gemm_on(&self.blas, g, f32::slice(a), f32::slice(b), f32::slice_mut(c))?,
            DType::F64 => gemm_on(&self.blas, g, f64::slice(a), f64::slice(b), f64::slice_mut(c))?,
            dt => return Err(CoreError::DType { op: "matmul", dtype: dt, detail: "cuBLAS GEMM needs float32 or float64".into() }),
        }
        Ok(())
    }

    /// `out = a @ b` following `np.matmul` for operands of at least 2 dimensions: `a` is
    /// `(..., m, k)`, `b` is `(..., k, n)`, batch dimensions broadcast, `out` is
    /// `(batch..., m, n)`. float32/float64 through cuBLAS.
    pub fn matmul(&mut self, a: &CudaBuffer, b: &CudaBuffer, out: &mut CudaBuffer) -> Result<()> {
        self.matmul_t(a, false, b, false, out)
    }

    /// Like [`matmul`](Self::matmul), but `trans_a` / `trans_b` say the operand is stored
    /// transposed in its last two axes (`aᵀ @ b` without a copy, for gradients).
    pub fn matmul_t(&mut self, a: &CudaBuffer, trans_a: bool, b: &CudaBuffer, trans_b: bool, out: &mut CudaBuffer) -> Result<()> {
        let dt = a.dtype();
        expect_dtype("matmul", b, dt)?;
        expect_dtype("matmul", out, dt)?;
        let (sa, sb) = (a.shape(), b.shape());
        if sa.len() < 2 || sb.len() < 2 {
            return Err(CoreError::Shape { op: "matmul", detail: format!("operands {} and {} must be at least 2-D", fmt_shape(sa), fmt_shape(sb)) });
        }
        let last2 = |s: &[usize], t: bool| {
            let (r, c) = (s[s.len() - 2], s[s.len() - 1]);
            if t { (c, r) } else { (r, c) }
        };
        let ((m, k), (k2, n)) = (last2(sa, trans_a), last2(sb, trans_b));
        if k != k2 {
            return Err(CoreError::Shape {
                op: "matmul",
                detail: format!("{} @ {}: inner dimensions {k} and {k2} differ", fmt_shape(sa), fmt_shape(sb)),
            });
        }
        let (ba, bb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
        let batch_shape = broadcast_shapes(ba, bb)?;
        let mut want = batch_shape.clone();
        want.extend_from_slice(&[m, n]);
        expect_shape("matmul", "output", out, &want)?;
        let batch: usize = batch_shape.iter().product();
        // An operand whose batch dims are not the full batch (nor a single matrix) is
        // materialized broadcast first.
        let mut expand = |x: &CudaBuffer, bx: &[usize]| -> Result<Option<CudaBuffer>> {
            let nb: usize = bx.iter().product();
            // One matrix (stride 0) or the full batch (bx broadcasts to it with equal size).
            if nb == 1 || nb == batch {
                return Ok(None);
            }
            let mut full = batch_shape.clone();
            full.extend_from_slice(&x.shape()[x.shape().len() - 2..]);
            let mut tmp = self.alloc_uninit(dt, &full)?;
            self.broadcast_to(x, &mut tmp)?;
            Ok(Some(tmp))
        };
        let ea = expand(a, ba)?;
        let eb = expand(b, bb)?;
        let (a2, b2) = (ea.as_ref().unwrap_or(a), eb.as_ref().unwrap_or(b));
        let stride = |x: &CudaBuffer, per: usize| if x.len() == per { 0 } else { per };
        let g = RowMajorGemm {
            m,
            n,
            k,
            ta: trans_a,
            tb: trans_b,
            batch,
            stride_a: stride(a2, m * k),
            stride_b: stride(b2, k * n),
            stride_c: m * n,
            alpha: 1.0,
            beta: 0.0,
        };
        if k == 0 {
            return self.fill(out, 0.0);
        }
        self.gemm_buffers(g, a2, b2, out)
    }

    fn conv_check(op: &'static str, x_shape: &[usize], w: &CudaBuffer, p: Conv2dParams) -> Result<ConvGeom> {
        let ws = w.shape();
        if ws.len() != 4 || x_shape.len() != 4 || ws[1] != x_shape[1] {
            return Err(CoreError::Shape {
                op,
                detail: format!("input {} and weight {} do not form an NCHW/OIHW convolution", fmt_shape(x_shape), fmt_shape(ws)),
            });
        }
        if !w.dtype().is_float() {
            return Err(CoreError::DType { op, dtype: w.dtype(), detail: "convolution needs float32 or float64".into() });
        }
        ConvGeom::new(op, x_shape, (ws[2], ws[3]), p)
    }

    fn im2col(&mut self, g: &ConvGeom, x: &CudaBuffer) -> Result<CudaBuffer> {
        let (kk, l) = ((g.c * g.kh * g.kw) as usize, (g.oh * g.ow) as usize);
        let mut cols = self.alloc_uninit(x.dtype(), &[g.n as usize, kk, l])?;
        let total = cols.len();
        if total > 0 {
            with_dtype!(float x.dtype(), T => {
                let f = self.func("conv", &format!("im2col_{}", <T as DevElem>::SFX))?;
                launch!(self, f, cfg_elems(total), [g, T::slice(x), T::slice_mut(&mut cols)]);
            });
        }
        Ok(cols)
    }

    /// `out = conv2d(x, w)`: x `(N, C, H, W)`, w `(O, C, kH, kW)`, out `(N, O, oH, oW)`, by
    /// im2col and one strided-batched GEMM.
    pub fn conv2d(&mut self, x: &CudaBuffer, w: &CudaBuffer, p: Conv2dParams, out: &mut CudaBuffer) -> Result<()> {
        let g = Self::conv_check("conv2d", x.shape(), w, p)?;
        expect_dtype("conv2d", x, w.dtype())?;
        expect_dtype("conv2d", out, w.dtype())?;
        let o = w.shape()[0];
        expect_shape("conv2d", "output", out, &[g.n as usize, o, g.oh as usize, g.ow as usize])?;
        let cols = self.im2col(&g, x)?;
        let (kk, l) = ((g.c * g.kh * g.kw) as usize, (g.oh * g.ow) as usize);
        let gm = RowMajorGemm { m: o, n: l, k: kk, ta: false, tb: false, batch: g.n as usize, stride_a: 0, stride_b: kk * l, stride_c: o * l, alpha: 1.0, beta: 0.0 };
        self.gemm_buffers(gm, w, &cols, out)
    }

    /// Gradient of [`conv2d`](Self::conv2d) w.r.t. its input: `out (N, C, H, W)` from
    /// `grad (N, O, oH, oW)` and `w` (GEMM with wᵀ, then col2im).
    pub fn conv2d_backward_input(&mut self, grad: &CudaBuffer, w: &CudaBuffer, p: Conv2dParams, out: &mut CudaBuffer) -> Result<()> {
        let g = Self::conv_check("conv2d_backward_input", out.shape(), w, p)?;
        expect_dtype("conv2d_backward_input", grad, w.dtype())?;
        expect_dtype("conv2d_backward_input", out, w.dtype())?;
        let o = w.shape()[0];
        expect_shape("conv2d_backward_input", "gradient", grad, &[g.n as usize, o, g.oh as usize, g.ow as usize])?;
        let (kk, l) = ((g.c * g.kh * g.kw) as usize, (g.oh * g.ow) as usize);
        let mut cols = self.alloc_uninit(w.dtype(), &[g.n as usize, kk, l])?;
        let gm = RowMajorGemm { m: kk, n: l, k: o, ta: true, tb: false, batch: g.n as usize, stride_a: 0, stride_b: o * l, stride_c: kk * l, alpha: 1.0, beta: 0.0 };
        if o == 0 {
            self.fill(&mut cols, 0.0)?;
        } else {
            self.gemm_buffers(gm, w, grad, &mut cols)?;
        }
        let total = out.len();
        if total > 0 {
            with_dtype!(float w.dtype(), T => {
                let f = self.func("conv", &format!("col2im_{}", <T as DevElem>::SFX))?;
                launch!(self, f, cfg_elems(total), [&g, T::slice(&cols), T::slice_mut(out)]);
            });
        }
        Ok(())
    }

    /// Gradient of [`conv2d`](Self::conv2d) w.r.t. its weight: `out (O, C, kH, kW)` from `x`
    /// and `grad (N, O, oH, oW)` (per-image GEMMs with colsᵀ, then a sum over the batch).
    pub fn conv2d_backward_weight(&mut self, x: &CudaBuffer, grad: &CudaBuffer, p: Conv2dParams, out: &mut CudaBuffer) -> Result<()> {
        let g = Self::conv_check("conv2d_backward_weight", x.shape(), out, p)?;
        expect_dtype("conv2d_backward_weight", x, out.dtype())?;
        expect_dtype("conv2d_backward_weight", grad, out.dtype())?;
        let o = out.shape()[0];
        expect_shape("conv2d_backward_weight", "gradient", grad, &[g.n as usize, o, g.oh as usize, g.ow as usize])?;
        let (kk, l, n) = ((g.c * g.kh * g.kw) as usize, (g.oh * g.ow) as usize, g.n as usize);
        if n == 0 || l == 0 {
            return self.fill(out, 0.0);
        }
        let cols = self.im2col(&g, x)?;
        let mut per_image = self.alloc_uninit(out.dtype(), &[n, o * kk])?;
        let gm = RowMajorGemm { m: o, n: kk, k: l, ta: false, tb: true, batch: n, stride_a: o * l, stride_b: kk * l, stride_c: o * kk, alpha: 1.0, beta: 0.0 };
        self.gemm_buffers(gm, grad, &cols, &mut per_image)?;
        self.reduce(ReduceOp::Sum, &per_image, &[0], out)
    }

    fn pool_geom(op: &'static str, x_shape: &[usize], dt: DType, kernel: (usize, usize), p: Conv2dParams) -> Result<ConvGeom> {
        if !dt.is_float() {
            return Err(CoreError::DType { op, dtype: dt, detail: "pooling needs float32 or float64".into() });
        }
        ConvGeom::new(op, x_shape, kernel, p)
    }

    fn pool_launch(&mut self, name: &str, g: &ConvGeom, dt: DType, ins: &[&CudaBuffer], out: &mut CudaBuffer) -> Result<()> {
        let total = (g.n * g.c * g.oh * g.ow) as usize;
        if total == 0 {
            return Ok(());
        }
        with_dtype!(float dt, T => {
            let f = self.func("pool", &format!("{name}_{}", <T as DevElem>::SFX))?;
            match ins {
                [x] => launch!(self, f, cfg_elems(total), [g, T::slice(x), T::slice_mut(out)]),
                [x, y] => launch!(self, f, cfg_elems(total), [g, T::slice(x), T::slice(y), T::slice_mut(out)]),
                _ => unreachable!("pool kernels take one or two inputs"),
            }
        });
        Ok(())
    }

    /// Max pooling (NCHW) with window `kernel`; padded cells never win.
    pub fn max_pool2d(&mut self, x: &CudaBuffer, kernel: (usize, usize), p: Conv2dParams, out: &mut CudaBuffer) -> Result<()> {
        let g = Self::pool_geom("max_pool2d", x.shape(), x.dtype(), kernel, p)?;
        expect_dtype("max_pool2d", out, x.dtype())?;
        expect_shape("max_pool2d", "output", out, &[g.n as usize, g.c as usize, g.oh as usize, g.ow as usize])?;
        self.pool_launch("max_pool_fwd", &g, x.dtype(), &[x], out)
    }

    /// Gradient of max pooling: each `grad` cell goes to the first arg-max of its window in
    /// `x`; `out` has `x`'s shape.
    pub fn max_pool2d_backward(&mut self, x: &CudaBuffer, grad: &CudaBuffer, kernel: (usize, usize), p: Conv2dParams, out: &mut CudaBuffer) -> Result<()> {
        let g = Self::pool_geom("max_pool2d_backward", x.shape(), x.dtype(), kernel, p)?;
        expect_dtype("max_pool2d_backward", grad, x.dtype())?;
        expect_dtype("max_pool2d_backward", out, x.dtype())?;
        expect_shape("max_pool2d_backward", "gradient", grad, &[g.n as usize, g.c as usize, g.oh as usize, g.ow as usize])?;
        expect_shape("max_pool2d_backward", "output", out, x.shape())?;
        cudarc_zero(self, out)?;
        self.pool_launch("max_pool_bwd", &g, x.dtype(), &[x, grad], out)
    }

    /// Average pooling; padded zeros count in the divisor (PyTorch's default).
    pub fn avg_pool2d(&mut self, x: &CudaBuffer, kernel: (usize, usize), p: Conv2dParams, out: &mut CudaBuffer) -> Result<()> {
        let g = Self::pool_geom("avg_pool2d", x.shape(), x.dtype(), kernel, p)?;
        expect_dtype("avg_pool2d", out, x.dtype())?;
        expect_shape("avg_pool2d", "output", out, &[g.n as usize, g.c as usize, g.oh as usize, g.ow as usize])?;
        self.pool_launch("avg_pool_fwd", &g, x.dtype(), &[x], out)
    }

    /// Gradient of average pooling into `out` (the input's shape).
    pub fn avg_pool2d_backward(&mut self, grad: &CudaBuffer, kernel: (usize, usize), p: Conv2dParams, out: &mut CudaBuffer) -> Result<()> {
        let g = Self::pool_geom("avg_pool2d_backward", out.shape(), out.dtype(), kernel, p)?;
        expect_dtype("avg_pool2d_backward", grad, out.dtype())?;
        expect_shape("avg_pool2d_backward", "gradient", grad, &[g.n as usize, g.c as usize, g.oh as usize, g.ow as usize])?;
        cudarc_zero(self, out)?;
        let dt = out.dtype();
        self.pool_launch("avg_pool_bwd", &g, dt, &[grad], out)
    }

    /// One fused solver step on parameter `w` with gradient `g` and `kind.state_count()`
    /// state buffers (zero before the first step, kept between steps), all of `w`'s shape
    /// and dtype. `g` is read only.
    ///
    /// ```no_run
    /// # use gorgon_cuda::{CudaDevice, Update, UpdateParams};
    /// # use gorgon_core::{Device, DType};
    /// # fn demo(dev: &mut CudaDevice, w: &mut gorgon_cuda::CudaBuffer, g: &gorgon_cuda::CudaBuffer) -> gorgon_core::Result<()> {
    /// let mut state = vec![dev.alloc(DType::F32, w.shape())?, dev.alloc(DType::F32, w.shape())?];
    /// let p = UpdateParams { lr: 1e-3, step: 1, ..Default::default() };
    /// dev.update(Update::Adam, &p, w, g, &mut state)?;
    /// # Ok(()) }
    /// ```
    pub fn update(&mut self, kind: Update, params: &UpdateParams, w: &mut CudaBuffer, g: &CudaBuffer, state: &mut [CudaBuffer]) -> Result<()> {
        let dt = w.dtype();
        if !dt.is_float() {
            return Err(CoreError::DType { op: "solver update", dtype: dt, detail: "parameters must be float32 or float64".into() });
        }
        expect_dtype("solver update", g, dt)?;
        expect_shape("solver update", "gradient", g, w.shape())?;
        if state.len() != kind.state_count() {
            return Err(CoreError::Shape { op: "solver update", detail: format!("{kind:?} needs {} state buffers, got {}", kind.state_count(), state.len()) });
        }
        for s in state.iter() {
            expect_dtype("solver update", s, dt)?;
            expect_shape("solver update", "state", s, w.shape())?;
        }
        let n = w.len();
        if n == 0 {
            return Ok(());
        }
        let nn = n as i64;
        with_dtype!(float dt, T => {
            let f = self.func("optim", &format!("{}_{}", kind.kernel(), <T as DevElem>::SFX))?;
            let cfg = cfg_elems(n);
            match state {
                [] => launch!(self, f, cfg, [&nn, params, T::slice_mut(w), T::slice(g)]),
                [s1] => launch!(self, f, cfg, [&nn, params, T::slice_mut(w), T::slice(g), T::slice_mut(s1)]),
                [s1, s2] => launch!(self, f, cfg, [&nn, params, T::slice_mut(w), T::slice(g), T::slice_mut(s1), T::slice_mut(s2)]),
                _ => unreachable!("state count checked"),
            }
        });
        Ok(())
    }
}
