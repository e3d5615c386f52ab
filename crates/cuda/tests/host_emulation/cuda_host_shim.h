// Just enough of CUDA to run gorgon_rs's kernel sources on the host, for checking their
// arithmetic on machines without a GPU (tests/host_emulation.rs compiles and runs this).
// A launch runs the blocks one after another; the threads of a block are real threads so
// __syncthreads() and __shared__ behave as on a GPU (shared arrays become statics, which is
// exact when one block runs at a time). Atomics use one mutex.
#pragma once
#include <barrier>
#include <cmath>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

struct HostDim3 { unsigned x = 0, y = 0, z = 0; };
inline thread_local HostDim3 threadIdx, blockIdx;
inline HostDim3 blockDim, gridDim;
inline std::barrier<>* host_block_barrier = nullptr;
inline std::mutex host_atomic_mutex;

inline void __syncthreads() { host_block_barrier->arrive_and_wait(); }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
template <typename T> inline T atomicAdd(T* p, T v) {
  std::lock_guard<std::mutex> g(host_atomic_mutex);
  T old = *p;
  *p = old + v;
  return old;
}

// Runs kernel(args...) over `grid` blocks of `block` threads.
template <typename F, typename... A>
void host_launch(unsigned grid, unsigned block, F kernel, A... args) {
  gridDim.x = grid; blockDim.x = block; gridDim.y = gridDim.z = blockDim.y = blockDim.z = 1;
  for (unsigned b = 0; b < grid; ++b) {
    std::barrier<> bar(block);
    host_block_barrier = &bar;
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < block; ++t)
      ts.emplace_back([=] { blockIdx.x = b; threadIdx.x = t; kernel(args...); });
    for (auto& th : ts) th.join();
  }
}
