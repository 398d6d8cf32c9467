// Device-side helpers shared by the CUDA kernels (kernels/*.cu): element conversion for the
// three float dtypes, warp/block reductions, launch checks, and dispatch over DType.
// Included by .cu files only.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "runtime/dtype.h"

namespace tessera::cuda {

// Throws std::runtime_error naming the call site when a CUDA call failed.
inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}
// After a kernel launch: reports bad launch configurations at once.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// Whether environment variable `name` is set to `value`: the kernel switches that let a GPU
// session compare two paths without a rebuild (read per call: tests flip them).
inline bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v != nullptr && std::string(v) == value;
}

template <class T> __device__ __forceinline__ float to_f32(T x);
template <> __device__ __forceinline__ float to_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ float to_f32<__half>(__half x) { return __half2float(x); }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

template <class T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
// fp16 stores saturate at the largest finite half (as the attention tiles' do) instead of
// becoming Inf, which the next norm would turn into NaN for the whole row: bf16-trained models
// have activations past fp16's range (runtime/model.cpp, reserve_workspace). NaN stays NaN.
template <> __device__ __forceinline__ __half from_f32<__half>(float x) {
  constexpr float kHalfMax = 65504.0f;
  return __float2half_rn(x > kHalfMax ? kHalfMax : x < -kHalfMax ? -kHalfMax : x);
}
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // part[] may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  const int nwarps = int(blockDim.x + 31) >> 5;
  v = lane < nwarps ? part[lane] : 0.0f;
  return warp_sum(v);
}

// Calls fn(T{}) with T the CUDA type of a float dtype (F32, F16, BF16).
template <class Fn> void dispatch_float(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::F32: fn(float{}); return;
    case DType::F16: fn(__half{}); return;
    case DType::BF16: fn(__nv_bfloat16{}); return;
    default:
      throw std::invalid_argument(std::string(op) + ": unsupported dtype " + dtype_name(t));
  }
}

inline unsigned grid_for(long long n, int threads) {
  long long g = (n + threads - 1) / threads;
  return unsigned(g < 1 ? 1 : (g > 65535LL * 32 ? 65535LL * 32 : g));
}

}  // namespace tessera::cuda
