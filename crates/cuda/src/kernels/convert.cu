// `where` with three-way broadcasting (any condition dtype) and dtype casts between every
// pair of float32, float64, int32, int64 and bool (u8).

// out[i] = cond != 0 ? a : b; stride[0] = cond, stride[1] = a, stride[2] = b.
#define WHERE(csfx, C, sfx, T) \
  extern "C" __global__ void where_##csfx##_##sfx(i64 n, Layout L, const C* cond, const T* a, const T* b, T* out) { \
    GRID_LOOP(i, n) { \
      i64 oc, oa, ob; \
      layout_offsets(L, i, &oc, &oa, &ob); \
      out[i] = (cond[oc] != C(0)) ? a[oa] : b[ob]; \
    } \
  }
#define WHERE_ALL_COND(sfx, T) \
  WHERE(u8, u8, sfx, T) WHERE(i32, i32, sfx, T) WHERE(i64, i64, sfx, T) \
  WHERE(f32, f32, sfx, T) WHERE(f64, f64, sfx, T)
WHERE_ALL_COND(f32, f32)
WHERE_ALL_COND(f64, f64)
WHERE_ALL_COND(i32, i32)
WHERE_ALL_COND(i64, i64)
WHERE_ALL_COND(u8, u8)

// Casts: float -> int truncates toward zero; anything -> bool is != 0; bool -> x is 0/1.
template <typename S, typename D> __device__ __forceinline__ D cast_one(S x) { return (D)x; }
#define CAST_TO_BOOL(S) \
  template <> __device__ __forceinline__ u8 cast_one<S, u8>(S x) { return x != S(0) ? 1 : 0; }
CAST_TO_BOOL(f32)
CAST_TO_BOOL(f64)
CAST_TO_BOOL(i32)
CAST_TO_BOOL(i64)
#define CAST(ssfx, S, dsfx, D) \
  extern "C" __global__ void cast_##ssfx##_##dsfx(i64 n, const S* x, D* y) { \
    GRID_LOOP(i, n) { y[i] = cast_one<S, D>(x[i]); } \
  }
#define CAST_FROM(ssfx, S) \
  CAST(ssfx, S, f32, f32) CAST(ssfx, S, f64, f64) CAST(ssfx, S, i32, i32) \
  CAST(ssfx, S, i64, i64) CAST(ssfx, S, u8, u8)
CAST_FROM(f32, f32)
CAST_FROM(f64, f64)
CAST_FROM(i32, i32)
CAST_FROM(i64, i64)
CAST_FROM(u8, u8)

