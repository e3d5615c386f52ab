//! Broadcast operands of fused expressions: an operand whose shape broadcasts to the output's
//! (NumPy rules, e.g. a bias `(K,)` under `(N, K)` or `(1, C, 1, 1)` under `(N, C, H, W)`) is
//! copied block by block into a register as runs: a run along the innermost merged
//! dimension is one `fill` (broadcast) or one slice copy (contiguous), so a bias row or a
//! per-channel constant costs about as much as reading a full-size operand.

/// The most dimensions a broadcast operand may have after merging (more are never fused).
pub const MAX_DIMS: usize = 16;

/// An operand read at `Σ coordᵢ · stridesᵢ` (stride 0 along broadcast dimensions), with
/// adjacent dimensions merged where the layout allows.
#[derive(Debug)]
pub struct Bcast<'a, T> {
    data: &'a [T],
    dims: Vec<usize>,
    strides: Vec<usize>,
}

impl<'a, T: Copy> Bcast<'a, T> {
    /// `data` (C-contiguous, shape `shape`) broadcast to `out`; `None` when `shape` does not
    /// broadcast to `out`, `data` is not `shape`'s size, or more than [`MAX_DIMS`]
    /// dimensions remain after merging.
    ///
    /// ```
    /// use gorgon_autodiff::fused::bcast::Bcast;
    /// let bias = [1.0, 2.0, 3.0];
    /// let b = Bcast::new(&bias, &[3], &[2, 3]).unwrap();
    /// let mut dst = [0.0; 5];
    /// b.gather(1, &mut dst);
    /// assert_eq!(dst, [2.0, 3.0, 1.0, 2.0, 3.0]);
    /// ```
    pub fn new(data: &'a [T], shape: &[usize], out: &[usize]) -> Option<Bcast<'a, T>> {
        if shape.len() > out.len() || data.len() != shape.iter().product::<usize>() {
            return None;
        }
        let pad = out.len() - shape.len();
        let in_dim = |d: usize| if d < pad { 1 } else { shape[d - pad] };
        // C-contiguous strides of the (padded) input, zeroed where it broadcasts.
        let mut strides = vec![0usize; out.len()];
        let mut acc = 1usize;
        for d in (0..out.len()).rev() {
            let k = in_dim(d);
            if k != out[d] && k != 1 {
                return None;
            }
            strides[d] = if k == 1 { 0 } else { acc };
            acc *= k;
        }
        // Merge d into d+1 when stepping d equals stepping d+1 all the way round.
        let (mut dims, mut st): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
        for d in 0..out.len() {
            if out[d] == 1 {
                continue;
            }
            match (dims.last_mut(), st.last_mut()) {
                (Some(pd), Some(ps)) if *ps == strides[d] * out[d] => {
                    *pd *= out[d];
                    *ps = strides[d];
                }
                _ => {
                    dims.push(out[d]);
                    st.push(strides[d]);
                }
            }
        }
        if dims.is_empty() {
            dims.push(1);
            st.push(0);
        }
        (dims.len() <= MAX_DIMS).then_some(Bcast { data, dims, strides: st })
    }

    /// Writes output elements `[at, at + dst.len())` of the broadcast operand into `dst`.
    #[inline]
    pub fn gather(&self, at: usize, dst: &mut [T]) {
        let r = self.dims.len();
        let last = r - 1;
        let (dims, strides) = (&self.dims[..], &self.strides[..]);
        let mut coord = [0usize; MAX_DIMS];
        let (mut rem, mut base) = (at, 0usize);
        for d in (0..r).rev() {
            coord[d] = rem % dims[d];
            rem /= dims[d];
            base += coord[d] * strides[d];
        }
        let (s, mut i) = (strides[last], 0);
        while i < dst.len() {
            let run = (dims[last] - coord[last]).min(dst.len() - i);
            let out = &mut dst[i..i + run];
            match s {
                0 => out.fill(self.data[base]),
                1 => out.copy_from_slice(&self.data[base..base + run]),
                _ => out.iter_mut().enumerate().for_each(|(k, o)| *o = self.data[base + k * s]),
            }
            i += run;
            coord[last] += run;
            base += run * s;
            // Carry into the outer dimensions.
            let mut d = last;
            while d > 0 && coord[d] == dims[d] {
                base -= dims[d] * strides[d];
                coord[d] = 0;
                d -= 1;
                coord[d] += 1;
                base += strides[d];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: the flat index into `data` of output element `i`.
    fn naive(shape: &[usize], out: &[usize], i: usize) -> usize {
        let pad = out.len() - shape.len();
        let (mut rem, mut idx, mut acc) = (i, 0, 1);
        for d in (0..out.len()).rev() {
            let c = rem % out[d];
            rem /= out[d];
            let k = if d < pad { 1 } else { shape[d - pad] };
            if k != 1 {
                idx += c * acc;
            }
            acc *= k;
        }
        idx
    }

    #[test]
    fn gathers_match_the_definition_for_every_block() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[3], &[2, 3]),
            (&[1, 4, 1, 1], &[2, 4, 3, 5]),
            (&[4, 1], &[4, 7]),
            (&[2, 1, 3], &[2, 5, 3]),
            (&[1], &[9]),
            (&[5, 1, 1], &[3, 5, 2, 2]),
            (&[2, 3], &[2, 3]),
            (&[1, 1, 6], &[1, 4, 6]),
        ];
        for &(shape, out) in cases {
            let data: Vec<f64> = (0..shape.iter().product::<usize>()).map(|v| v as f64).collect();
            let b = Bcast::new(&data, shape, out).unwrap();
            let n: usize = out.iter().product();
            for at in 0..n {
                for len in [1, 2, 5, 13, n - at] {
                    let len = len.min(n - at);
                    let mut dst = vec![-1.0; len];
                    b.gather(at, &mut dst);
                    for (k, &v) in dst.iter().enumerate() {
                        assert_eq!(v, data[naive(shape, out, at + k)], "{shape:?} -> {out:?} at {at} len {len} k {k}");
                    }
                }
            }
        }
    }

    #[test]
    fn refuses_what_does_not_broadcast() {
        assert!(Bcast::new(&[1.0, 2.0], &[2], &[3]).is_none());
        assert!(Bcast::new(&[1.0, 2.0], &[2, 1], &[3, 3]).is_none());
        assert!(Bcast::new(&[1.0], &[2], &[2]).is_none());
        assert!(Bcast::new(&[1.0; 6], &[2, 3], &[3]).is_none());
    }
}
