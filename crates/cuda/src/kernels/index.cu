// Gather (take) and its adjoint scatter-add along one axis of a contiguous tensor viewed as
// (outer, axis_len, inner); indices are a flat array of `nidx` int32/int64 values. Negative
// indices count from the end; an out-of-range index writes 0 (take) or is skipped
// (scatter_add) and sets the sticky flag `*err` to 1, which the host checks at the next
// synchronize/download.

template <typename T, typename I>
__device__ void take(i64 outer, i64 axis_len, i64 nidx, i64 inner, const T* x, const I* idx, T* out, int* err) {
  GRID_LOOP(e, outer * nidx * inner) {
    i64 i = e % inner;
    i64 j = (e / inner) % nidx;
    i64 o = e / (inner * nidx);
    i64 k = (i64)idx[j];
    if (k < 0) k += axis_len;
    if (k < 0 || k >= axis_len) {
      out[e] = T(0);
      *err = 1;
    } else {
      out[e] = x[(o * axis_len + k) * inner + i];
    }
  }
}

template <typename T, typename I>
__device__ void scatter_add(i64 outer, i64 axis_len, i64 nidx, i64 inner, const T* g, const I* idx, T* out, int* err) {
  GRID_LOOP(e, outer * nidx * inner) {
    i64 i = e % inner;
    i64 j = (e / inner) % nidx;
    i64 o = e / (inner * nidx);
    i64 k = (i64)idx[j];
    if (k < 0) k += axis_len;
    if (k < 0 || k >= axis_len) {
      *err = 1;
    } else {
      atomic_add(out + (o * axis_len + k) * inner + i, g[e]);
    }
  }
}

#define INDEX(sfx, T, isfx, I) \
  extern "C" __global__ void take_##sfx##_##isfx(i64 outer, i64 axis_len, i64 nidx, i64 inner, const T* x, const I* idx, T* out, int* err) { \
    take<T, I>(outer, axis_len, nidx, inner, x, idx, out, err); \
  } \
  extern "C" __global__ void scatter_add_##sfx##_##isfx(i64 outer, i64 axis_len, i64 nidx, i64 inner, const T* g, const I* idx, T* out, int* err) { \
    scatter_add<T, I>(outer, axis_len, nidx, inner, g, idx, out, err); \
  }
#define INDEX_BOTH(sfx, T) INDEX(sfx, T, i32, i32) INDEX(sfx, T, i64, i64)
INDEX_BOTH(f32, f32)
INDEX_BOTH(f64, f64)
INDEX_BOTH(i32, i32)
INDEX_BOTH(i64, i64)
