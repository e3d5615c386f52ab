//! On-disk cache of compiled kernel images, so only the first process on a machine pays for
//! NVRTC (about 20 s of CPU for all cubins). Owns the cache folder and file naming; must not
//! touch devices. Every cache failure (unreadable, unwritable, corrupt) silently falls back
//! to compiling: the cache can only make things faster.
//!
//! Folder: `$GORGON_CUDA_CACHE` if set (`0`, `off` or an empty value disable the cache),
//! else `$XDG_CACHE_HOME/gorgon_rs/cuda`, else `~/.cache/gorgon_rs/cuda`. A file's name
//! includes a hash of the full source, the target, the compiler options, the NVRTC version
//! and this crate's version, so stale entries are never used.

use std::path::PathBuf;

use crate::error::CudaError;
use crate::kernels::{compile_source_bytes, image_from_bytes, Ptx, Target, NVRTC_OPTIONS, SOURCES};

/// Environment variable naming the cache folder (or `0`/`off` to disable it).
pub const CACHE_ENV: &str = "GORGON_CUDA_CACHE";

/// The cache folder in use, or `None` when caching is disabled or no home folder is known.
///
/// ```
/// let _ = gorgon_cuda::cache::cache_dir();
/// ```
pub fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os(CACHE_ENV) {
        Some(v) if v.is_empty() || v == "0" || v == "off" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))
            .map(|base| base.join("gorgon_rs").join("cuda")),
    }
}

/// 64-bit FNV-1a: a stable hash (unlike `DefaultHasher`, the same in every Rust release).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(&[0xff]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The cache file name of one source for one target.
fn file_name(name: &str, src: &str, target: &Target, nvrtc: (i32, i32)) -> String {
    let (kind, ext) = match target {
        Target::Ptx(_) => ("ptx", "ptx"),
        Target::Cubin(_) => ("cubin", "cubin"),
    };
    let opts = NVRTC_OPTIONS.join(" ");
    let version = format!("{}.{} {}", nvrtc.0, nvrtc.1, env!("CARGO_PKG_VERSION"));
    let h = fnv1a(&[src.as_bytes(), kind.as_bytes(), target.arch().as_bytes(), opts.as_bytes(), version.as_bytes()]);
    format!("{name}-{}-{h:016x}.{ext}", target.arch())
}

/// Compiles every kernel source for `target`, reusing and filling the on-disk cache; sources
/// missing from the cache compile in parallel.
pub fn compile_all_cached(target: &Target) -> Result<Vec<(String, Ptx)>, CudaError> {
    let nvrtc = crate::probe::nvrtc_version()?;
    let dir = cache_dir();
    std::thread::scope(|scope| {
        let jobs: Vec<_> = SOURCES
            .iter()
            .map(|&(name, src)| {
                let dir = dir.as_deref();
                (name, scope.spawn(move || compile_bytes_cached(dir, name, src, target, nvrtc)))
            })
            .collect();
        jobs.into_iter()
            .map(|(name, job)| {
                let bytes = job
                    .join()
                    .map_err(|_| CudaError::Compile { kernel: name.to_string(), log: "the compiler thread panicked".into() })??;
                Ok((name.to_string(), image_from_bytes(target, bytes)))
            })
            .collect()
    })
}

/// Compiles one source through the cache folder `dir` (when given): a cached image is read
/// back, a missing one compiled and stored.
fn compile_bytes_cached(dir: Option<&std::path::Path>, name: &str, src: &str, target: &Target, nvrtc: (i32, i32)) -> Result<Vec<u8>, CudaError> {
    let path = dir.map(|d| d.join(file_name(name, src, target, nvrtc)));
    if let Some(bytes) = path.as_ref().and_then(|p| std::fs::read(p).ok()).filter(|b| !b.is_empty()) {
        return Ok(bytes);
    }
    let bytes = compile_source_bytes(name, src, target)?;
    if let Some(p) = &path {
        store(p, &bytes);
    }
    Ok(bytes)
}

/// Compiles one generated source (a fused kernel) for `target` through the on-disk cache.
pub fn compile_cached(name: &str, src: &str, target: &Target) -> Result<Ptx, CudaError> {
    let nvrtc = crate::probe::nvrtc_version()?;
    let bytes = compile_bytes_cached(cache_dir().as_deref(), name, src, target, nvrtc)?;
    Ok(image_from_bytes(target, bytes))
}

/// Writes `bytes` to `path` atomically (temporary file + rename); errors are ignored.
fn store(path: &std::path::Path, bytes: &[u8]) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_change_with_source_target_and_version() {
        let t = Target::cubin_for(9, 0);
        let a = file_name("k", "src", &t, (13, 0));
        assert!(a.starts_with("k-sm_90-") && a.ends_with(".cubin"), "{a}");
        assert_ne!(a, file_name("k", "src2", &t, (13, 0)));
        assert_ne!(a, file_name("k", "src", &t, (13, 5)));
        assert_ne!(a, file_name("k", "src", &Target::cubin_for(8, 0), (13, 0)));
        assert_eq!(a, file_name("k", "src", &t, (13, 0)));
        assert!(file_name("k", "src", &Target::ptx_for(9, 0), (13, 0)).ends_with(".ptx"));
    }

    #[test]
    fn store_writes_atomically_and_creates_the_folder() {
        let dir = std::env::temp_dir().join(format!("gorgon_cuda_cache_test_{}", std::process::id()));
        let p = dir.join("sub").join("x.cubin");
        store(&p, b"abc");
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
