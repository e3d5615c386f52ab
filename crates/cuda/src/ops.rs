//! Kernel launches for the tensor-level families: fill, unary, binary (broadcasting), where,
//! cast, strided copies (transpose/slice/broadcast materialization), reductions,
//! argmax/argmin, softmax (+ backward), take and scatter-add. Each method checks shapes and
//! dtypes like the CPU kernel of the same name in `gorgon_core::kernels` and returns
//! [`CoreError`] on a mismatch; outputs are caller-allocated buffers.
//!
//! Only with the `cuda` feature.

use gorgon_core::error::fmt_shape;
use gorgon_core::kernels::elementwise::{BinaryOp, UnaryOp};
use gorgon_core::kernels::reduce::ReduceOp;
use gorgon_core::shape::broadcast_shapes;
use gorgon_core::{CoreError, DType, Result};

use crate::device::{cfg_elems, cfg_rows, expect_dtype, expect_shape, CudaBuffer, CudaDevice, DevElem};
use crate::layout::{broadcast_strides, contiguous_strides, reduce_plan, split_at_axis, KernelLayout};
use crate::CudaError;
use cudarc::driver::{DeviceRepr, PushKernelArg};

// SAFETY: #[repr(C)] plain-old-data mirrors of the structs in kernels/common.cuh.
unsafe impl DeviceRepr for KernelLayout {}
unsafe impl DeviceRepr for crate::layout::ConvGeom {}

/// One arm of [`with_dtype!`]: `$body` with the type alias `$T = $t` in scope.
macro_rules! dtype_arm {
    ($T:ident = $t:ty => $body:expr) => {{
        type $T = $t;
        $body
    }};
}

/// Runs `$body` with `$T` bound to the Rust element type of dtype `$dt`; with `float` first,
/// only float32/float64 are accepted (any other dtype returns a `CoreError::DType`).
macro_rules! with_dtype {
    (float $dt:expr, $T:ident => $body:expr) => {
        match $dt {
            DType::F32 => dtype_arm!($T = f32 => $body),
            DType::F64 => dtype_arm!($T = f64 => $body),
            dt => return Err(CoreError::DType { op: "cuda kernel", dtype: dt, detail: "needs float32 or float64".into() }),
        }
    };
    ($dt:expr, $T:ident => $body:expr) => {
        match $dt {
            DType::F32 => dtype_arm!($T = f32 => $body),
            DType::F64 => dtype_arm!($T = f64 => $body),
            DType::I32 => dtype_arm!($T = i32 => $body),
            DType::I64 => dtype_arm!($T = i64 => $body),
            DType::Bool => dtype_arm!($T = u8 => $body),
        }
    };
}
pub(crate) use {dtype_arm, with_dtype};

/// Launches `$func` (already loaded) over `$cfg` with the listed arguments.
macro_rules! launch {
    ($dev:expr, $func:expr, $cfg:expr, [$($arg:expr),* $(,)?]) => {{
        let f = $func;
        let mut b = $dev.stream.launch_builder(&f);
        // Each `let` keeps temporaries such as `&(n as i64)` alive until the launch.
        $( let a = $arg; b.arg(a); )*
        // SAFETY: argument lists match the kernel signatures in kernels/*.cu; sizes were
        // checked against the buffers by the caller.
        unsafe { b.launch($cfg) }.map_err(CudaError::from)?;
    }};
}
pub(crate) use launch;

fn unsupported(op: String) -> CoreError {
    CudaError::Unsupported { op }.into()
}

/// Kernel op code and parameters of a unary op (codes follow `UnaryOp`'s declaration order).
pub(crate) fn unary_code(op: UnaryOp) -> (i32, f64, f64) {
    use UnaryOp::*;
    match op {
        Neg => (0, 0.0, 0.0),
        Abs => (1, 0.0, 0.0),
        Sign => (2, 0.0, 0.0),
        Exp => (3, 0.0, 0.0),
        Log => (4, 0.0, 0.0),
        Log1p => (5, 0.0, 0.0),
        Expm1 => (6, 0.0, 0.0),
        Log2 => (7, 0.0, 0.0),
        Sqrt => (8, 0.0, 0.0),
        Square => (9, 0.0, 0.0),
        Cube => (10, 0.0, 0.0),
        Inverse => (11, 0.0, 0.0),
        InverseSqrt => (12, 0.0, 0.0),
        Sin => (13, 0.0, 0.0),
        Cos => (14, 0.0, 0.0),
        Tanh => (15, 0.0, 0.0),
        Sigmoid => (16, 0.0, 0.0),
        Softplus => (17, 0.0, 0.0),
        Relu => (18, 0.0, 0.0),
        Mish => (19, 0.0, 0.0),
        Floor => (20, 0.0, 0.0),
        Ceil => (21, 0.0, 0.0),
        LeakyRelu(a) => (22, a, 0.0),
        Clip(lo, hi) => (23, lo, hi),
        Step => (24, 0.0, 0.0),
        InRange(lo, hi) => (25, lo, hi),
        LeakyStep(a) => (26, a, 0.0),
        MishGrad => (27, 0.0, 0.0),
    }
}

pub(crate) fn binary_code(op: BinaryOp) -> i32 {
    use BinaryOp::*;
    match op {
        Add => 0,
        Sub => 1,
        Mul => 2,
        Div => 3,
        Pow => 4,
        FloorDiv => 5,
        Maximum => 6,
        Minimum => 7,
        Lt => 8,
        Le => 9,
        Gt => 10,
        Ge => 11,
        Eq => 12,
        Ne => 13,
    }
}

fn reduce_code(op: ReduceOp) -> i32 {
    match op {
        ReduceOp::Sum => 0,
        ReduceOp::Mean => 1,
        ReduceOp::Max => 2,
        ReduceOp::Min => 3,
        ReduceOp::Prod => 4,
        ReduceOp::LogSumExp => 5,
    }
}

fn layout(op: &'static str, shape: &[usize], strides: &[&[isize]]) -> Result<KernelLayout> {
    KernelLayout::new(shape, strides).ok_or_else(|| unsupported(format!("{op} with more than 8 non-mergeable dimensions")))
}

impl CudaDevice {
    /// Sets every element of `out` to `value` (converted like `Element::from_f64`).
    pub fn fill(&mut self, out: &mut CudaBuffer, value: f64) -> Result<()> {
        let n = out.len();
        if n == 0 {
            return Ok(());
        }
        with_dtype!(out.dtype(), T => {
            let v: T = match out.dtype() {
                DType::Bool => (value != 0.0) as u8 as T,
                _ => value as T,
            };
            let f = self.func("elementwise", &format!("fill_{}", <T as DevElem>::SFX))?;
            launch!(self, f, cfg_elems(n), [&(n as i64), T::slice_mut(out), &v]);
        });
        Ok(())
    }

    /// Copies `src` into `dst` on the device (same dtype and element count; the shapes may
    /// differ, as after a reshape).
    pub fn copy(&mut self, src: &CudaBuffer, dst: &mut CudaBuffer) -> Result<()> {
        expect_dtype("copy", dst, src.dtype())?;
        if src.len() != dst.len() {
            return Err(CoreError::Shape {
                op: "copy",
                detail: format!("cannot copy {} into {}", fmt_shape(src.shape()), fmt_shape(dst.shape())),
            });
        }
        if src.is_empty() {
            return Ok(());
        }
        with_dtype!(src.dtype(), T => {
            self.stream.memcpy_dtod(T::slice(src), T::slice_mut(dst)).map_err(CudaError::from)?;
        });
        Ok(())
    }

    /// `out = op(x)` elementwise (same shape and dtype). Float ops need float32/float64;
    /// `Neg Abs Sign Square Cube` also take int32/int64.
    pub fn unary(&mut self, op: UnaryOp, x: &CudaBuffer, out: &mut CudaBuffer) -> Result<()> {
        expect_dtype("unary", out, x.dtype())?;
        expect_shape("unary", "output", out, x.shape())?;
        let (code, p0, p1) = unary_code(op);
        let int_ok = matches!(op, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Square | UnaryOp::Cube);
        let dt = x.dtype();
        if !(dt.is_float() || (dt.is_int() && int_ok)) {
            return Err(CoreError::DType { op: "unary", dtype: dt, detail: format!("{op:?} is not defined for {dt}") });
        }
        let n = x.len();
        if n == 0 {
            return Ok(());
        }
        with_dtype!(dt, T => {
            let f = self.func("elementwise", &format!("unary_{}", <T as DevElem>::SFX))?;
            launch!(self, f, cfg_elems(n), [&code, &(n as i64), T::slice(x), T::slice_mut(out), &p0, &p1]);
        });
        Ok(())
    }

    /// Runs a generated fused elementwise kernel (module and kernel `name`, loaded with
    /// `load_generated`) over operands that are full-size or hold one element; `vec` is the
    /// kernel's elements per vector access (its grid covers `len / vec` vectors).
    pub(crate) fn fused(&mut self, name: &str, vec: usize, x: &[&CudaBuffer], out: &mut CudaBuffer) -> Result<()> {
        let dt = out.dtype();
        let n = out.len();
        for b in x {
            expect_dtype("fused", b, dt)?;
            if b.len() != n && b.len() != 1 {
                return Err(unsupported(format!("fused: operand of {} elements for an output of {n}", b.len())));
            }
        }
        if n == 0 {
            return Ok(());
        }
        let f = self.func(name, name)?;
        let cfg = cfg_elems((n / vec.max(1)).max(1));
        let len = n as i64;
        with_dtype!(dt, T => {
            let mut b = self.stream.launch_builder(&f);
            b.arg(&len);
            for a in x {
                b.arg(T::slice(a));
            }
            b.arg(T::slice_mut(out));
            // SAFETY: the generated kernel takes (i64 n, const T* in0, …, T* out) with one
            // pointer per operand (crate::fused::kernel_source); every operand holds n
            // elements or one (checked above), and buffers start 256-byte aligned, so the
            // kernel's 16-byte vector accesses are aligned.
            unsafe { b.launch(cfg) }.map_err(CudaError::from)?;
        });
        Ok(())
    }

    /// `out = op(a, b)` with NumPy broadcasting; all three share a numeric dtype and `out`
    /// has the broadcast shape. Comparisons give 0/1 in that dtype.
    pub fn binary(&mut self, op: BinaryOp, a: &CudaBuffer, b: &CudaBuffer, out: &mut CudaBuffer) -> Result<()> {
        let dt = a.dtype();
        expect_dtype("binary", b, dt)?;
        expect_dtype("binary", out, dt)?;
        if dt == DType::Bool {
            return Err(CoreError::DType { op: "binary", dtype: dt, detail: format!("{op:?} needs a numeric dtype") });
        }
        let shape = broadcast_shapes(a.shape(), b.shape())?;
        expect_shape("binary", "output", out, &shape)?;
        let n = out.len();
        if n == 0 {
            return Ok(());
        }
        let (sa, sb) = (broadcast_strides(a.shape(), &shape)?, broadcast_strides(b.shape(), &shape)?);
        let l = layout("binary", &shape, &[&sa, &sb])?;
        let code = binary_code(op);
        with_dtype!(dt, T => {
            let f = self.func("elementwise", &format!("binary_{}", <T as DevElem>::SFX))?;
            launch!(self, f, cfg_elems(n), [&code, &(n as i64), &l, T::slice(a), T::slice(b), T::slice_mut(out)]);
        });
        Ok(())
    }

    /// `out = cond != 0 ? a : b` with three-way broadcasting; `cond` may have any dtype,
    /// `a`, `b` and `out` share one.
    pub fn where_(&mut self, cond: &CudaBuffer, a: &CudaBuffer, b: &CudaBuffer, out: &mut CudaBuffer) -> Result<()> {
        let dt = a.dtype();
        expect_dtype("where", b, dt)?;
        expect_dtype("where", out, dt)?;
        let shape = broadcast_shapes(&broadcast_shapes(cond.shape(), a.shape())?, b.shape())?;
        expect_shape("where", "output", out, &shape)?;
        let n = out.len();
        if n == 0 {
            return Ok(());
        }
        let sc = broadcast_strides(cond.shape(), &shape)?;
        let (sa, sb) = (broadcast_strides(a.shape(), &shape)?, broadcast_strides(b.shape(), &shape)?);
        let l = layout("where", &shape, &[&sc, &sa, &sb])?;
        with_dtype!(cond.dtype(), C => {
            with_dtype!(dt, T => {
                let name = format!("where_{}_{}", <C as DevElem>::SFX, <T as DevElem>::SFX);
                let f = self.func("convert", &name)?;
                launch!(self, f, cfg_elems(n), [&(n as i64), &l, C::slice(cond), T::slice(a), T::slice(b), T::slice_mut(out)]);
            })
        });
        Ok(())
    }

    /// Converts `x` into `out`'s dtype (same shape): float→int truncates toward zero, to
    /// bool is `!= 0`.
    pub fn cast(&mut self, x: &CudaBuffer, out: &mut CudaBuffer) -> Result<()> {
        expect_shape("cast", "output", out, x.shape())?;
        let n = x.len();
        if n == 0 {
            return Ok(());
        }
        with_dtype!(x.dtype(), S => {
            with_dtype!(out.dtype(), D => {
                let name = format!("cast_{}_{}", <S as DevElem>::SFX, <D as DevElem>::SFX);
                let f = self.func("convert", &name)?;
                launch!(self, f, cfg_elems(n), [&(n as i64), S::slice(x), D::slice_mut(out)]);
            })
        });
        Ok(())
    }

    /// Materializes a strided view of `x` into the contiguous `out` (same dtype): element
    /// `idx` of the view is `x[offset + Σ idx[d]·strides[d]]`. `shape` must be `out`'s shape.
    /// Transposes, slices (negative strides allowed) and broadcasts (stride 0) are views.
    pub fn copy_strided(&mut self, x: &CudaBuffer, shape: &[usize], strides: &[isize], offset: usize, out: &mut CudaBuffer) -> Result<()> {
        expect_dtype("copy", out, x.dtype())?;
        expect_shape("copy", "output", out, shape)?;
        if strides.len() != shape.len() {
            return Err(CoreError::Shape { op: "copy", detail: format!("{} strides for shape {}", strides.len(), fmt_shape(shape)) });
        }
        let n = out.len();
        if n == 0 {
            return Ok(());
        }
        let (mut lo, mut hi) = (offset as i128, offset as i128);
        for (&d, &s) in shape.iter().zip(strides) {
            let span = (d as i128 - 1) * s as i128;
            if span < 0 { lo += span } else { hi += span }
        }
        if lo < 0 || hi >= x.len() as i128 {
            return Err(CoreError::Index {
                op: "copy",
                detail: format!("view (shape {}, strides {strides:?}, offset {offset}) leaves a buffer of {} elements", fmt_shape(shape), x.len()),
            });
        }
        let l = layout("copy", shape, &[strides])?;
        with_dtype!(x.dtype(), T => {
            let f = self.func("elementwise", &format!("copy_{}", <T as DevElem>::SFX))?;
            launch!(self, f, cfg_elems(n), [&(n as i64), &l, &(offset as i64), T::slice(x), T::slice_mut(out)]);
        });
        Ok(())
    }

    /// `out = x.transpose(axes)` made contiguous.
    pub fn permute(&mut self, x: &CudaBuffer, axes: &[usize], out: &mut CudaBuffer) -> Result<()> {
        let nd = x.shape().len();
        let mut seen = vec![false; nd];
        if axes.len() != nd || axes.iter().any(|&a| a >= nd || std::mem::replace(&mut seen[a], true)) {
            return Err(CoreError::Shape { op: "transpose", detail: format!("axes {axes:?} are not a permutation of {nd} axes") });
        }
        let cs = contiguous_strides(x.shape());
        let shape: Vec<usize> = axes.iter().map(|&a| x.shape()[a]).collect();
        let strides: Vec<isize> = axes.iter().map(|&a| cs[a]).collect();
        self.copy_strided(x, &shape, &strides, 0, out)
    }

    /// `out = broadcast_to(x, out.shape)` made contiguous.
    pub fn broadcast_to(&mut self, x: &CudaBuffer, out: &mut CudaBuffer) -> Result<()> {
        let shape = out.shape().to_vec();
        let strides = broadcast_strides(x.shape(), &shape)?;
        self.copy_strided(x, &shape, &strides, 0, out)
    }

    /// Reduces `x` over `axes` (sorted, unique, in range) into `out`, whose element count is
    /// the product of the kept dimensions (keepdims or squeezed shape). Same dtype in and
    /// out; Sum/Prod/Max/Min also take ints; Max/Min over an empty axis is an error.
    pub fn reduce(&mut self, op: ReduceOp, x: &CudaBuffer, axes: &[usize], out: &mut CudaBuffer) -> Result<()> {
        let dt = x.dtype();
        expect_dtype("reduce", out, dt)?;
        let shape = x.shape().to_vec();
        if axes.windows(2).any(|w| w[0] >= w[1]) || axes.iter().any(|&a| a >= shape.len()) {
            return Err(CoreError::Index { op: "reduce", detail: format!("axes {axes:?} for shape {}", fmt_shape(&shape)) });
        }
        let float_only = matches!(op, ReduceOp::Mean | ReduceOp::LogSumExp);
        if dt == DType::Bool || (float_only && !dt.is_float()) {
            return Err(CoreError::DType { op: "reduce", dtype: dt, detail: format!("{op:?} is not defined for {dt}") });
        }
        let kept: usize = shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).product();
        if out.len() != kept {
            return Err(CoreError::Shape {
                op: "reduce",
                detail: format!("output {} cannot hold the reduction of {} over {axes:?}", fmt_shape(out.shape()), fmt_shape(&shape)),
            });
        }
        let plan = reduce_plan(&shape, axes);
        if plan.r == 0 && matches!(op, ReduceOp::Max | ReduceOp::Min) && kept > 0 {
            return Err(CoreError::Shape { op: "reduce", detail: format!("{op:?} over a zero-size axis of {}", fmt_shape(&shape)) });
        }
        if kept == 0 {
            return Ok(());
        }
        let permuted;
        let src = match &plan.permute {
            None => x,
            Some(perm) => {
                let pshape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
                let mut tmp = self.alloc_uninit(dt, &pshape)?;
                self.permute(x, perm, &mut tmp)?;
                permuted = tmp;
                &permuted
            }
        };
        let code = reduce_code(op);
        let (outer, r, inner) = (plan.outer as i64, plan.r as i64, plan.inner as i64);
        with_dtype!(dt, T => {
            if plan.inner == 1 && plan.r >= 64 {
                let f = self.func("reduce", &format!("reduce_rows_{}", <T as DevElem>::SFX))?;
                launch!(self, f, cfg_rows(plan.outer), [&code, &outer, &r, T::slice(src), T::slice_mut(out)]);
            } else {
                let f = self.func("reduce", &format!("reduce_cols_{}", <T as DevElem>::SFX))?;
                launch!(self, f, cfg_elems(kept), [&code, &outer, &r, &inner, T::slice(src), T::slice_mut(out)]);
            }
        });
        Ok(())
    }

    /// Index of the max (`is_max`) or min along `axis` (`None`: the flattened array) into an
    /// int64 `out` with the kept elements; first occurrence wins, NaN counts as extreme.
    pub fn arg_reduce(&mut self, is_max: bool, x: &CudaBuffer, axis: Option<usize>, out: &mut CudaBuffer) -> Result<()> {
        expect_dtype("argmax", out, DType::I64)?;
        let dt = x.dtype();
        if dt == DType::Bool {
            return Err(CoreError::DType { op: "argmax", dtype: dt, detail: String::new() });
        }
        let (outer, r, inner) = match axis {
            None => (1, x.len(), 1),
            Some(a) if a < x.shape().len() => split_at_axis(x.shape(), a),
            Some(a) => return Err(CoreError::Index { op: "argmax", detail: format!("axis {a} for shape {}", fmt_shape(x.shape())) }),
        };
        if out.len() != outer * inner {
            return Err(CoreError::Shape { op: "argmax", detail: format!("output {} for input {}", fmt_shape(out.shape()), fmt_shape(x.shape())) });
        }
        if r == 0 {
            return Err(CoreError::Shape { op: "argmax", detail: format!("attempt to get argmax of an empty sequence ({})", fmt_shape(x.shape())) });
        }
        if outer * inner == 0 {
            return Ok(());
        }
        let flag = is_max as i32;
        with_dtype!(dt, T => {
            let f = self.func("reduce", &format!("argreduce_{}", <T as DevElem>::SFX))?;
            launch!(self, f, cfg_elems(outer * inner), [&flag, &(outer as i64), &(r as i64), &(inner as i64), T::slice(x), i64::slice_mut(out)]);
        });
        Ok(())
    }

    /// `out = softmax(x)` (or `log_softmax` when `log`) along `axis`; float dtypes.
    pub fn softmax(&mut self, x: &CudaBuffer, axis: usize, log: bool, out: &mut CudaBuffer) -> Result<()> {
        self.softmax_impl("softmax", x, None, axis, log, out)
    }

    /// Gradient of softmax / log-softmax from the forward *output* `y` and the incoming
    /// gradient `dy`: `dx = y·(dy − Σ dy·y)` or `dx = dy − exp(y)·Σ dy`.
    pub fn softmax_backward(&mut self, y: &CudaBuffer, dy: &CudaBuffer, axis: usize, log: bool, dx: &mut CudaBuffer) -> Result<()> {
        self.softmax_impl("softmax_backward", y, Some(dy), axis, log, dx)
    }

    fn softmax_impl(&mut self, op: &'static str, x: &CudaBuffer, dy: Option<&CudaBuffer>, axis: usize, log: bool, out: &mut CudaBuffer) -> Result<()> {
        let dt = x.dtype();
        if !dt.is_float() {
            return Err(CoreError::DType { op, dtype: dt, detail: "softmax needs float32 or float64".into() });
        }
        expect_dtype(op, out, dt)?;
        expect_shape(op, "output", out, x.shape())?;
        if let Some(g) = dy {
            expect_dtype(op, g, dt)?;
            expect_shape(op, "gradient", g, x.shape())?;
        }
        if axis >= x.shape().len() {
            return Err(CoreError::Index { op, detail: format!("axis {axis} for shape {}", fmt_shape(x.shape())) });
        }
        if x.is_empty() {
            return Ok(());
        }
        let (outer, r, inner) = split_at_axis(x.shape(), axis);
        let (o, rr, i, lg) = (outer as i64, r as i64, inner as i64, log as i32);
        let bwd = if dy.is_some() { "_bwd" } else { "" };
        with_dtype!(dt, T => {
            let rows = inner == 1 && r >= 32;
            let name = format!("softmax{bwd}_{}_{}", if rows { "rows" } else { "cols" }, <T as DevElem>::SFX);
            let f = self.func("softmax", &name)?;
            let cfg = if rows { cfg_rows(outer) } else { cfg_elems(outer * inner) };
            match (dy, rows) {
                (None, true) => launch!(self, f, cfg, [&lg, &o, &rr, T::slice(x), T::slice_mut(out)]),
                (None, false) => launch!(self, f, cfg, [&lg, &o, &rr, &i, T::slice(x), T::slice_mut(out)]),
                (Some(g), true) => launch!(self, f, cfg, [&lg, &o, &rr, T::slice(x), T::slice(g), T::slice_mut(out)]),
                (Some(g), false) => launch!(self, f, cfg, [&lg, &o, &rr, &i, T::slice(x), T::slice(g), T::slice_mut(out)]),
            }
        });
        Ok(())
    }

    fn index_dims(op: &'static str, x_shape: &[usize], idx: &CudaBuffer, axis: usize, other: &[usize]) -> Result<(usize, usize, usize)> {
        if !idx.dtype().is_int() {
            return Err(CoreError::DType { op, dtype: idx.dtype(), detail: "indices must be int32 or int64".into() });
        }
        if axis >= x_shape.len() {
            return Err(CoreError::Index { op, detail: format!("axis {axis} for shape {}", fmt_shape(x_shape)) });
        }
        let mut want = x_shape[..axis].to_vec();
        want.extend_from_slice(idx.shape());
        want.extend_from_slice(&x_shape[axis + 1..]);
        if other != want.as_slice() {
            return Err(CoreError::Shape { op, detail: format!("got {}, expected {}", fmt_shape(other), fmt_shape(&want)) });
        }
        Ok(split_at_axis(x_shape, axis))
    }

    /// `out = take(x, indices, axis)` (gather): `out.shape = x.shape[:axis] + indices.shape +
    /// x.shape[axis+1:]`; negative indices count from the end. An out-of-range index is
    /// reported as `CoreError::Index` by the next [`synchronize`](gorgon_core::Device::synchronize)
    /// or download (the GPU sets a flag; no sync here).
    pub fn take(&mut self, x: &CudaBuffer, indices: &CudaBuffer, axis: usize, out: &mut CudaBuffer) -> Result<()> {
        self.index_impl("take", x, indices, axis, out)
    }

    /// The adjoint of [`take`](Self::take): zeroes `out` (the shape of the original `x`)
    /// and adds `grad[.., i, ..]` into `out[.., indices[i], ..]` (atomically).
    pub fn scatter_add(&mut self, grad: &CudaBuffer, indices: &CudaBuffer, axis: usize, out: &mut CudaBuffer) -> Result<()> {
        self.index_impl("scatter_add", grad, indices, axis, out)
    }

    fn index_impl(&mut self, op: &'static str, src: &CudaBuffer, idx: &CudaBuffer, axis: usize, out: &mut CudaBuffer) -> Result<()> {
        let dt = src.dtype();
        expect_dtype(op, out, dt)?;
        if dt == DType::Bool {
            return Err(CoreError::DType { op, dtype: dt, detail: String::new() });
        }
        let take = op == "take";
        let (x_shape, other) = if take { (src.shape(), out.shape()) } else { (out.shape(), src.shape()) };
        let (outer, axis_len, inner) = Self::index_dims(op, x_shape, idx, axis, other)?;
        if !take {
            cudarc_zero(self, out)?;
        }
        let total = outer * idx.len() * inner;
        if total == 0 {
            return Ok(());
        }
        self.index_check_pending = true;
        let dims = [outer as i64, axis_len as i64, idx.len() as i64, inner as i64];
        with_dtype!(dt, T => {
            with_dtype!(idx.dtype(), I => {
                let name = format!("{op}_{}_{}", <T as DevElem>::SFX, <I as DevElem>::SFX);
                let f = self.func("index", &name)?;
                let (src_s, idx_s, out_s) = (T::slice(src), I::slice(idx), T::slice_mut(out));
                launch!(self, f, cfg_elems(total), [&dims[0], &dims[1], &dims[2], &dims[3], src_s, idx_s, out_s, &mut self.err_flag]);
            })
        });
        Ok(())
    }
}

/// Zeroes a buffer on the device's stream.
pub(crate) fn cudarc_zero(dev: &mut CudaDevice, b: &mut CudaBuffer) -> Result<()> {
    with_dtype!(b.dtype(), T => {
        dev.stream.memset_zeros(T::slice_mut(b)).map_err(CudaError::from)?;
    });
    Ok(())
}
