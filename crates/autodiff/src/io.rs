//! Persistence in the safetensors format, through the `safetensors` crate (which validates
//! headers, offsets and sizes). Saving writes a temporary file in the target folder, syncs
//! it and renames it over the target, so a crash mid-save never destroys the previous file.
//! Loading validates everything before returning anything.

use crate::error::{Error, Result};
use gorgon_core::{DType, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

struct Entry<'a>(&'a Tensor);

fn to_st_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::I32 => Dtype::I32,
        DType::I64 => Dtype::I64,
        DType::Bool => Dtype::BOOL,
    }
}

fn le_bytes(t: &Tensor) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.nbytes());
    match t {
        Tensor::F32(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::F64(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::I32(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::I64(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::Bool(a) => a.iter().for_each(|v| out.push(*v as u8)),
    }
    out
}

impl View for Entry<'_> {
    fn dtype(&self) -> Dtype {
        to_st_dtype(self.0.dtype())
    }
    fn shape(&self) -> &[usize] {
        self.0.shape()
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(le_bytes(self.0))
    }
    fn data_len(&self) -> usize {
        self.0.nbytes()
    }
}

/// Saves named tensors to `path` atomically (temp file + fsync + rename).
pub fn save(path: &Path, items: &[(String, Tensor)]) -> Result<()> {
    let mut names = std::collections::HashSet::new();
    for (n, _) in items {
        if !names.insert(n) {
            return Err(Error::Format(format!("save: duplicate tensor name {n:?}")));
        }
    }
    let bytes = safetensors::serialize(items.iter().map(|(n, t)| (n.as_str(), Entry(t))), None)
        .map_err(|e| Error::Format(format!("save: cannot serialize: {e}")))?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let fname = path.file_name().ok_or_else(|| Error::Io(format!("save: {} is not a file path", path.display())))?;
    // Unique per process *and* per call, so concurrent saves to one path never share a
    // temporary file (the last rename wins; each rename is atomic).
    static SAVE_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nth = SAVE_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.tmp{}-{}", fname.to_string_lossy(), std::process::id(), nth));
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound(format!("save: {}: {e}", path.display())),
        _ => Error::Io(format!("save: {}: {e}", path.display())),
    };
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    if std::env::var_os("GORGON_TEST_CRASH_BEFORE_RENAME").is_some() {
        // Test hook: simulate a crash between writing and renaming.
        std::process::abort();
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })?;
    Ok(())
}

fn from_le<T, const N: usize>(data: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N).map(|c| f(c.try_into().expect("chunk size"))).collect()
}

/// Loads every tensor of a safetensors file. Truncated, corrupt or hostile files give
/// `Error::Format`; a missing file gives `Error::NotFound`.
pub fn load(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound(format!("load: no such file: {}", path.display())),
        _ => Error::Io(format!("load: {}: {e}", path.display())),
    })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::Format(format!("load: {} is not a valid safetensors file: {e}", path.display())))?;
    let mut out = Vec::new();
    for (name, v) in st.tensors() {
        let shape = v.shape().to_vec();
        let data = v.data();
        let t = match v.dtype() {
            Dtype::F32 => Tensor::from_vec(from_le(data, f32::from_le_bytes), &shape),
            Dtype::F64 => Tensor::from_vec(from_le(data, f64::from_le_bytes), &shape),
            Dtype::I32 => Tensor::from_vec(from_le(data, i32::from_le_bytes), &shape),
            Dtype::I64 => Tensor::from_vec(from_le(data, i64::from_le_bytes), &shape),
            Dtype::BOOL => Tensor::from_vec(data.iter().map(|&b| b != 0).collect::<Vec<bool>>(), &shape),
            other => return Err(Error::Format(format!("load: tensor {name:?} has unsupported dtype {other:?}"))),
        }
        .map_err(|e| Error::Format(format!("load: tensor {name:?}: {e}")))?;
        out.push((name, t));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_and_corruption() {
        let dir = std::env::temp_dir().join(format!("gorgon-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("w.safetensors");
        let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        let b = Tensor::from_vec(vec![7i64], &[]).unwrap();
        save(&p, &[("a".into(), a.clone()), ("b".into(), b.clone())]).unwrap();
        let l = load(&p).unwrap();
        assert_eq!(l, vec![("a".into(), a), ("b".into(), b)]);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(load(&p), Err(Error::Format(_))));
        let mut hostile = (u64::MAX / 2).to_le_bytes().to_vec();
        hostile.extend_from_slice(b"{}");
        std::fs::write(&p, &hostile).unwrap();
        assert!(matches!(load(&p), Err(Error::Format(_))));
        assert!(matches!(load(&dir.join("missing")), Err(Error::NotFound(_))));
        std::fs::remove_dir_all(&dir).ok();
    }
}
