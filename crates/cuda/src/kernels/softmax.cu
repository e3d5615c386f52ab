// Softmax / log-softmax of a contiguous tensor viewed as (outer, r, inner) along r, and the
// backward passes from the forward output y: softmax dx = y (dy − Σ dy·y); log-softmax
// dx = dy − exp(y) Σ dy. `*_rows_*` (inner == 1): one 256-thread block per row;
// `*_cols_*`: one thread per (outer, inner) pair.

#define SM_THREADS 256

template <typename T> __device__ T sm_block_sum(T v) {
  __shared__ T buf[SM_THREADS];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int s = SM_THREADS / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  T r = buf[0];
  __syncthreads();
  return r;
}

template <typename T> __device__ T sm_block_max(T v) {
  __shared__ T buf[SM_THREADS];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int s = SM_THREADS / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) buf[threadIdx.x] = nan_max<T>(buf[threadIdx.x], buf[threadIdx.x + s]);
    __syncthreads();
  }
  T r = buf[0];
  __syncthreads();
  return r;
}

template <typename T>
__device__ void softmax_rows(int log, i64 outer, i64 r, const T* x, T* y) {
  for (i64 row = blockIdx.x; row < outer; row += gridDim.x) {
    const T* xr = x + row * r;
    T* yr = y + row * r;
    T m = Lim<T>::lowest();
    for (i64 k = threadIdx.x; k < r; k += blockDim.x) m = nan_max<T>(m, xr[k]);
    m = sm_block_max<T>(m);
    // A row of all −inf would give NaN after the shift; keep the shift finite.
    if (m == Lim<T>::lowest()) m = T(0);
    T s = T(0);
    for (i64 k = threadIdx.x; k < r; k += blockDim.x) s += g_exp(xr[k] - m);
    s = sm_block_sum<T>(s);
    T ls = g_log(s);
    for (i64 k = threadIdx.x; k < r; k += blockDim.x)
      yr[k] = log ? (xr[k] - m - ls) : g_exp(xr[k] - m) / s;
  }
}

template <typename T>
__device__ void softmax_cols(int log, i64 outer, i64 r, i64 inner, const T* x, T* y) {
  GRID_LOOP(e, outer * inner) {
    i64 o = e / inner, i = e % inner;
    const T* xb = x + o * r * inner + i;
    T* yb = y + o * r * inner + i;
    T m = Lim<T>::lowest();
    for (i64 k = 0; k < r; ++k) m = nan_max<T>(m, xb[k * inner]);
    if (m == Lim<T>::lowest()) m = T(0);
    T s = T(0);
    for (i64 k = 0; k < r; ++k) s += g_exp(xb[k * inner] - m);
    T ls = g_log(s);
    for (i64 k = 0; k < r; ++k)
      yb[k * inner] = log ? (xb[k * inner] - m - ls) : g_exp(xb[k * inner] - m) / s;
  }
}

template <typename T>
__device__ void softmax_bwd_rows(int log, i64 outer, i64 r, const T* y, const T* dy, T* dx) {
  for (i64 row = blockIdx.x; row < outer; row += gridDim.x) {
    const T* yr = y + row * r;
    const T* gr = dy + row * r;
    T* dr = dx + row * r;
    T s = T(0);
    for (i64 k = threadIdx.x; k < r; k += blockDim.x) s += log ? gr[k] : gr[k] * yr[k];
    s = sm_block_sum<T>(s);
    for (i64 k = threadIdx.x; k < r; k += blockDim.x)
      dr[k] = log ? (gr[k] - g_exp(yr[k]) * s) : yr[k] * (gr[k] - s);
  }
}

template <typename T>
__device__ void softmax_bwd_cols(int log, i64 outer, i64 r, i64 inner, const T* y, const T* dy, T* dx) {
  GRID_LOOP(e, outer * inner) {
    i64 o = e / inner, i = e % inner;
    i64 base = o * r * inner + i;
    T s = T(0);
    for (i64 k = 0; k < r; ++k) {
      i64 j = base + k * inner;
      s += log ? dy[j] : dy[j] * y[j];
    }
    for (i64 k = 0; k < r; ++k) {
      i64 j = base + k * inner;
      dx[j] = log ? (dy[j] - g_exp(y[j]) * s) : y[j] * (dy[j] - s);
    }
  }
}

#define SOFTMAX(sfx, T) \
  extern "C" __global__ void softmax_rows_##sfx(int log, i64 outer, i64 r, const T* x, T* y) { \
    softmax_rows<T>(log, outer, r, x, y); \
  } \
  extern "C" __global__ void softmax_cols_##sfx(int log, i64 outer, i64 r, i64 inner, const T* x, T* y) { \
    softmax_cols<T>(log, outer, r, inner, x, y); \
  } \
  extern "C" __global__ void softmax_bwd_rows_##sfx(int log, i64 outer, i64 r, const T* y, const T* dy, T* dx) { \
    softmax_bwd_rows<T>(log, outer, r, y, dy, dx); \
  } \
  extern "C" __global__ void softmax_bwd_cols_##sfx(int log, i64 outer, i64 r, i64 inner, const T* y, const T* dy, T* dx) { \
    softmax_bwd_cols<T>(log, outer, r, inner, y, dy, dx); \
  }
SOFTMAX(f32, f32)
SOFTMAX(f64, f64)
