// Reductions of a contiguous tensor viewed as (outer, r, inner) into (outer, inner).
// Op codes = order of gorgon_core's ReduceOp: 0 Sum, 1 Mean, 2 Max, 3 Min, 4 Prod,
// 5 LogSumExp. `reduce_rows_*` (inner == 1) uses one 256-thread block per row and a shared-
// memory tree; `reduce_cols_*` uses one thread per output. Also argmax/argmin.

#define RED_THREADS 256

template <typename T> __device__ __forceinline__ T red_identity(int op) {
  switch (op) {
    case 2: return Lim<T>::lowest();
    case 3: return Lim<T>::highest();
    case 4: return T(1);
    default: return T(0);
  }
}

template <typename T> __device__ __forceinline__ T red_combine(int op, T a, T b) {
  switch (op) {
    case 2: return nan_max<T>(a, b);
    case 3: return nan_min<T>(a, b);
    case 4: return a * b;
    default: return a + b;
  }
}

// Block-wide reduction of `v` (all threads call it); returns the result to every thread.
template <typename T> __device__ T block_reduce(int op, T v) {
  __shared__ T buf[RED_THREADS];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int s = RED_THREADS / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) buf[threadIdx.x] = red_combine<T>(op, buf[threadIdx.x], buf[threadIdx.x + s]);
    __syncthreads();
  }
  T r = buf[0];
  __syncthreads();
  return r;
}

// log Σ exp over a row given its max `m` and Σ exp(x − m) `s`.
template <typename T> __device__ __forceinline__ T lse_finish(T m, T s) {
  if (g_isnan(m)) return m;
  if (m == Lim<T>::lowest() || m == Lim<T>::highest()) return m;
  return m + g_log(s);
}

template <typename T>
__device__ void reduce_rows(int op, i64 outer, i64 r, const T* x, T* out) {
  for (i64 row = blockIdx.x; row < outer; row += gridDim.x) {
    const T* xr = x + row * r;
    int inner_op = (op == 1 || op == 5) ? 0 : op;
    if constexpr (is_float_t<T>::value) if (op == 5) {
      T m = Lim<T>::lowest();
      for (i64 k = threadIdx.x; k < r; k += blockDim.x) m = nan_max<T>(m, xr[k]);
      m = block_reduce<T>(2, m);
      T s = T(0);
      if (!(g_isnan(m) || m == Lim<T>::lowest() || m == Lim<T>::highest()))
        for (i64 k = threadIdx.x; k < r; k += blockDim.x) s += g_exp(xr[k] - m);
      s = block_reduce<T>(0, s);
      if (threadIdx.x == 0) out[row] = lse_finish<T>(m, s);
      continue;
    }
    {
      T acc = red_identity<T>(inner_op);
      for (i64 k = threadIdx.x; k < r; k += blockDim.x) acc = red_combine<T>(inner_op, acc, xr[k]);
      acc = block_reduce<T>(inner_op, acc);
      if (threadIdx.x == 0) out[row] = (op == 1) ? acc / T(r) : acc;
    }
  }
}

template <typename T>
__device__ void reduce_cols(int op, i64 outer, i64 r, i64 inner, const T* x, T* out) {
  GRID_LOOP(e, outer * inner) {
    i64 o = e / inner, i = e % inner;
    const T* base = x + o * r * inner + i;
    if constexpr (is_float_t<T>::value) if (op == 5) {
      T m = Lim<T>::lowest();
      for (i64 k = 0; k < r; ++k) m = nan_max<T>(m, base[k * inner]);
      T s = T(0);
      if (!(g_isnan(m) || m == Lim<T>::lowest() || m == Lim<T>::highest()))
        for (i64 k = 0; k < r; ++k) s += g_exp(base[k * inner] - m);
      out[e] = lse_finish<T>(m, s);
      continue;
    }
    {
      int inner_op = (op == 1) ? 0 : op;
      T acc = red_identity<T>(inner_op);
      for (i64 k = 0; k < r; ++k) acc = red_combine<T>(inner_op, acc, base[k * inner]);
      out[e] = (op == 1) ? acc / T(r) : acc;
    }
  }
}

// Index of the first max (is_max) / min along r; the first NaN wins, like NumPy.
template <typename T>
__device__ void arg_reduce(int is_max, i64 outer, i64 r, i64 inner, const T* x, i64* out) {
  GRID_LOOP(e, outer * inner) {
    i64 o = e / inner, i = e % inner;
    const T* base = x + o * r * inner + i;
    i64 best = 0;
    T bv = base[0];
    if (!g_isnan(bv)) {
      for (i64 k = 1; k < r; ++k) {
        T v = base[k * inner];
        if (g_isnan(v)) { best = k; break; }
        if (is_max ? (v > bv) : (v < bv)) { bv = v; best = k; }
      }
    }
    out[e] = best;
  }
}

#define REDUCE(sfx, T) \
  extern "C" __global__ void reduce_rows_##sfx(int op, i64 outer, i64 r, const T* x, T* out) { \
    reduce_rows<T>(op, outer, r, x, out); \
  } \
  extern "C" __global__ void reduce_cols_##sfx(int op, i64 outer, i64 r, i64 inner, const T* x, T* out) { \
    reduce_cols<T>(op, outer, r, inner, x, out); \
  } \
  extern "C" __global__ void argreduce_##sfx(int is_max, i64 outer, i64 r, i64 inner, const T* x, i64* out) { \
    arg_reduce<T>(is_max, outer, r, inner, x, out); \
  }
REDUCE(f32, f32)
REDUCE(f64, f64)
REDUCE(i32, i32)
REDUCE(i64, i64)
