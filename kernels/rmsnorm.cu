// RMSNorm and residual-add + RMSNorm on the GPU: one block per row, fp32 sums.
#include "kernels/cuda_util.cuh"
#include "kernels/rmsnorm_cuda.h"

namespace tessera {
namespace {

using namespace tessera::cuda;

// ---- kernels ----

// When D is void there is no delta: plain rmsnorm of x.
template <class D, class O>
__global__ void add_rmsnorm_kernel(float* __restrict__ x, const D* __restrict__ delta,
                                   const float* __restrict__ w, float eps, int64_t h,
                                   O* __restrict__ out) {
  float* r = x + blockIdx.x * h;
  O* o = out + blockIdx.x * h;
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    float v = r[j];
    if (delta != nullptr) {
      v += to_f32(delta[blockIdx.x * h + j]);
      r[j] = v;  // each element is read and written by the same thread: no race
    }
    ss += v * v;
  }
  const float inv = rsqrtf(block_sum(ss) / float(h) + eps);
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) o[j] = from_f32<O>(r[j] * inv * w[j]);
}

int threads_for(int64_t h) { return h >= 4096 ? 1024 : h >= 1024 ? 512 : 256; }

}  // namespace

// ---- launchers ----

void rmsnorm_cuda(const float* x, const float* weight, float eps, int64_t n, int64_t h, void* out,
                  DType out_dtype, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float(out_dtype, "rmsnorm", [&](auto o) {
    using O = decltype(o);
    add_rmsnorm_kernel<float, O><<<unsigned(n), threads_for(h), 0, stream>>>(
        const_cast<float*>(x), nullptr, weight, eps, h, static_cast<O*>(out));
  });
  check_launch("rmsnorm_kernel");
}

void add_rmsnorm_cuda(float* residual, const void* delta, DType delta_dtype, const float* weight,
                      float eps, int64_t n, int64_t h, void* out, DType out_dtype,
                      cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float(delta_dtype, "add_rmsnorm", [&](auto d) {
    dispatch_float(out_dtype, "add_rmsnorm", [&](auto o) {
      using D = decltype(d);
      using O = decltype(o);
      add_rmsnorm_kernel<D, O><<<unsigned(n), threads_for(h), 0, stream>>>(
          residual, static_cast<const D*>(delta), weight, eps, h, static_cast<O*>(out));
    });
  });
  check_launch("add_rmsnorm_kernel");
}

}  // namespace tessera
