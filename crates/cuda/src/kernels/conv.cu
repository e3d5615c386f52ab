// im2col / col2im for 2-D convolution over NCHW data (geometry in ConvGeom). `cols` is laid
// out (n, c·kh·kw, oh·ow): row (ci·kh + ki)·kw + kj, column oy·ow + ox, so that per image
// out (O, oh·ow) = W (O, c·kh·kw) @ cols. Padded cells read as 0. col2im is the adjoint:
// each input cell gathers every column entry that read it (no atomics).

template <typename T>
__device__ void im2col(ConvGeom g, const T* x, T* cols) {
  i64 L = g.oh * g.ow;
  i64 K = g.c * g.kh * g.kw;
  GRID_LOOP(e, g.n * K * L) {
    i64 l = e % L;
    i64 row = (e / L) % K;
    i64 b = e / (L * K);
    i64 kj = row % g.kw;
    i64 ki = (row / g.kw) % g.kh;
    i64 ci = row / (g.kw * g.kh);
    i64 oy = l / g.ow, ox = l % g.ow;
    i64 iy = oy * g.sh - g.ph + ki * g.dh;
    i64 ix = ox * g.sw - g.pw + kj * g.dw;
    T v = T(0);
    if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) v = x[((b * g.c + ci) * g.h + iy) * g.w + ix];
    cols[e] = v;
  }
}

template <typename T>
__device__ void col2im(ConvGeom g, const T* cols, T* x) {
  i64 L = g.oh * g.ow;
  i64 K = g.c * g.kh * g.kw;
  GRID_LOOP(e, g.n * g.c * g.h * g.w) {
    i64 ix = e % g.w;
    i64 iy = (e / g.w) % g.h;
    i64 ci = (e / (g.w * g.h)) % g.c;
    i64 b = e / (g.w * g.h * g.c);
    T acc = T(0);
    for (i64 ki = 0; ki < g.kh; ++ki) {
      i64 ty = iy + g.ph - ki * g.dh;
      if (ty < 0 || ty % g.sh != 0) continue;
      i64 oy = ty / g.sh;
      if (oy >= g.oh) continue;
      for (i64 kj = 0; kj < g.kw; ++kj) {
        i64 tx = ix + g.pw - kj * g.dw;
        if (tx < 0 || tx % g.sw != 0) continue;
        i64 ox = tx / g.sw;
        if (ox >= g.ow) continue;
        i64 row = (ci * g.kh + ki) * g.kw + kj;
        acc += cols[(b * K + row) * L + oy * g.ow + ox];
      }
    }
    x[e] = acc;
  }
}

#define CONV(sfx, T) \
  extern "C" __global__ void im2col_##sfx(ConvGeom g, const T* x, T* cols) { im2col<T>(g, x, cols); } \
  extern "C" __global__ void col2im_##sfx(ConvGeom g, const T* cols, T* x) { col2im<T>(g, cols, x); }
CONV(f32, f32)
CONV(f64, f64)
