// Elementwise kernels: unary math (op codes = order of gorgon_core's UnaryOp), binary ops
// with broadcasting through a Layout (op codes = order of BinaryOp), fill and strided copy
// (materializes transposes, slices and broadcasts). `where` and `cast` are in convert.cu.

// FUSED:BEGIN (the float device functions between these markers are also pasted into the
// fused-elementwise kernels the machine generates at run time; see src/fused.rs)
template <typename T>
__device__ T unary_float(int op, T x, T p0, T p1) {
  const T zero = T(0), one = T(1);
  switch (op) {
    case 0: return -x;                                                   // Neg
    case 1: return g_fabs(x);                                            // Abs
    case 2: return x > zero ? one : (x < zero ? -one : (g_isnan(x) ? x : zero));  // Sign
    case 3: return g_exp(x);                                             // Exp
    case 4: return g_log(x);                                             // Log
    case 5: return g_log1p(x);                                           // Log1p
    case 6: return g_expm1(x);                                           // Expm1
    case 7: return g_log2(x);                                            // Log2
    case 8: return g_sqrt(x);                                            // Sqrt
    case 9: return x * x;                                                // Square
    case 10: return x * x * x;                                           // Cube
    case 11: return one / x;                                             // Inverse
    case 12: return g_rsqrt(x);                                          // InverseSqrt
    case 13: return g_sin(x);                                            // Sin
    case 14: return g_cos(x);                                            // Cos
    case 15: return g_tanh(x);                                           // Tanh
    case 16: {                                                           // Sigmoid (stable)
      if (x >= zero) return one / (one + g_exp(-x));
      T e = g_exp(x);
      return e / (one + e);
    }
    case 17: return (x > zero ? x : zero) + g_log1p(g_exp(-g_fabs(x)));  // Softplus (stable)
    case 18: return x > zero ? x : (g_isnan(x) ? x : zero);             // Relu
    case 19: {                                                           // Mish
      T sp = (x > zero ? x : zero) + g_log1p(g_exp(-g_fabs(x)));
      return x * g_tanh(sp);
    }
    case 20: return g_floor(x);                                          // Floor
    case 21: return g_ceil(x);                                           // Ceil
    case 22: return x > zero ? x : p0 * x;                               // LeakyRelu(alpha)
    case 23: return x < p0 ? p0 : (x > p1 ? p1 : x);                     // Clip(lo, hi)
    case 24: return x > zero ? one : zero;                               // Step
    case 25: return (x >= p0 && x <= p1) ? one : zero;                   // InRange(lo, hi)
    case 26: return x > zero ? one : p0;                                 // LeakyStep(alpha)
    case 27: {                                                           // MishGrad
      T sp = (x > zero ? x : zero) + g_log1p(g_exp(-g_fabs(x)));
      T t = g_tanh(sp);
      T sig = x >= zero ? one / (one + g_exp(-x)) : g_exp(x) / (one + g_exp(x));
      return t + x * (one - t * t) * sig;
    }
    default: return Lim<T>::nan();
  }
}
// FUSED:END

// Integer unary ops: Neg, Abs, Sign, Square, Cube (the host rejects the others).
template <typename T>
__device__ T unary_int(int op, T x) {
  switch (op) {
    case 0: return -x;
    case 1: return x < 0 ? -x : x;
    case 2: return x > 0 ? T(1) : (x < 0 ? T(-1) : T(0));
    case 9: return x * x;
    case 10: return x * x * x;
    default: return T(0);
  }
}

#define UNARY_FLOAT(sfx, T) \
  extern "C" __global__ void unary_##sfx(int op, i64 n, const T* x, T* y, double p0, double p1) { \
    GRID_LOOP(i, n) { y[i] = unary_float<T>(op, x[i], (T)p0, (T)p1); } \
  }
#define UNARY_INT(sfx, T) \
  extern "C" __global__ void unary_##sfx(int op, i64 n, const T* x, T* y, double p0, double p1) { \
    GRID_LOOP(i, n) { y[i] = unary_int<T>(op, x[i]); } \
  }
UNARY_FLOAT(f32, f32)
UNARY_FLOAT(f64, f64)
UNARY_INT(i32, i32)
UNARY_INT(i64, i64)

// FUSED:BEGIN
// NumPy's floor_divide for floats (fmod-based, exact at integers).
template <typename T>
__device__ T float_floordiv(T a, T b) {
  if (b == T(0)) return a / b;
  T mod = g_fmod(a, b);
  T div = (a - mod) / b;
  if (mod != T(0) && ((b < T(0)) != (mod < T(0)))) div -= T(1);
  if (div != T(0)) {
    T fl = g_floor(div);
    if (div - fl > T(0.5)) fl += T(1);
    return fl;
  }
  return g_copysign(T(0), a / b);
}

template <typename T>
__device__ T binary_float(int op, T a, T b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return g_pow(a, b);
    case 5: return float_floordiv<T>(a, b);
    case 6: return nan_max<T>(a, b);
    case 7: return nan_min<T>(a, b);
    case 8: return a < b ? T(1) : T(0);
    case 9: return a <= b ? T(1) : T(0);
    case 10: return a > b ? T(1) : T(0);
    case 11: return a >= b ? T(1) : T(0);
    case 12: return a == b ? T(1) : T(0);
    case 13: return a != b ? T(1) : T(0);
    default: return Lim<T>::nan();
  }
}
// FUSED:END

template <typename T>
__device__ T int_pow(T a, T b) {
  if (b < 0) return (a == 1) ? T(1) : (a == -1 ? ((b & 1) ? T(-1) : T(1)) : T(0));
  T r = 1;
  while (b) {
    if (b & 1) r *= a;
    a *= a;
    b >>= 1;
  }
  return r;
}

template <typename T>
__device__ T binary_int(int op, T a, T b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return b == 0 ? T(0) : a / b;
    case 4: return int_pow<T>(a, b);
    case 5: {                                   // floor division, 0 on division by zero
      if (b == 0) return T(0);
      T q = a / b;
      if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
      return q;
    }
    case 6: return a > b ? a : b;
    case 7: return a < b ? a : b;
    case 8: return a < b;
    case 9: return a <= b;
    case 10: return a > b;
    case 11: return a >= b;
    case 12: return a == b;
    case 13: return a != b;
    default: return T(0);
  }
}

// out[i] = op(a[offset_a(i)], b[offset_b(i)]); stride[0] = a, stride[1] = b (stride[2] unused).
#define BINARY(sfx, T, FN) \
  extern "C" __global__ void binary_##sfx(int op, i64 n, Layout L, const T* a, const T* b, T* out) { \
    GRID_LOOP(i, n) { \
      i64 oa, ob, unused; \
      layout_offsets(L, i, &oa, &ob, &unused); \
      out[i] = FN<T>(op, a[oa], b[ob]); \
    } \
  }
BINARY(f32, f32, binary_float)
BINARY(f64, f64, binary_float)
BINARY(i32, i32, binary_int)
BINARY(i64, i64, binary_int)

// fill: y[i] = v. copy: y[i] = x[offset + offset_0(i)] (stride[0] = x's strides).
#define FILL_COPY(sfx, T) \
  extern "C" __global__ void fill_##sfx(i64 n, T* y, T v) { GRID_LOOP(i, n) { y[i] = v; } } \
  extern "C" __global__ void copy_##sfx(i64 n, Layout L, i64 offset, const T* x, T* y) { \
    GRID_LOOP(i, n) { \
      i64 ox, u1, u2; \
      layout_offsets(L, i, &ox, &u1, &u2); \
      y[i] = x[offset + ox]; \
    } \
  }
FILL_COPY(f32, f32)
FILL_COPY(f64, f64)
FILL_COPY(i32, i32)
FILL_COPY(i64, i64)
FILL_COPY(u8, u8)
