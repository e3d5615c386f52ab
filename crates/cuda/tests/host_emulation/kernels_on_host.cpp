// Runs every kernel family of src/kernels/*.cu on the host (see cuda_host_shim.h) against
// straightforward reference loops. Exit status 0 when all checks pass. Launched by
// tests/host_emulation.rs; by hand:
//   c++ -std=c++20 -O1 -pthread kernels_on_host.cpp -o /tmp/k && /tmp/k
#include "cuda_host_shim.h"

#include <cstdio>
#include <algorithm>
#include <limits>

#include "../../src/kernels/common.cuh"
#include "../../src/kernels/elementwise.cu"
#include "../../src/kernels/convert.cu"
#include "../../src/kernels/reduce.cu"
#include "../../src/kernels/softmax.cu"
#include "../../src/kernels/index.cu"
#include "../../src/kernels/conv.cu"
#include "../../src/kernels/pool.cu"
#include "../../src/kernels/optim.cu"

static int failures = 0;
static int checks = 0;

static bool close(double got, double want, double tol) {
  if (std::isnan(got) && std::isnan(want)) return true;
  if (got == want) return true;
  return std::fabs(got - want) <= tol * (1.0 + std::fabs(want));
}

#define CHECK_CLOSE(what, got, want, tol)                                                  \
  do {                                                                                     \
    ++checks;                                                                              \
    double g_ = (double)(got), w_ = (double)(want);                                        \
    if (!close(g_, w_, tol)) {                                                             \
      if (++failures < 40) std::printf("FAIL %s: got %.17g want %.17g (line %d)\n", what, g_, w_, __LINE__); \
    }                                                                                      \
  } while (0)

static unsigned long long rng_state = 12345;
static double uniform(double lo, double hi) {
  rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return lo + (hi - lo) * ((rng_state >> 11) * (1.0 / 9007199254740992.0));
}
static std::vector<double> randv(size_t n, double lo, double hi) {
  std::vector<double> v(n);
  for (auto& x : v) x = uniform(lo, hi);
  return v;
}
template <typename T> static std::vector<T> conv_to(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

static Layout make_layout(std::vector<i64> shape, std::vector<std::vector<i64>> strides) {
  Layout L{};
  L.ndim = (i64)shape.size();
  for (size_t d = 0; d < shape.size(); ++d) {
    L.shape[d] = shape[d];
    for (size_t k = 0; k < strides.size(); ++k) L.stride[k][d] = strides[k][d];
  }
  return L;
}

static double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
static double softplus(double x) { return std::log1p(std::exp(x)); }

template <typename T> static void test_unary(double tol) {
  auto xs = randv(300, -3, 3);
  xs[0] = 0.0;
  xs[1] = std::numeric_limits<double>::quiet_NaN();
  auto x = conv_to<T>(xs);
  std::vector<T> y(x.size());
  for (int op = 0; op <= 27; ++op) {
    double p0 = (op == 23 || op == 25) ? -0.5 : 0.1, p1 = 0.5;
    auto k = std::is_same<T, float>::value ? (void (*)(int, i64, const T*, T*, double, double))unary_f32
                                           : (void (*)(int, i64, const T*, T*, double, double))unary_f64;
    host_launch(2, 64, k, op, (i64)x.size(), x.data(), y.data(), p0, p1);
    for (size_t i = 0; i < x.size(); ++i) {
      double v = (double)x[i], want;
      bool pos_only = (op == 4 || op == 7 || op == 8 || op == 12);
      double a = pos_only ? std::fabs(v) + 0.1 : v;
      if (pos_only) continue;  // checked below on positive inputs
      switch (op) {
        case 0: want = -a; break;
        case 1: want = std::fabs(a); break;
        case 2: want = std::isnan(a) ? a : (a > 0) - (a < 0); break;
        case 3: want = std::exp(a); break;
        case 5: want = std::log1p(a); break;
        case 6: want = std::expm1(a); break;
        case 9: want = a * a; break;
        case 10: want = a * a * a; break;
        case 11: want = 1.0 / a; break;
        case 13: want = std::sin(a); break;
        case 14: want = std::cos(a); break;
        case 15: want = std::tanh(a); break;
        case 16: want = sigmoid(a); break;
        case 17: want = softplus(a); break;
        case 18: want = std::isnan(a) ? a : (a > 0 ? a : 0); break;
        case 19: want = a * std::tanh(softplus(a)); break;
        case 20: want = std::floor(a); break;
        case 21: want = std::ceil(a); break;
        case 22: want = a > 0 ? a : 0.1 * a; break;
        case 23: want = std::isnan(a) ? a : std::min(std::max(a, -0.5), 0.5); break;
        case 24: want = a > 0 ? 1 : 0; break;
        case 25: want = (a >= -0.5 && a <= 0.5) ? 1 : 0; break;
        case 26: want = a > 0 ? 1 : 0.1; break;
        case 27: {
          double t = std::tanh(softplus(a));
          want = t + a * (1 - t * t) * sigmoid(a);
          break;
        }
        default: want = 0;
      }
      char what[64];
      std::snprintf(what, sizeof what, "unary op %d x=%g", op, v);
      CHECK_CLOSE(what, y[i], want, tol);
    }
  }
  // log, log2, sqrt, rsqrt on positive inputs
  auto ps = conv_to<T>(randv(100, 0.05, 5));
  std::vector<T> py(ps.size());
  int pos_ops[] = {4, 7, 8, 12};
  for (int op : pos_ops) {
    auto k = std::is_same<T, float>::value ? (void (*)(int, i64, const T*, T*, double, double))unary_f32
                                           : (void (*)(int, i64, const T*, T*, double, double))unary_f64;
    host_launch(1, 32, k, op, (i64)ps.size(), ps.data(), py.data(), 0.0, 0.0);
    for (size_t i = 0; i < ps.size(); ++i) {
      double a = ps[i];
      double want = op == 4 ? std::log(a) : op == 7 ? std::log2(a) : op == 8 ? std::sqrt(a) : 1.0 / std::sqrt(a);
      CHECK_CLOSE("positive unary", py[i], want, tol);
    }
  }
  // stability at extremes
  std::vector<T> ex = {(T)-1000, (T)1000, (T)-80, (T)80};
  std::vector<T> ey(4);
  auto k = std::is_same<T, float>::value ? (void (*)(int, i64, const T*, T*, double, double))unary_f32
                                         : (void (*)(int, i64, const T*, T*, double, double))unary_f64;
  host_launch(1, 4, k, 16, (i64)4, ex.data(), ey.data(), 0.0, 0.0);
  CHECK_CLOSE("sigmoid(-1000)", ey[0], 0.0, 0);
  CHECK_CLOSE("sigmoid(1000)", ey[1], 1.0, 0);
  host_launch(1, 4, k, 17, (i64)4, ex.data(), ey.data(), 0.0, 0.0);
  CHECK_CLOSE("softplus(-1000)", ey[0], 0.0, 0);
  CHECK_CLOSE("softplus(1000)", ey[1], 1000.0, 1e-12);
}

static double np_floordiv(double a, double b) { return std::floor(a / b); }

static void test_binary() {
  // (3, 1, 5) op (4, 1) -> (3, 4, 5), via a layout with broadcast strides
  auto av = randv(15, 0.5, 4), bv = randv(4, 0.5, 4);
  std::vector<double> a(av), b(bv), out(60);
  Layout L = make_layout({3, 4, 5}, {{5, 0, 1}, {0, 1, 0}});
  for (int op = 0; op <= 13; ++op) {
    host_launch(3, 8, binary_f64, op, (i64)60, L, a.data(), b.data(), out.data());
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j)
        for (int k = 0; k < 5; ++k) {
          double x = a[i * 5 + k], y = b[j], want;
          switch (op) {
            case 0: want = x + y; break;
            case 1: want = x - y; break;
            case 2: want = x * y; break;
            case 3: want = x / y; break;
            case 4: want = std::pow(x, y); break;
            case 5: want = np_floordiv(x, y); break;
            case 6: want = std::max(x, y); break;
            case 7: want = std::min(x, y); break;
            case 8: want = x < y; break;
            case 9: want = x <= y; break;
            case 10: want = x > y; break;
            case 11: want = x >= y; break;
            case 12: want = x == y; break;
            default: want = x != y; break;
          }
          CHECK_CLOSE("binary f64", out[(i * 4 + j) * 5 + k], want, 1e-14);
        }
  }
  // floor division corner cases (NumPy): -7 // 2 = -4, 7 // -2 = -4, -7.5 // 2 = -4, 1 // 0 = inf
  std::vector<double> fa = {-7, 7, -7.5, 1, 6}, fb = {2, -2, 2, 0, 3}, fo(5);
  Layout L1 = make_layout({5}, {{1}, {1}});
  host_launch(1, 5, binary_f64, 5, (i64)5, L1, fa.data(), fb.data(), fo.data());
  double fw[] = {-4, -4, -4, INFINITY, 2};
  for (int i = 0; i < 5; ++i) CHECK_CLOSE("float floordiv", fo[i], fw[i], 0);
  std::vector<i32> ia = {-7, 7, 7, 5, 2, 3}, ib = {2, -2, 0, 3, 10, -1}, io(6);
  Layout L2 = make_layout({6}, {{1}, {1}});
  host_launch(1, 6, binary_i32, 5, (i64)6, L2, ia.data(), ib.data(), io.data());
  int iw[] = {-4, -4, 0, 1, 0, -3};
  for (int i = 0; i < 6; ++i) CHECK_CLOSE("int floordiv", io[i], iw[i], 0);
  host_launch(1, 6, binary_i32, 4, (i64)6, L2, ia.data(), ib.data(), io.data());
  int pw[] = {49, 0, 1, 125, 1024, 0};  // 7^-2 -> 0, 3^-1 -> 0 (integer power)
  for (int i = 0; i < 6; ++i) CHECK_CLOSE("int pow", io[i], pw[i], 0);
  // NaN propagation of maximum
  std::vector<double> na = {NAN, 1}, nb = {1, NAN}, no(2);
  Layout L3 = make_layout({2}, {{1}, {1}});
  host_launch(1, 2, binary_f64, 6, (i64)2, L3, na.data(), nb.data(), no.data());
  CHECK_CLOSE("max nan a", no[0], NAN, 0);
  CHECK_CLOSE("max nan b", no[1], NAN, 0);
}

static void test_where_cast_copy() {
  std::vector<u8> c = {1, 0, 1};
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {-1, -2}, o(6);
  // out (3, 2): cond (3, 1), a (3, 2), b (2,)
  Layout L = make_layout({3, 2}, {{1, 0}, {2, 1}, {0, 1}});
  host_launch(1, 4, where_u8_f32, (i64)6, L, c.data(), a.data(), b.data(), o.data());
  float w[] = {1, 2, -1, -2, 5, 6};
  for (int i = 0; i < 6; ++i) CHECK_CLOSE("where", o[i], w[i], 0);
  std::vector<double> x = {-2.7, -0.5, 0.0, 0.5, 2.7};
  std::vector<i32> xi(5);
  std::vector<u8> xb(5);
  host_launch(1, 5, cast_f64_i32, (i64)5, x.data(), xi.data());
  host_launch(1, 5, cast_f64_u8, (i64)5, x.data(), xb.data());
  int wi[] = {-2, 0, 0, 0, 2};
  int wb[] = {1, 1, 0, 1, 1};
  for (int i = 0; i < 5; ++i) {
    CHECK_CLOSE("cast f64->i32", xi[i], wi[i], 0);
    CHECK_CLOSE("cast f64->bool", xb[i], wb[i], 0);
  }
  std::vector<u8> bools = {0, 1, 1};
  std::vector<float> bf(3);
  host_launch(1, 3, cast_u8_f32, (i64)3, bools.data(), bf.data());
  CHECK_CLOSE("cast bool->f32", bf[1], 1.0, 0);
  // copy: x (2, 3, 4) contiguous, view [:, :, 3::-2] -> shape (2, 3, 2), strides (12, 4, -2), offset 3
  std::vector<i64> src(24), dst(12);
  for (int i = 0; i < 24; ++i) src[i] = i;
  Layout LC = make_layout({2, 3, 2}, {{12, 4, -2}});
  host_launch(2, 4, copy_i64, (i64)12, LC, (i64)3, src.data(), dst.data());
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) CHECK_CLOSE("copy", dst[(i * 3 + j) * 2 + k], i * 12 + j * 4 + 3 - 2 * k, 0);
  std::vector<float> f(7);
  host_launch(2, 2, fill_f32, (i64)7, f.data(), 2.5f);
  for (float v : f) CHECK_CLOSE("fill", v, 2.5, 0);
}

template <typename T>
static double ref_reduce(int op, const std::vector<T>& x, i64 o, i64 r, i64 inner, i64 i) {
  double acc = (op == 2) ? -INFINITY : (op == 3) ? INFINITY : (op == 4) ? 1 : 0;
  double m = -INFINITY;
  for (i64 k = 0; k < r; ++k) m = std::max(m, (double)x[(o * r + k) * inner + i]);
  for (i64 k = 0; k < r; ++k) {
    double v = x[(o * r + k) * inner + i];
    switch (op) {
      case 2: acc = std::max(acc, v); break;
      case 3: acc = std::min(acc, v); break;
      case 4: acc *= v; break;
      case 5: acc += std::exp(v - m); break;
      default: acc += v;
    }
  }
  if (op == 1) acc /= (double)r;
  if (op == 5) acc = (m == -INFINITY) ? m : m + std::log(acc);
  return acc;
}

static void test_reduce() {
  for (auto dims : std::vector<std::vector<i64>>{{3, 300, 1}, {2, 70, 5}, {1, 1000, 1}, {4, 0, 1}, {5, 3, 1}}) {
    i64 outer = dims[0], r = dims[1], inner = dims[2];
    auto x = randv(outer * r * inner, 0.9, 1.1);
    std::vector<double> out(outer * inner);
    for (int op = 0; op <= 5; ++op) {
      if (r == 0 && (op == 2 || op == 3)) continue;
      if (inner == 1) host_launch(2, 256, reduce_rows_f64, op, outer, r, x.data(), out.data());
      else host_launch(3, 16, reduce_cols_f64, op, outer, r, inner, x.data(), out.data());
      for (i64 o = 0; o < outer; ++o)
        for (i64 i = 0; i < inner; ++i) {
          char what[64];
          std::snprintf(what, sizeof what, "reduce op %d (%lld,%lld,%lld)", op, outer, r, inner);
          CHECK_CLOSE(what, out[o * inner + i], ref_reduce(op, x, o, r, inner, i), 1e-12);
        }
      if (inner == 1 && r > 0) {  // the column kernel handles inner == 1 as well
        host_launch(1, 8, reduce_cols_f64, op, outer, r, (i64)1, x.data(), out.data());
        for (i64 o = 0; o < outer; ++o) CHECK_CLOSE("reduce cols inner=1", out[o], ref_reduce(op, x, o, r, 1, 0), 1e-12);
      }
    }
  }
  // NaN propagates through max; logsumexp of all -inf is -inf; float32 sum
  std::vector<float> xn = {1, NAN, 3, 2}, on(1);
  host_launch(1, 256, reduce_rows_f32, 2, (i64)1, (i64)4, xn.data(), on.data());
  CHECK_CLOSE("max with nan", on[0], NAN, 0);
  std::vector<float> xi = {-INFINITY, -INFINITY};
  host_launch(1, 256, reduce_rows_f32, 5, (i64)1, (i64)2, xi.data(), on.data());
  CHECK_CLOSE("lse of -inf", on[0], -INFINITY, 0);
  std::vector<float> big = {1000, 1000};
  host_launch(1, 256, reduce_rows_f32, 5, (i64)1, (i64)2, big.data(), on.data());
  CHECK_CLOSE("lse stable", on[0], 1000 + std::log(2.0), 1e-6);
  // integer reductions
  std::vector<i64> xi64 = {5, -3, 9, 9, -7, 2};
  std::vector<i64> oi(2);
  host_launch(1, 256, reduce_rows_i64, 2, (i64)2, (i64)3, xi64.data(), oi.data());
  CHECK_CLOSE("int max", oi[0], 9, 0);
  CHECK_CLOSE("int max", oi[1], 9, 0);
  host_launch(1, 4, reduce_cols_i64, 4, (i64)2, (i64)3, (i64)1, xi64.data(), oi.data());
  CHECK_CLOSE("int prod", oi[0], -135, 0);
  CHECK_CLOSE("int prod", oi[1], -126, 0);
  // argmax / argmin: first occurrence, NaN wins
  std::vector<double> xa = {1, 5, 5, 0, NAN, 7, NAN, 0};
  std::vector<i64> ia(2);
  host_launch(1, 2, argreduce_f64, 1, (i64)2, (i64)4, (i64)1, xa.data(), ia.data());
  CHECK_CLOSE("argmax first", ia[0], 1, 0);
  CHECK_CLOSE("argmax nan", ia[1], 0, 0);
  host_launch(1, 2, argreduce_f64, 0, (i64)2, (i64)4, (i64)1, xa.data(), ia.data());
  CHECK_CLOSE("argmin", ia[0], 3, 0);
  // columns: x (1, 3, 2) along r
  std::vector<i32> xc = {1, 9, 4, 2, 4, 9};
  host_launch(1, 2, argreduce_i32, 1, (i64)1, (i64)3, (i64)2, xc.data(), ia.data());
  CHECK_CLOSE("argmax col0", ia[0], 1, 0);
  CHECK_CLOSE("argmax col1", ia[1], 0, 0);
}

static void test_softmax() {
  for (auto dims : std::vector<std::vector<i64>>{{3, 300, 1}, {2, 7, 5}}) {
    i64 outer = dims[0], r = dims[1], inner = dims[2];
    auto x = randv(outer * r * inner, -5, 5);
    auto dy = randv(x.size(), -1, 1);
    std::vector<double> y(x.size()), dx(x.size());
    for (int log = 0; log <= 1; ++log) {
      if (inner == 1) {
        host_launch(2, 256, softmax_rows_f64, log, outer, r, x.data(), y.data());
        host_launch(2, 256, softmax_bwd_rows_f64, log, outer, r, y.data(), dy.data(), dx.data());
      } else {
        host_launch(2, 4, softmax_cols_f64, log, outer, r, inner, x.data(), y.data());
        host_launch(2, 4, softmax_bwd_cols_f64, log, outer, r, inner, y.data(), dy.data(), dx.data());
      }
      for (i64 o = 0; o < outer; ++o)
        for (i64 i = 0; i < inner; ++i) {
          auto at = [&](i64 k) { return (o * r + k) * inner + i; };
          double m = -INFINITY, s = 0;
          for (i64 k = 0; k < r; ++k) m = std::max(m, x[at(k)]);
          for (i64 k = 0; k < r; ++k) s += std::exp(x[at(k)] - m);
          std::vector<double> p(r);
          for (i64 k = 0; k < r; ++k) p[k] = std::exp(x[at(k)] - m) / s;
          double dot = 0, sum = 0;
          for (i64 k = 0; k < r; ++k) { dot += dy[at(k)] * p[k]; sum += dy[at(k)]; }
          for (i64 k = 0; k < r; ++k) {
            double want = log ? std::log(p[k]) : p[k];
            CHECK_CLOSE("softmax", y[at(k)], want, 1e-12);
            double wg = log ? dy[at(k)] - p[k] * sum : p[k] * (dy[at(k)] - dot);
            CHECK_CLOSE("softmax bwd", dx[at(k)], wg, 1e-10);
          }
        }
    }
  }
  std::vector<float> xs = {1000, 0, -1000}, ys(3);
  host_launch(1, 256, softmax_rows_f32, 0, (i64)1, (i64)3, xs.data(), ys.data());
  CHECK_CLOSE("softmax extreme", ys[0], 1.0, 0);
  CHECK_CLOSE("softmax extreme", ys[2], 0.0, 0);
}

static void test_index() {
  // x (2, 4, 3), take indices {0, 3, -1, 1} along axis 1
  auto x = randv(24, -1, 1);
  std::vector<i64> idx = {0, 3, -1, 1};
  std::vector<double> out(24);
  int err = 0;
  host_launch(2, 8, take_f64_i64, (i64)2, (i64)4, (i64)4, (i64)3, x.data(), idx.data(), out.data(), &err);
  i64 real[] = {0, 3, 3, 1};
  for (int o = 0; o < 2; ++o)
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 3; ++i) CHECK_CLOSE("take", out[(o * 4 + j) * 3 + i], x[(o * 4 + real[j]) * 3 + i], 0);
  CHECK_CLOSE("take err flag clear", err, 0, 0);
  std::vector<double> acc(24, 0.0);
  host_launch(2, 8, scatter_add_f64_i64, (i64)2, (i64)4, (i64)4, (i64)3, out.data(), idx.data(), acc.data(), &err);
  for (int o = 0; o < 2; ++o)
    for (int k = 0; k < 4; ++k)
      for (int i = 0; i < 3; ++i) {
        double want = 0;
        for (int j = 0; j < 4; ++j) if (real[j] == k) want += out[(o * 4 + j) * 3 + i];
        CHECK_CLOSE("scatter_add", acc[(o * 4 + k) * 3 + i], want, 1e-15);
      }
  std::vector<i32> bad = {4};
  std::vector<float> xf(4, 1.0f), of(1);
  host_launch(1, 1, take_f32_i32, (i64)1, (i64)4, (i64)1, (i64)1, xf.data(), bad.data(), of.data(), &err);
  CHECK_CLOSE("take err flag set", err, 1, 0);
}

static void test_conv_pool() {
  ConvGeom g{2, 3, 7, 6, 3, 2, 0, 0, 2, 1, 1, 2, 2, 1};  // n c h w kh kw oh ow sh sw ph pw dh dw
  g.oh = (g.h + 2 * g.ph - (g.dh * (g.kh - 1) + 1)) / g.sh + 1;
  g.ow = (g.w + 2 * g.pw - (g.dw * (g.kw - 1) + 1)) / g.sw + 1;
  i64 K = g.c * g.kh * g.kw, L = g.oh * g.ow, O = 4;
  auto x = randv(g.n * g.c * g.h * g.w, -1, 1);
  auto w = randv(O * K, -1, 1);
  std::vector<double> cols(g.n * K * L);
  host_launch(3, 32, im2col_f64, g, x.data(), cols.data());
  auto X = [&](i64 b, i64 c, i64 y, i64 xx) -> double {
    if (y < 0 || y >= g.h || xx < 0 || xx >= g.w) return 0.0;
    return x[((b * g.c + c) * g.h + y) * g.w + xx];
  };
  // conv via cols (the GEMM the host does with cuBLAS) vs direct convolution
  for (i64 b = 0; b < g.n; ++b)
    for (i64 o = 0; o < O; ++o)
      for (i64 oy = 0; oy < g.oh; ++oy)
        for (i64 ox = 0; ox < g.ow; ++ox) {
          double direct = 0, viacols = 0;
          for (i64 c = 0; c < g.c; ++c)
            for (i64 ki = 0; ki < g.kh; ++ki)
              for (i64 kj = 0; kj < g.kw; ++kj) {
                double wv = w[((o * g.c + c) * g.kh + ki) * g.kw + kj];
                direct += wv * X(b, c, oy * g.sh - g.ph + ki * g.dh, ox * g.sw - g.pw + kj * g.dw);
                i64 row = (c * g.kh + ki) * g.kw + kj;
                viacols += wv * cols[(b * K + row) * L + oy * g.ow + ox];
              }
          CHECK_CLOSE("conv via im2col", viacols, direct, 1e-12);
        }
  // col2im is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)>
  auto cv = randv(cols.size(), -1, 1);
  std::vector<double> xb(x.size());
  host_launch(2, 32, col2im_f64, g, cv.data(), xb.data());
  double lhs = 0, rhs = 0;
  for (size_t i = 0; i < cols.size(); ++i) lhs += cols[i] * cv[i];
  for (size_t i = 0; i < x.size(); ++i) rhs += x[i] * xb[i];
  CHECK_CLOSE("col2im adjoint", lhs, rhs, 1e-12);

  // pooling: window 3x3, stride 2, pad 1 over (2, 3, 7, 6)
  ConvGeom p{2, 3, 7, 6, 3, 3, 0, 0, 2, 2, 1, 1, 1, 1};
  p.oh = (p.h + 2 - 3) / 2 + 1;
  p.ow = (p.w + 2 - 3) / 2 + 1;
  i64 nout = p.n * p.c * p.oh * p.ow;
  std::vector<double> ym(nout), ya(nout);
  host_launch(2, 16, max_pool_fwd_f64, p, x.data(), ym.data());
  host_launch(2, 16, avg_pool_fwd_f64, p, x.data(), ya.data());
  auto dy = randv(nout, -1, 1);
  std::vector<double> dxm(x.size(), 0.0), dxa(x.size(), 0.0), wantm(x.size(), 0.0), wanta(x.size(), 0.0);
  host_launch(2, 16, max_pool_bwd_f64, p, x.data(), dy.data(), dxm.data());
  host_launch(2, 16, avg_pool_bwd_f64, p, dy.data(), dxa.data());
  for (i64 nc = 0; nc < p.n * p.c; ++nc)
    for (i64 oy = 0; oy < p.oh; ++oy)
      for (i64 ox = 0; ox < p.ow; ++ox) {
        double best = -INFINITY, sum = 0;
        i64 arg = -1;
        for (i64 ki = 0; ki < 3; ++ki)
          for (i64 kj = 0; kj < 3; ++kj) {
            i64 iy = oy * 2 - 1 + ki, ix = ox * 2 - 1 + kj;
            if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) continue;
            i64 j = (nc * p.h + iy) * p.w + ix;
            sum += x[j];
            if (arg < 0 || x[j] > best) { best = x[j]; arg = j; }
          }
        i64 e = (nc * p.oh + oy) * p.ow + ox;
        CHECK_CLOSE("max pool", ym[e], best, 0);
        CHECK_CLOSE("avg pool", ya[e], sum / 9.0, 1e-14);
        wantm[arg] += dy[e];
        for (i64 ki = 0; ki < 3; ++ki)
          for (i64 kj = 0; kj < 3; ++kj) {
            i64 iy = oy * 2 - 1 + ki, ix = ox * 2 - 1 + kj;
            if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) continue;
            wanta[(nc * p.h + iy) * p.w + ix] += dy[e] / 9.0;
          }
      }
  for (size_t i = 0; i < x.size(); ++i) {
    CHECK_CLOSE("max pool bwd", dxm[i], wantm[i], 1e-14);
    CHECK_CLOSE("avg pool bwd", dxa[i], wanta[i], 1e-14);
  }
}

static void test_optim() {
  const i64 n = 33;
  OptimParams p{};
  p.lr = 0.05; p.momentum = 0.9; p.dampening = 0.1; p.beta1 = 0.9; p.beta2 = 0.999; p.alpha = 0.99; p.rho = 0.9;
  p.eps = 1e-8; p.weight_decay = 0.01; p.scale = 0.5; p.clip = 0.4; p.l1 = 1e-3; p.l2 = 1e-2; p.nesterov = 1;
  for (int kind = 0; kind < 6; ++kind) {
    auto w = randv(n, -1, 1);
    std::vector<double> rw(w), s1(n, 0), s2(n, 0), r1(n, 0), r2(n, 0);
    for (i64 step = 1; step <= 3; ++step) {
      p.step = step;
      auto g = randv(n, -1, 1);
      switch (kind) {
        case 0: host_launch(1, 8, sgd_f64, n, p, w.data(), g.data()); break;
        case 1: host_launch(1, 8, sgd_momentum_f64, n, p, w.data(), g.data(), s1.data()); break;
        case 2: host_launch(1, 8, adam_f64, n, p, w.data(), g.data(), s1.data(), s2.data()); break;
        case 3: host_launch(1, 8, rmsprop_f64, n, p, w.data(), g.data(), s1.data()); break;
        case 4: host_launch(1, 8, adagrad_f64, n, p, w.data(), g.data(), s1.data()); break;
        default: host_launch(1, 8, adadelta_f64, n, p, w.data(), g.data(), s1.data(), s2.data()); break;
      }
      for (i64 i = 0; i < n; ++i) {
        double gi = std::clamp(g[i] * p.scale, -p.clip, p.clip);
        gi += p.l2 * rw[i] + p.l1 * ((rw[i] > 0) - (rw[i] < 0));
        switch (kind) {
          case 0: rw[i] -= p.lr * gi; break;
          case 1: {
            double b = step == 1 ? gi : p.momentum * r1[i] + (1 - p.dampening) * gi;
            r1[i] = b;
            rw[i] -= p.lr * (gi + p.momentum * b);
            break;
          }
          case 2: {
            rw[i] *= 1 - p.lr * p.weight_decay;
            r1[i] = p.beta1 * r1[i] + (1 - p.beta1) * gi;
            r2[i] = p.beta2 * r2[i] + (1 - p.beta2) * gi * gi;
            double mh = r1[i] / (1 - std::pow(p.beta1, step)), vh = r2[i] / (1 - std::pow(p.beta2, step));
            rw[i] -= p.lr * mh / (std::sqrt(vh) + p.eps);
            break;
          }
          case 3:
            r1[i] = p.alpha * r1[i] + (1 - p.alpha) * gi * gi;
            rw[i] -= p.lr * gi / (std::sqrt(r1[i]) + p.eps);
            break;
          case 4:
            r1[i] += gi * gi;
            rw[i] -= p.lr * gi / (std::sqrt(r1[i]) + p.eps);
            break;
          default: {
            r1[i] = p.rho * r1[i] + (1 - p.rho) * gi * gi;
            double d = std::sqrt(r2[i] + p.eps) / std::sqrt(r1[i] + p.eps) * gi;
            r2[i] = p.rho * r2[i] + (1 - p.rho) * d * d;
            rw[i] -= p.lr * d;
          }
        }
      }
    }
    for (i64 i = 0; i < n; ++i) {
      char what[32];
      std::snprintf(what, sizeof what, "optim kind %d", kind);
      // Adam's reference uses the textbook bias correction (equal up to rounding)
      CHECK_CLOSE(what, w[i], rw[i], kind == 2 ? 1e-9 : 1e-13);
    }
  }
}

int main() {
  test_unary<float>(2e-6);
  test_unary<double>(1e-14);
  test_binary();
  test_where_cast_copy();
  test_reduce();
  test_softmax();
  test_index();
  test_conv_pool();
  test_optim();
  std::printf("%d checks, %d failures\n", checks, failures);
  // The Rust mirrors (KernelLayout, ConvGeom, UpdateParams) must have these sizes.
  std::printf("sizes: Layout=%zu ConvGeom=%zu OptimParams=%zu\n", sizeof(Layout), sizeof(ConvGeom), sizeof(OptimParams));
  return failures == 0 ? 0 : 1;
}
