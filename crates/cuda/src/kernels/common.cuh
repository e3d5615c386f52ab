// Shared helpers for every gorgon_rs CUDA kernel source. Prepended to each source before
// NVRTC compiles it (NVRTC has no include path to us and no C/C++ standard headers).
//
// Conventions: sizes and indices are `long long`; every kernel walks its elements with a
// grid-stride loop, so any grid size is correct; extern "C" names carry a dtype suffix
// (_f32 _f64 _i32 _i64 _u8; u8 holds bool).

typedef unsigned char u8;
typedef long long i64;
typedef int i32;
typedef float f32;
typedef double f64;

#define GRID_LOOP(i, n) \
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)blockDim.x * gridDim.x)

// Up to 8 dimensions after the host merged contiguous ones. Strides are in elements and may
// be 0 (broadcast) or negative (reversed slices).
#define GORGON_MAX_DIMS 8
struct Layout {
  i64 ndim;
  i64 shape[GORGON_MAX_DIMS];
  i64 stride[3][GORGON_MAX_DIMS];
};

// Element offsets of the row-major linear index `i` for up to three operands.
__device__ __forceinline__ void layout_offsets(const Layout& L, i64 i, i64* o0, i64* o1, i64* o2) {
  i64 a = 0, b = 0, c = 0;
#pragma unroll
  for (int d = GORGON_MAX_DIMS - 1; d >= 0; --d) {
    if (d < L.ndim) {
      i64 n = L.shape[d];
      i64 k = i % n;
      i /= n;
      a += k * L.stride[0][d];
      b += k * L.stride[1][d];
      c += k * L.stride[2][d];
    }
  }
  *o0 = a; *o1 = b; *o2 = c;
}

// Overloads so templates can call one name for float and double.
#define GORGON_MATH1(name, ff, df) \
  __device__ __forceinline__ float name(float x) { return ff(x); } \
  __device__ __forceinline__ double name(double x) { return df(x); }
GORGON_MATH1(g_exp, expf, exp)
GORGON_MATH1(g_log, logf, log)
GORGON_MATH1(g_log1p, log1pf, log1p)
GORGON_MATH1(g_expm1, expm1f, expm1)
GORGON_MATH1(g_log2, log2f, log2)
GORGON_MATH1(g_sqrt, sqrtf, sqrt)
GORGON_MATH1(g_rsqrt, rsqrtf, rsqrt)
GORGON_MATH1(g_sin, sinf, sin)
GORGON_MATH1(g_cos, cosf, cos)
GORGON_MATH1(g_tanh, tanhf, tanh)
GORGON_MATH1(g_floor, floorf, floor)
GORGON_MATH1(g_ceil, ceilf, ceil)
GORGON_MATH1(g_fabs, fabsf, fabs)
__device__ __forceinline__ float g_pow(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double g_pow(double a, double b) { return pow(a, b); }
__device__ __forceinline__ float g_fmod(float a, float b) { return fmodf(a, b); }
__device__ __forceinline__ double g_fmod(double a, double b) { return fmod(a, b); }
__device__ __forceinline__ float g_copysign(float a, float b) { return copysignf(a, b); }
__device__ __forceinline__ double g_copysign(double a, double b) { return copysign(a, b); }

template <typename T> __device__ __forceinline__ bool g_isnan(T x) { return x != x; }

// Limits without <limits>: lowest()/highest() are the identities of max/min reductions.
template <typename T> struct Lim;
template <> struct Lim<float> {
  static __device__ __forceinline__ float highest() { return __int_as_float(0x7f800000); }
  static __device__ __forceinline__ float lowest() { return __int_as_float(0xff800000); }
  static __device__ __forceinline__ float nan() { return __int_as_float(0x7fc00000); }
};
template <> struct Lim<double> {
  static __device__ __forceinline__ double highest() { return __longlong_as_double(0x7ff0000000000000LL); }
  static __device__ __forceinline__ double lowest() { return __longlong_as_double((i64)0xfff0000000000000ULL); }
  static __device__ __forceinline__ double nan() { return __longlong_as_double(0x7ff8000000000000LL); }
};
template <> struct Lim<int> {
  static __device__ __forceinline__ int highest() { return 2147483647; }
  static __device__ __forceinline__ int lowest() { return -2147483647 - 1; }
  static __device__ __forceinline__ int nan() { return 0; }
};
template <> struct Lim<long long> {
  static __device__ __forceinline__ long long highest() { return 9223372036854775807LL; }
  static __device__ __forceinline__ long long lowest() { return -9223372036854775807LL - 1; }
  static __device__ __forceinline__ long long nan() { return 0; }
};
template <> struct Lim<unsigned char> {
  static __device__ __forceinline__ unsigned char highest() { return 255; }
  static __device__ __forceinline__ unsigned char lowest() { return 0; }
  static __device__ __forceinline__ unsigned char nan() { return 0; }
};

// NaN-propagating max/min like np.maximum / np.minimum (first NaN wins).
template <typename T> __device__ __forceinline__ T nan_max(T a, T b) {
  return g_isnan(a) ? a : (g_isnan(b) ? b : (a > b ? a : b));
}
template <typename T> __device__ __forceinline__ T nan_min(T a, T b) {
  return g_isnan(a) ? a : (g_isnan(b) ? b : (a < b ? a : b));
}

// atomicAdd for every element type we scatter into.
__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int* p, int v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(long long* p, long long v) {
  atomicAdd((unsigned long long*)p, (unsigned long long)v);  // two's complement: same bits
}

// Geometry of a 2-D convolution / pooling window over NCHW data (see conv.cu, pool.cu).
struct ConvGeom {
  i64 n, c, h, w;      // input batch, channels, height, width
  i64 kh, kw;          // window
  i64 oh, ow;          // output spatial size
  i64 sh, sw;          // stride
  i64 ph, pw;          // zero padding on both sides
  i64 dh, dw;          // dilation
};

// Compile-time "is a floating-point type" (for `if constexpr` around float-only code).
template <typename T> struct is_float_t { static constexpr bool value = false; };
template <> struct is_float_t<float> { static constexpr bool value = true; };
template <> struct is_float_t<double> { static constexpr bool value = true; };
