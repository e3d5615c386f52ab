// 2-D max and average pooling over NCHW data (geometry in ConvGeom; `c` = channels), forward
// and backward. Max pooling: padded cells never win; the first maximum wins; NaN wins.
// Backward passes scatter with atomicAdd into a zeroed input-shaped gradient.
// Average pooling divides by kh·kw, counting padded zeros (PyTorch's default).

template <typename T>
__device__ __forceinline__ i64 max_pool_arg(const ConvGeom& g, const T* x, i64 plane, i64 oy, i64 ox, T* best_out) {
  i64 best = -1;
  T bv = Lim<T>::lowest();
  for (i64 ki = 0; ki < g.kh; ++ki) {
    i64 iy = oy * g.sh - g.ph + ki * g.dh;
    if (iy < 0 || iy >= g.h) continue;
    for (i64 kj = 0; kj < g.kw; ++kj) {
      i64 ix = ox * g.sw - g.pw + kj * g.dw;
      if (ix < 0 || ix >= g.w) continue;
      i64 j = plane + iy * g.w + ix;
      T v = x[j];
      if (best < 0 || v > bv || (g_isnan(v) && !g_isnan(bv))) { best = j; bv = v; }
    }
  }
  *best_out = bv;
  return best;
}

template <typename T>
__device__ void max_pool_fwd(ConvGeom g, const T* x, T* y) {
  GRID_LOOP(e, g.n * g.c * g.oh * g.ow) {
    i64 ox = e % g.ow, oy = (e / g.ow) % g.oh, nc = e / (g.ow * g.oh);
    T bv;
    max_pool_arg<T>(g, x, nc * g.h * g.w, oy, ox, &bv);
    y[e] = bv;
  }
}

template <typename T>
__device__ void max_pool_bwd(ConvGeom g, const T* x, const T* dy, T* dx) {
  GRID_LOOP(e, g.n * g.c * g.oh * g.ow) {
    i64 ox = e % g.ow, oy = (e / g.ow) % g.oh, nc = e / (g.ow * g.oh);
    T bv;
    i64 j = max_pool_arg<T>(g, x, nc * g.h * g.w, oy, ox, &bv);
    if (j >= 0) atomic_add(dx + j, dy[e]);
  }
}

template <typename T>
__device__ void avg_pool_fwd(ConvGeom g, const T* x, T* y) {
  T inv = T(1) / T(g.kh * g.kw);
  GRID_LOOP(e, g.n * g.c * g.oh * g.ow) {
    i64 ox = e % g.ow, oy = (e / g.ow) % g.oh, nc = e / (g.ow * g.oh);
    const T* plane = x + nc * g.h * g.w;
    T s = T(0);
    for (i64 ki = 0; ki < g.kh; ++ki) {
      i64 iy = oy * g.sh - g.ph + ki * g.dh;
      if (iy < 0 || iy >= g.h) continue;
      for (i64 kj = 0; kj < g.kw; ++kj) {
        i64 ix = ox * g.sw - g.pw + kj * g.dw;
        if (ix < 0 || ix >= g.w) continue;
        s += plane[iy * g.w + ix];
      }
    }
    y[e] = s * inv;
  }
}

template <typename T>
__device__ void avg_pool_bwd(ConvGeom g, const T* dy, T* dx) {
  T inv = T(1) / T(g.kh * g.kw);
  GRID_LOOP(e, g.n * g.c * g.oh * g.ow) {
    i64 ox = e % g.ow, oy = (e / g.ow) % g.oh, nc = e / (g.ow * g.oh);
    T* plane = dx + nc * g.h * g.w;
    T v = dy[e] * inv;
    for (i64 ki = 0; ki < g.kh; ++ki) {
      i64 iy = oy * g.sh - g.ph + ki * g.dh;
      if (iy < 0 || iy >= g.h) continue;
      for (i64 kj = 0; kj < g.kw; ++kj) {
        i64 ix = ox * g.sw - g.pw + kj * g.dw;
        if (ix < 0 || ix >= g.w) continue;
        atomic_add(plane + iy * g.w + ix, v);
      }
    }
  }
}

#define POOL(sfx, T) \
  extern "C" __global__ void max_pool_fwd_##sfx(ConvGeom g, const T* x, T* y) { max_pool_fwd<T>(g, x, y); } \
  extern "C" __global__ void max_pool_bwd_##sfx(ConvGeom g, const T* x, const T* dy, T* dx) { max_pool_bwd<T>(g, x, dy, dx); } \
  extern "C" __global__ void avg_pool_fwd_##sfx(ConvGeom g, const T* x, T* y) { avg_pool_fwd<T>(g, x, y); } \
  extern "C" __global__ void avg_pool_bwd_##sfx(ConvGeom g, const T* dy, T* dx) { avg_pool_bwd<T>(g, dy, dx); }
POOL(f32, f32)
POOL(f64, f64)
