// Fused solver updates, one pass over a parameter, its gradient and its state. Formulas are
// PyTorch's optimizers of the same name. Before every update the gradient is preprocessed in
// registers (the gradient buffer itself is never written):
//   g ← g · scale (1/batch_size);  g ← clip(g, ±clip) when clip > 0;  g ← g + l2·w + l1·sign(w).
// OptimParams mirrors `gorgon_cuda::UpdateParams` field by field (#[repr(C)]).

struct OptimParams {
  double lr;
  double momentum;      // SGD momentum
  double dampening;     // SGD dampening
  double beta1;         // Adam
  double beta2;         // Adam
  double alpha;         // RMSProp smoothing constant
  double rho;           // AdaDelta decay
  double eps;
  double weight_decay;  // decoupled (AdamW) weight decay
  double scale;         // gradient scale (1 / batch_size)
  double clip;          // clip each gradient element to ±clip when > 0
  double l1;
  double l2;
  i64 step;             // 1 on the first update
  i64 nesterov;         // SGD: nonzero for Nesterov momentum
};

template <typename T>
__device__ __forceinline__ T pre_grad(const OptimParams& p, T g, T w) {
  g = g * (T)p.scale;
  if (p.clip > 0.0) {
    T c = (T)p.clip;
    g = g > c ? c : (g < -c ? -c : g);
  }
  T s = w > T(0) ? T(1) : (w < T(0) ? T(-1) : T(0));
  return g + (T)p.l2 * w + (T)p.l1 * s;
}

// w ← w − lr·g
template <typename T>
__device__ void sgd(i64 n, OptimParams p, T* w, const T* gr) {
  GRID_LOOP(i, n) {
    T g = pre_grad<T>(p, gr[i], w[i]);
    w[i] -= (T)p.lr * g;
  }
}

// buf ← g (first step) else momentum·buf + (1 − dampening)·g; d = nesterov ? g + momentum·buf : buf
template <typename T>
__device__ void sgd_momentum(i64 n, OptimParams p, T* w, const T* gr, T* buf) {
  T mu = (T)p.momentum;
  GRID_LOOP(i, n) {
    T g = pre_grad<T>(p, gr[i], w[i]);
    T b = (p.step <= 1) ? g : mu * buf[i] + (T(1) - (T)p.dampening) * g;
    buf[i] = b;
    T d = p.nesterov ? g + mu * b : b;
    w[i] -= (T)p.lr * d;
  }
}

// Adam / AdamW (decoupled weight decay: w ← w·(1 − lr·wd) first).
template <typename T>
__device__ void adam(i64 n, OptimParams p, T* w, const T* gr, T* m, T* v) {
  T b1 = (T)p.beta1, b2 = (T)p.beta2;
  double bc1 = 1.0 - pow(p.beta1, (double)p.step);
  double bc2 = 1.0 - pow(p.beta2, (double)p.step);
  T step_size = (T)(p.lr / bc1);
  T bc2_sqrt = (T)sqrt(bc2);
  GRID_LOOP(i, n) {
    T wi = w[i];
    T g = pre_grad<T>(p, gr[i], wi);
    if (p.weight_decay != 0.0) wi *= T(1) - (T)(p.lr * p.weight_decay);
    T mi = b1 * m[i] + (T(1) - b1) * g;
    T vi = b2 * v[i] + (T(1) - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    T denom = g_sqrt(vi) / bc2_sqrt + (T)p.eps;
    w[i] = wi - step_size * mi / denom;
  }
}

// sq ← alpha·sq + (1 − alpha)·g²; w ← w − lr·g / (√sq + eps)
template <typename T>
__device__ void rmsprop(i64 n, OptimParams p, T* w, const T* gr, T* sq) {
  T a = (T)p.alpha;
  GRID_LOOP(i, n) {
    T g = pre_grad<T>(p, gr[i], w[i]);
    T s = a * sq[i] + (T(1) - a) * g * g;
    sq[i] = s;
    w[i] -= (T)p.lr * g / (g_sqrt(s) + (T)p.eps);
  }
}

// sum ← sum + g²; w ← w − lr·g / (√sum + eps)
template <typename T>
__device__ void adagrad(i64 n, OptimParams p, T* w, const T* gr, T* sum) {
  GRID_LOOP(i, n) {
    T g = pre_grad<T>(p, gr[i], w[i]);
    T s = sum[i] + g * g;
    sum[i] = s;
    w[i] -= (T)p.lr * g / (g_sqrt(s) + (T)p.eps);
  }
}

// sq ← rho·sq + (1 − rho)·g²; d = √(acc + eps)/√(sq + eps)·g; acc ← rho·acc + (1 − rho)·d²;
// w ← w − lr·d
template <typename T>
__device__ void adadelta(i64 n, OptimParams p, T* w, const T* gr, T* sq, T* acc) {
  T rho = (T)p.rho, eps = (T)p.eps;
  GRID_LOOP(i, n) {
    T g = pre_grad<T>(p, gr[i], w[i]);
    T s = rho * sq[i] + (T(1) - rho) * g * g;
    sq[i] = s;
    T d = g_sqrt(acc[i] + eps) / g_sqrt(s + eps) * g;
    acc[i] = rho * acc[i] + (T(1) - rho) * d * d;
    w[i] -= (T)p.lr * d;
  }
}

#define OPTIM(sfx, T) \
  extern "C" __global__ void sgd_##sfx(i64 n, OptimParams p, T* w, const T* g) { sgd<T>(n, p, w, g); } \
  extern "C" __global__ void sgd_momentum_##sfx(i64 n, OptimParams p, T* w, const T* g, T* buf) { sgd_momentum<T>(n, p, w, g, buf); } \
  extern "C" __global__ void adam_##sfx(i64 n, OptimParams p, T* w, const T* g, T* m, T* v) { adam<T>(n, p, w, g, m, v); } \
  extern "C" __global__ void rmsprop_##sfx(i64 n, OptimParams p, T* w, const T* g, T* sq) { rmsprop<T>(n, p, w, g, sq); } \
  extern "C" __global__ void adagrad_##sfx(i64 n, OptimParams p, T* w, const T* g, T* sum) { adagrad<T>(n, p, w, g, sum); } \
  extern "C" __global__ void adadelta_##sfx(i64 n, OptimParams p, T* w, const T* g, T* sq, T* acc) { adadelta<T>(n, p, w, g, sq, acc); }
OPTIM(f32, f32)
OPTIM(f64, f64)
