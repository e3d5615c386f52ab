//! Fixtures of the reduction, matmul, softmax and index tests: random tensors, the same
//! logical shape behind contiguous, permuted, reversed (negative-stride) and broadcast views,
//! tolerant comparison, and row-major index iteration.

use gorgon_core::{DType, Tensor, TensorView};

/// Deterministic xorshift generator.
pub struct XorShift(u64);
impl XorShift {
    /// A generator seeded from `seed`.
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// uniform in [-1, 1)
    pub fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
    /// Uniform in `[lo, hi]`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
}

pub fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

pub fn rand_tensor(dt: DType, shape: &[usize], seed: u64) -> Tensor {
    let mut r = XorShift::new(seed);
    let n = numel(shape);
    match dt {
        DType::F32 => {
            Tensor::from_vec((0..n).map(|_| r.f() as f32).collect::<Vec<_>>(), shape).unwrap()
        }
        DType::F64 => Tensor::from_vec((0..n).map(|_| r.f()).collect::<Vec<_>>(), shape).unwrap(),
        DType::I32 => Tensor::from_vec(
            (0..n).map(|_| r.int(-3, 3) as i32).collect::<Vec<_>>(),
            shape,
        )
        .unwrap(),
        DType::I64 => {
            Tensor::from_vec((0..n).map(|_| r.int(-3, 3)).collect::<Vec<_>>(), shape).unwrap()
        }
        DType::Bool => {
            Tensor::from_vec((0..n).map(|_| r.next() & 1 == 0).collect::<Vec<_>>(), shape).unwrap()
        }
    }
}

/// Owned storage behind differently laid-out views of the same logical shape.
pub enum Layout {
    Contiguous,
    /// stored with axes reversed, viewed through a transpose
    Permuted,
    /// stored in a longer axis-0 buffer, viewed through a step −1 slice
    Reversed,
    /// axis 0 of length 1 broadcast (only used when shape[0] is 1 at the source)
    Broadcast,
}

/// Builds storage for `layout` and returns it; `view_of` makes the view of logical `shape`.
pub fn storage(dt: DType, shape: &[usize], layout: &Layout, seed: u64) -> Tensor {
    match layout {
        Layout::Contiguous => rand_tensor(dt, shape, seed),
        Layout::Permuted => {
            let rev: Vec<usize> = shape.iter().rev().copied().collect();
            rand_tensor(dt, &rev, seed)
        }
        Layout::Reversed => {
            let mut s = shape.to_vec();
            if !s.is_empty() {
                s[0] = 2 * s[0] + 1;
            }
            rand_tensor(dt, &s, seed)
        }
        Layout::Broadcast => {
            let mut s = shape.to_vec();
            if !s.is_empty() {
                s[0] = 1;
            }
            rand_tensor(dt, &s, seed)
        }
    }
}

pub fn view_of<'a>(t: &'a Tensor, shape: &[usize], layout: &Layout) -> TensorView<'a> {
    match layout {
        Layout::Contiguous => t.view(),
        Layout::Permuted => {
            let nd = shape.len();
            let axes: Vec<usize> = (0..nd).rev().collect();
            t.view().permuted(&axes).unwrap()
        }
        Layout::Reversed => {
            if shape.is_empty() {
                return t.view();
            }
            let ts = t.shape();
            // elements 2*s0-1, 2*s0-3, ..., 1 (step -2) along axis 0
            let mut spec: Vec<(isize, isize, isize)> =
                ts.iter().map(|&d| (0, d as isize, 1)).collect();
            spec[0] = (ts[0] as isize - 2, -1, -2);
            let v = t.view().slice(&spec).unwrap();
            assert_eq!(v.shape(), shape);
            v
        }
        Layout::Broadcast => t.view().broadcast_to(shape).unwrap(),
    }
}

pub const LAYOUTS: [Layout; 4] = [
    Layout::Contiguous,
    Layout::Permuted,
    Layout::Reversed,
    Layout::Broadcast,
];

/// All subsets of `0..nd`, sorted.
pub fn subsets(nd: usize) -> Vec<Vec<usize>> {
    (0..1usize << nd)
        .map(|m| (0..nd).filter(|&a| m >> a & 1 == 1).collect())
        .collect()
}

pub fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * (1.0 + w.abs());
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

/// Row-major multi-index iteration.
pub fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    let n = numel(shape);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        f(&idx);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

pub fn layout_name(l: &Layout) -> &'static str {
    match l {
        Layout::Contiguous => "contiguous",
        Layout::Permuted => "permuted",
        Layout::Reversed => "reversed",
        Layout::Broadcast => "broadcast",
    }
}

/// The values of `data` (row-major, of `shape`) grouped by their index along the `kept` axes
/// (row-major over those axes), each group in row-major order.
pub fn group_by_kept(data: &[f64], shape: &[usize], kept: &[usize]) -> Vec<Vec<f64>> {
    let nout = kept.iter().map(|&a| shape[a]).product();
    let mut groups: Vec<Vec<f64>> = vec![vec![]; nout];
    let mut pos = 0;
    for_each_index(shape, |idx| {
        let mut o = 0;
        for &a in kept {
            o = o * shape[a] + idx[a];
        }
        groups[o].push(data[pos]);
        pos += 1;
    });
    groups
}
