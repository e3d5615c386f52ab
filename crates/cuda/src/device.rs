//! [`CudaDevice`]: one GPU as a [`gorgon_core::Device`] — its context, stream, cuBLAS
//! handle, loaded kernel modules and transfer counters — and [`CudaBuffer`], a typed device
//! allocation with its shape. Owns device lifetime and host↔device copies; the kernel
//! launches live in `ops.rs` and `nn.rs`.
//!
//! Everything the device holds is freed when it is dropped (cudarc frees on drop); `Drop`
//! never panics. Without the `cuda` feature a stub with the same name exists whose
//! constructor always fails, so callers compile either way.

#[cfg(feature = "cuda")]
pub use imp::*;
#[cfg(not(feature = "cuda"))]
pub use stub::*;

/// Without the `cuda` feature: types that can never be constructed.
#[cfg(not(feature = "cuda"))]
mod stub {
    use crate::CudaError;
    use gorgon_core::{DType, Device, DeviceKind, Tensor};

    #[derive(Debug)]
    enum Never {}

    /// A device buffer (never constructed in builds without the `cuda` feature).
    #[derive(Debug)]
    pub struct CudaBuffer {
        never: Never,
    }

    impl CudaBuffer {
        /// The shape.
        pub fn shape(&self) -> &[usize] {
            match self.never {}
        }
        /// The element type.
        pub fn dtype(&self) -> DType {
            match self.never {}
        }
        /// Number of elements.
        pub fn len(&self) -> usize {
            match self.never {}
        }
        /// True when the buffer has no elements.
        pub fn is_empty(&self) -> bool {
            match self.never {}
        }
    }

    /// A CUDA GPU (never constructed in builds without the `cuda` feature).
    #[derive(Debug)]
    pub struct CudaDevice {
        never: Never,
    }

    impl CudaDevice {
        /// Always fails: this build has no CUDA support.
        pub fn new(ordinal: usize) -> Result<CudaDevice, CudaError> {
            let _ = ordinal;
            Err(crate::probe::availability().expect_err("no CUDA in this build"))
        }
        /// `(uploads, downloads)` so far.
        pub fn transfers(&self) -> (u64, u64) {
            match self.never {}
        }
        /// The GPU's name.
        pub fn name(&self) -> &str {
            match self.never {}
        }
        /// The device ordinal.
        pub fn ordinal(&self) -> usize {
            match self.never {}
        }
        /// Compute capability `(major, minor)`.
        pub fn compute_capability(&self) -> (i32, i32) {
            match self.never {}
        }
    }

    impl Device for CudaDevice {
        type Buffer = CudaBuffer;
        fn kind(&self) -> DeviceKind {
            match self.never {}
        }
        fn alloc(&mut self, _: DType, _: &[usize]) -> gorgon_core::Result<CudaBuffer> {
            match self.never {}
        }
        fn upload(&mut self, _: &Tensor, _: &mut CudaBuffer) -> gorgon_core::Result<()> {
            match self.never {}
        }
        fn download(&mut self, _: &CudaBuffer) -> gorgon_core::Result<Tensor> {
            match self.never {}
        }
        fn synchronize(&mut self) -> gorgon_core::Result<()> {
            match self.never {}
        }
    }
}

#[cfg(feature = "cuda")]
mod imp {
    use std::collections::HashMap;
    use std::mem::ManuallyDrop;
    use std::sync::{Arc, Mutex, OnceLock};

    use cudarc::cublas::CudaBlas;
    use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PinnedHostSlice, ValidAsZeroBits};
    use gorgon_core::error::fmt_shape;
    use gorgon_core::{CoreError, DType, Device, DeviceKind, Tensor};

    use crate::cache::compile_all_cached;
    use crate::kernels::{Ptx, Target};
    use crate::probe::{self, guarded};
    use crate::CudaError;

    /// The typed device allocation inside a [`CudaBuffer`] (bool is stored as u8 0/1).
    #[derive(Debug)]
    pub(crate) enum BufData {
        F32(CudaSlice<f32>),
        F64(CudaSlice<f64>),
        I32(CudaSlice<i32>),
        I64(CudaSlice<i64>),
        U8(CudaSlice<u8>),
    }

    /// A tensor's elements in GPU memory: contiguous, row-major, with its shape and dtype.
    /// Made by [`Device::alloc`] or [`CudaDevice::to_device`]; freed on drop.
    #[derive(Debug)]
    pub struct CudaBuffer {
        pub(crate) data: BufData,
        pub(crate) shape: Vec<usize>,
        pub(crate) dtype: DType,
        pub(crate) len: usize,
    }

    impl CudaBuffer {
        /// The shape.
        pub fn shape(&self) -> &[usize] {
            &self.shape
        }
        /// The element type.
        pub fn dtype(&self) -> DType {
            self.dtype
        }
        /// Number of elements.
        pub fn len(&self) -> usize {
            self.len
        }
        /// True when the buffer has no elements.
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }
        /// Changes the shape without moving data (the element count must stay the same).
        pub fn reshape(&mut self, shape: &[usize]) -> gorgon_core::Result<()> {
            if shape.iter().product::<usize>() != self.len {
                return Err(CoreError::Shape {
                    op: "reshape",
                    detail: format!("cannot reshape {} into {}", fmt_shape(&self.shape), fmt_shape(shape)),
                });
            }
            self.shape = shape.to_vec();
            Ok(())
        }
    }

    /// Element types a kernel can be launched on: the kernel-name suffix and typed access
    /// to a buffer's allocation.
    pub(crate) trait DevElem: DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + 'static {
        const SFX: &'static str;
        fn slice(b: &CudaBuffer) -> &CudaSlice<Self>;
        fn slice_mut(b: &mut CudaBuffer) -> &mut CudaSlice<Self>;
        fn wrap(s: CudaSlice<Self>) -> BufData;
        /// This type's page-locked staging buffer of a device.
        fn staging(s: &mut Staging) -> &mut Option<PinnedHostSlice<Self>>;
    }

    /// Transfers of up to this many bytes go through a page-locked staging buffer (several
    /// times faster than copies from pageable memory); larger ones copy directly, so the
    /// page-locked memory a machine holds stays small.
    pub(crate) const STAGING_MAX_BYTES: usize = 16 << 20;

    /// Page-locked host buffers, one per element type, grown on demand up to
    /// [`STAGING_MAX_BYTES`]. Every transfer through one waits for its copy to finish, so a
    /// buffer is always free when the next transfer starts.
    #[derive(Default)]
    pub(crate) struct Staging {
        f32: Option<PinnedHostSlice<f32>>,
        f64: Option<PinnedHostSlice<f64>>,
        i32: Option<PinnedHostSlice<i32>>,
        i64: Option<PinnedHostSlice<i64>>,
        u8: Option<PinnedHostSlice<u8>>,
    }

    /// The staging buffer of `T`, with room for `n` elements, or `None` when `n` elements
    /// are too many to stage (or page-locked memory cannot be had: the caller copies
    /// directly instead).
    fn staging_for<'s, T: DevElem>(ctx: &Arc<CudaContext>, st: &'s mut Staging, n: usize) -> Option<&'s mut PinnedHostSlice<T>> {
        let bytes = n.checked_mul(std::mem::size_of::<T>())?;
        if n == 0 || bytes > STAGING_MAX_BYTES {
            return None;
        }
        let slot = T::staging(st);
        if slot.as_ref().is_none_or(|b| b.len() < n) {
            // Grow to at least 64 KiB and by doubling, so a few sizes settle quickly.
            let want = n.max(slot.as_ref().map_or(0, |b| b.len() * 2)).max((64 << 10) / std::mem::size_of::<T>());
            let want = want.min(STAGING_MAX_BYTES / std::mem::size_of::<T>()).max(n);
            *slot = None; // frees the old buffer before allocating the new one
            // SAFETY: the contents are written before they are read (upload) or overwritten
            // by the device copy before the host reads them (download). Flags 0: ordinary
            // (cached) page-locked memory, fast for the CPU to read back.
            *slot = unsafe { ctx.alloc_pinned_with_flags::<T>(want, 0) }.ok();
        }
        slot.as_mut()
    }

    macro_rules! dev_elem {
        ($t:ty, $sfx:literal, $var:ident, $sfxid:ident) => {
            impl DevElem for $t {
                const SFX: &'static str = $sfx;
                fn slice(b: &CudaBuffer) -> &CudaSlice<Self> {
                    match &b.data {
                        BufData::$var(s) => s,
                        _ => unreachable!("dtype checked by the caller"),
                    }
                }
                fn slice_mut(b: &mut CudaBuffer) -> &mut CudaSlice<Self> {
                    match &mut b.data {
                        BufData::$var(s) => s,
                        _ => unreachable!("dtype checked by the caller"),
                    }
                }
                fn wrap(s: CudaSlice<Self>) -> BufData {
                    BufData::$var(s)
                }
                fn staging(s: &mut Staging) -> &mut Option<PinnedHostSlice<Self>> {
                    &mut s.$sfxid
                }
            }
        };
    }
    dev_elem!(f32, "f32", F32, f32);
    dev_elem!(f64, "f64", F64, f64);
    dev_elem!(i32, "i32", I32, i32);
    dev_elem!(i64, "i64", I64, i64);
    dev_elem!(u8, "u8", U8, u8);

    /// Compiled module images per device ordinal, shared by every [`CudaDevice`] of this
    /// process so a second machine on the same GPU does not recompile.
    static MODULE_CACHE: OnceLock<Mutex<HashMap<usize, ModuleImages>>> = OnceLock::new();

    /// Compiled images of generated sources (fused kernels) by (compute capability, source).
    static GENERATED_CACHE: OnceLock<Mutex<GeneratedImages>> = OnceLock::new();

    /// Images of generated sources keyed by (compute capability, full source).
    type GeneratedImages = HashMap<((i32, i32), String), Ptx>;

    /// Compiled images of every kernel source, as `(source name, image)`.
    type ModuleImages = Vec<(String, Ptx)>;

    /// Threads per block for elementwise kernels (reductions and softmax use 256 too).
    pub(crate) const BLOCK: u32 = 256;

    /// One NVIDIA GPU: context, stream, cuBLAS handle and kernels. Create one with
    /// [`CudaDevice::new`]; dropping it frees all of it.
    ///
    /// ```
    /// match gorgon_cuda::CudaDevice::new(0) {
    ///     Ok(dev) => println!("{}", dev.name()),
    ///     Err(e) => println!("no GPU: {e}"),
    /// }
    /// ```
    pub struct CudaDevice {
        pub(crate) ordinal: usize,
        name: String,
        compute_capability: (i32, i32),
        pub(crate) blas: ManuallyDrop<CudaBlas>,
        modules: HashMap<String, Arc<CudaModule>>,
        funcs: HashMap<String, CudaFunction>,
        /// Sticky flag set by index kernels on an out-of-range index.
        pub(crate) err_flag: CudaSlice<i32>,
        pub(crate) index_check_pending: bool,
        uploads: u64,
        downloads: u64,
        /// Page-locked staging buffers for transfers (dropped before the stream/context).
        staging: Staging,
        pub(crate) stream: Arc<CudaStream>,
        pub(crate) ctx: Arc<CudaContext>,
    }

    impl std::fmt::Debug for CudaDevice {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("CudaDevice")
                .field("ordinal", &self.ordinal)
                .field("name", &self.name)
                .field("compute_capability", &self.compute_capability)
                .finish()
        }
    }

    impl CudaDevice {
        /// Opens GPU `ordinal`: probes the driver, NVRTC and cuBLAS first (an error, never a
        /// panic, when any is missing), then creates a context, a stream and a cuBLAS handle
        /// and loads the kernels (compiled once per ordinal per process).
        pub fn new(ordinal: usize) -> Result<CudaDevice, CudaError> {
            let count = probe::availability()?;
            if ordinal >= count {
                return Err(CudaError::Driver(format!("no CUDA device {ordinal}: {count} device(s) present")));
            }
            probe::nvrtc_available()?;
            probe::cublas_available()?;
            guarded("opening the CUDA device", || Self::open(ordinal))
        }

        fn open(ordinal: usize) -> Result<CudaDevice, CudaError> {
            let ctx = CudaContext::new(ordinal)?;
            // One stream only: cudarc's per-buffer event tracking (for multi-stream safety)
            // would only add an event record per launch.
            // SAFETY: every allocation and launch of this device uses `stream`.
            unsafe { ctx.disable_event_tracking() };
            let stream = ctx.new_stream()?;
            let blas = CudaBlas::new(stream.clone())?;
            let compute_capability = ctx.compute_capability()?;
            let name = ctx.name()?;
            let modules = load_modules(&ctx, ordinal, compute_capability)?;
            let err_flag = stream.alloc_zeros::<i32>(1)?;
            Ok(CudaDevice {
                ordinal,
                name,
                compute_capability,
                blas: ManuallyDrop::new(blas),
                modules,
                funcs: HashMap::new(),
                err_flag,
                index_check_pending: false,
                uploads: 0,
                downloads: 0,
                staging: Staging::default(),
                stream,
                ctx,
            })
        }

        /// The GPU's name, e.g. "NVIDIA H100 80GB HBM3".
        pub fn name(&self) -> &str {
            &self.name
        }

        /// The device ordinal.
        pub fn ordinal(&self) -> usize {
            self.ordinal
        }

        /// Compute capability `(major, minor)`, e.g. `(9, 0)` for Hopper.
        pub fn compute_capability(&self) -> (i32, i32) {
            self.compute_capability
        }

        /// How many host→device uploads and device→host downloads of tensors this device has
        /// done (each [`Device::upload`] / [`Device::download`] / [`CudaDevice::to_device`]
        /// counts one). A steady-state training step should not change these.
        pub fn transfers(&self) -> (u64, u64) {
            (self.uploads, self.downloads)
        }

        /// `(free, total)` device memory in bytes, after waiting for this device's queued
        /// work and returning the unused memory the stream-ordered allocator keeps reserved
        /// (its default pool, trimmed to zero): what is not free is really in use.
        pub fn memory_info(&self) -> Result<(usize, usize), CudaError> {
            self.ctx.bind_to_thread()?;
            self.stream.synchronize()?;
            // SAFETY: the device handle comes from the live context; the pool is the
            // device's default pool, valid for the context's lifetime.
            unsafe {
                let pool = cudarc::driver::result::device::get_default_mem_pool(self.ctx.cu_device())?;
                cudarc::driver::result::mem_pool::trim_to(pool, 0)?;
            }
            Ok(self.ctx.mem_get_info()?)
        }

        /// Allocates a buffer and uploads `t` into it (one upload).
        pub fn to_device(&mut self, t: &Tensor) -> gorgon_core::Result<CudaBuffer> {
            let mut b = self.alloc(t.dtype(), t.shape())?;
            self.upload(t, &mut b)?;
            Ok(b)
        }

        /// A buffer of `shape` filled with `value` (converted to `dtype`).
        pub fn full(&mut self, dtype: DType, shape: &[usize], value: f64) -> gorgon_core::Result<CudaBuffer> {
            let mut b = self.alloc_uninit(dtype, shape)?;
            self.fill(&mut b, value)?;
            Ok(b)
        }

        /// A kernel by module and name, loaded on first use and cached.
        pub(crate) fn func(&mut self, module: &str, name: &str) -> Result<CudaFunction, CudaError> {
            if let Some(f) = self.funcs.get(name) {
                return Ok(f.clone());
            }
            let m = self
                .modules
                .get(module)
                .ok_or_else(|| CudaError::Unsupported { op: format!("kernel module `{module}`") })?;
            let f = m.load_function(name).map_err(|e| {
                CudaError::Unsupported { op: format!("kernel `{name}` in module `{module}` ({})", CudaError::from(e)) }
            })?;
            self.funcs.insert(name.to_string(), f.clone());
            Ok(f)
        }

        /// Compiles (through the process and on-disk caches) and loads a generated source as
        /// module `module`, unless it is loaded already; its kernels are then reachable
        /// through [`CudaDevice::func`]. A cubin for this GPU first, PTX as the fallback.
        pub(crate) fn load_generated(&mut self, module: &str, src: &str) -> Result<(), CudaError> {
            if self.modules.contains_key(module) {
                return Ok(());
            }
            let cc = self.compute_capability;
            let key = (cc, src.to_string());
            let cache = GENERATED_CACHE.get_or_init(|| Mutex::new(HashMap::new()));
            let cached = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
            let mut last_err = None;
            let images: Vec<Ptx> = match cached {
                Some(img) => vec![img],
                None => [Target::cubin_for(cc.0, cc.1), Target::ptx_for(cc.0, cc.1)]
                    .iter()
                    .filter_map(|t| crate::cache::compile_cached(module, src, t).map_err(|e| last_err = Some(e)).ok())
                    .collect(),
            };
            for img in images {
                match self.ctx.load_module(img.clone()) {
                    Ok(m) => {
                        cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key, img);
                        self.modules.insert(module.to_string(), m);
                        return Ok(());
                    }
                    Err(e) => last_err = Some(CudaError::Driver(format!("loading generated module `{module}`: {}", CudaError::from(e)))),
                }
            }
            Err(last_err.unwrap_or_else(|| CudaError::Driver(format!("generated module `{module}` could not be built"))))
        }

        /// Copies a host slice into a buffer of the same element type and length (one
        /// upload, through the page-locked staging buffer when it fits).
        pub(crate) fn upload_from<T: DevElem>(&mut self, src: &[T], dst: &mut CudaBuffer) -> Result<(), CudaError> {
            if src.len() != dst.len {
                return Err(CudaError::Unsupported { op: format!("upload of {} elements into a buffer of {}", src.len(), dst.len) });
            }
            self.ctx.bind_to_thread()?;
            self.uploads += 1;
            let n = src.len();
            if n == 0 {
                return Ok(());
            }
            let (ctx, st, s) = (&self.ctx, &mut self.staging, &self.stream);
            let d = T::slice_mut(dst);
            if let Some(pinned) = staging_for::<T>(ctx, st, n) {
                let buf = &mut pinned.as_mut_slice()?[..n];
                buf.copy_from_slice(src);
                s.memcpy_htod(&*buf, &mut d.slice_mut(0..n))?;
            } else {
                s.memcpy_htod(src, &mut d.slice_mut(0..n))?;
            }
            s.synchronize()?;
            Ok(())
        }

        /// Copies a buffer into a host slice of the same element type and length (one
        /// download, after the work queued before it).
        pub(crate) fn download_into<T: DevElem>(&mut self, src: &CudaBuffer, dst: &mut [T]) -> Result<(), CudaError> {
            if dst.len() != src.len {
                return Err(CudaError::Unsupported { op: format!("download of a buffer of {} elements into {}", src.len, dst.len()) });
            }
            self.ctx.bind_to_thread()?;
            self.downloads += 1;
            let n = dst.len();
            if n == 0 {
                return Ok(());
            }
            let (ctx, st, s) = (&self.ctx, &mut self.staging, &self.stream);
            let d = T::slice(src);
            if let Some(pinned) = staging_for::<T>(ctx, st, n) {
                let buf = &mut pinned.as_mut_slice()?[..n];
                s.memcpy_dtoh(&d.slice(0..n), &mut *buf)?;
                s.synchronize()?;
                dst.copy_from_slice(buf);
            } else {
                s.memcpy_dtoh(&d.slice(0..n), dst)?;
                s.synchronize()?;
            }
            Ok(())
        }

        /// Allocates without zeroing (for outputs a kernel overwrites completely).
        pub(crate) fn alloc_uninit(&mut self, dtype: DType, shape: &[usize]) -> gorgon_core::Result<CudaBuffer> {
            self.alloc_impl(dtype, shape, false)
        }

        fn alloc_impl(&mut self, dtype: DType, shape: &[usize], zero: bool) -> gorgon_core::Result<CudaBuffer> {
            let len = gorgon_core::tensor::checked_numel(shape)?;
            fn mk<T: DevElem>(s: &Arc<CudaStream>, len: usize, zero: bool) -> Result<BufData, CudaError> {
                // Zero-length allocations are invalid in CUDA: keep one element.
                let n = len.max(1);
                // SAFETY: uninitialized device memory is only handed to kernels that write
                // every element before anything reads it.
                let s = if zero { s.alloc_zeros::<T>(n)? } else { unsafe { s.alloc::<T>(n)? } };
                Ok(T::wrap(s))
            }
            self.ctx.bind_to_thread().map_err(CudaError::from)?;
            let s = &self.stream;
            let data = match dtype {
                DType::F32 => mk::<f32>(s, len, zero),
                DType::F64 => mk::<f64>(s, len, zero),
                DType::I32 => mk::<i32>(s, len, zero),
                DType::I64 => mk::<i64>(s, len, zero),
                DType::Bool => mk::<u8>(s, len, zero),
            }
            .map_err(|e| match e {
                CudaError::Driver(m) if m.contains("OUT_OF_MEMORY") => {
                    CoreError::Alloc { bytes: len.saturating_mul(dtype.size_of()), shape: fmt_shape(shape) }
                }
                e => e.into(),
            })?;
            Ok(CudaBuffer { data, shape: shape.to_vec(), dtype, len })
        }

        /// Reads and clears the sticky index-error flag when an index kernel ran since the
        /// last check.
        fn check_index_flag(&mut self) -> gorgon_core::Result<()> {
            if !self.index_check_pending {
                return Ok(());
            }
            self.index_check_pending = false;
            let mut flag = [0i32; 1];
            self.stream.memcpy_dtoh(&self.err_flag, &mut flag).map_err(CudaError::from)?;
            self.stream.synchronize().map_err(CudaError::from)?;
            if flag[0] != 0 {
                self.stream.memset_zeros(&mut self.err_flag).map_err(CudaError::from)?;
                return Err(CoreError::Index {
                    op: "take",
                    detail: "an index was out of range (detected on the GPU)".to_string(),
                });
            }
            Ok(())
        }
    }

    /// Launch configuration for a grid-stride kernel over `n` elements.
    pub(crate) fn cfg_elems(n: usize) -> LaunchConfig {
        let blocks = n.div_ceil(BLOCK as usize).clamp(1, 1 << 20) as u32;
        LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
    }

    /// Launch configuration with one block per row (kernels loop over extra rows).
    pub(crate) fn cfg_rows(rows: usize) -> LaunchConfig {
        let blocks = rows.clamp(1, 1 << 20) as u32;
        LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
    }

    /// Loads every kernel module for a device, compiling (or reusing the process cache, then
    /// the on-disk cache of [`crate::cache`]):
    /// a cubin for the device's own architecture first (no JIT, and it loads on any CUDA 13
    /// driver), then PTX for it as a fallback.
    fn load_modules(ctx: &Arc<CudaContext>, ordinal: usize, cc: (i32, i32)) -> Result<HashMap<String, Arc<CudaModule>>, CudaError> {
        let cache = MODULE_CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        let cached = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&ordinal).cloned();
        if let Some(images) = cached {
            return load_images(ctx, &images);
        }
        let mut last_err = None;
        for target in [Target::cubin_for(cc.0, cc.1), Target::ptx_for(cc.0, cc.1)] {
            let images = match compile_all_cached(&target) {
                Ok(i) => i,
                Err(e @ CudaError::Compile { .. }) if matches!(target, Target::Cubin(_)) => {
                    last_err = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match load_images(ctx, &images) {
                Ok(m) => {
                    cache.lock().unwrap_or_else(|p| p.into_inner()).insert(ordinal, images);
                    return Ok(m);
                }
                Err(e) => last_err = Some(e),
            }
        }
        let e = last_err.unwrap_or_else(|| CudaError::Driver("no kernel image could be loaded".into()));
        Err(match e {
            CudaError::Driver(m) if m.contains("UNSUPPORTED_PTX_VERSION") => CudaError::Driver(format!(
                "{m}: NVRTC is newer than the driver; install nvidia-cuda-nvrtc matching the driver's CUDA version"
            )),
            e => e,
        })
    }

    fn load_images(ctx: &Arc<CudaContext>, images: &[(String, Ptx)]) -> Result<HashMap<String, Arc<CudaModule>>, CudaError> {
        images
            .iter()
            .map(|(name, img)| {
                let m = ctx.load_module(img.clone()).map_err(|e| {
                    let e = CudaError::from(e);
                    CudaError::Driver(format!("loading kernel module `{name}`: {e}"))
                })?;
                Ok((name.clone(), m))
            })
            .collect()
    }

    impl Device for CudaDevice {
        type Buffer = CudaBuffer;

        fn kind(&self) -> DeviceKind {
            DeviceKind::Cuda(self.ordinal)
        }

        fn alloc(&mut self, dtype: DType, shape: &[usize]) -> gorgon_core::Result<CudaBuffer> {
            self.alloc_impl(dtype, shape, true)
        }

        fn upload(&mut self, src: &Tensor, dst: &mut CudaBuffer) -> gorgon_core::Result<()> {
            if src.dtype() != dst.dtype || src.shape() != dst.shape.as_slice() {
                return Err(CoreError::Shape {
                    op: "upload",
                    detail: format!(
                        "host tensor {} {} does not match device buffer {} {}",
                        fmt_shape(src.shape()),
                        src.dtype(),
                        fmt_shape(&dst.shape),
                        dst.dtype
                    ),
                });
            }
            // One transfer path for every dtype: `upload_from` (page-locked staging when it fits).
            match src {
                Tensor::F32(a) => self.upload_from::<f32>(a.as_standard_layout().as_slice().expect("standard layout"), dst)?,
                Tensor::F64(a) => self.upload_from::<f64>(a.as_standard_layout().as_slice().expect("standard layout"), dst)?,
                Tensor::I32(a) => self.upload_from::<i32>(a.as_standard_layout().as_slice().expect("standard layout"), dst)?,
                Tensor::I64(a) => self.upload_from::<i64>(a.as_standard_layout().as_slice().expect("standard layout"), dst)?,
                Tensor::Bool(a) => {
                    let host: Vec<u8> = a.iter().map(|&b| b as u8).collect();
                    self.upload_from::<u8>(&host, dst)?
                }
            }
            Ok(())
        }

        fn download(&mut self, src: &CudaBuffer) -> gorgon_core::Result<Tensor> {
            self.ctx.bind_to_thread().map_err(CudaError::from)?;
            self.check_index_flag()?;
            fn get<T: DevElem>(dev: &mut CudaDevice, src: &CudaBuffer) -> Result<Vec<T>, CudaError> {
                let mut host = vec![T::default(); src.len];
                dev.download_into(src, &mut host)?;
                Ok(host)
            }
            let shape = src.shape.clone();
            match &src.data {
                BufData::F32(_) => Tensor::from_vec(get::<f32>(self, src)?, &shape),
                BufData::F64(_) => Tensor::from_vec(get::<f64>(self, src)?, &shape),
                BufData::I32(_) => Tensor::from_vec(get::<i32>(self, src)?, &shape),
                BufData::I64(_) => Tensor::from_vec(get::<i64>(self, src)?, &shape),
                BufData::U8(_) => Tensor::from_vec(get::<u8>(self, src)?.into_iter().map(|v| v != 0).collect::<Vec<bool>>(), &shape),
            }
        }

        fn synchronize(&mut self) -> gorgon_core::Result<()> {
            self.ctx.bind_to_thread().map_err(CudaError::from)?;
            self.stream.synchronize().map_err(CudaError::from)?;
            self.check_index_flag()
        }
    }

    impl Drop for CudaDevice {
        fn drop(&mut self) {
            // Wait for queued work so buffers freed by their owners afterwards are idle;
            // errors are recorded by cudarc, never raised here.
            let _ = self.ctx.bind_to_thread();
            let _ = self.stream.synchronize();
            // cudarc's CudaBlas unwraps the handle destruction in its Drop; contain that.
            let blas = &mut self.blas;
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // SAFETY: dropped exactly once, here; never used afterwards.
                unsafe { ManuallyDrop::drop(blas) }
            }));
            // Remaining fields (functions, modules, flag buffer, stream, context) drop after
            // this in declaration order; cudarc records their errors instead of panicking.
        }
    }

    /// Checks that `b` has dtype `dt`.
    pub(crate) fn expect_dtype(op: &'static str, b: &CudaBuffer, dt: DType) -> gorgon_core::Result<()> {
        if b.dtype != dt {
            return Err(CoreError::DType { op, dtype: b.dtype, detail: format!("expected {dt}") });
        }
        Ok(())
    }

    /// Checks that `b` has exactly `shape`.
    pub(crate) fn expect_shape(op: &'static str, what: &str, b: &CudaBuffer, shape: &[usize]) -> gorgon_core::Result<()> {
        if b.shape != shape {
            return Err(CoreError::Shape {
                op,
                detail: format!("{what} has shape {}, expected {}", fmt_shape(&b.shape), fmt_shape(shape)),
            });
        }
        Ok(())
    }
}
