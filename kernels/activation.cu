// SiLU-gated activation on the GPU: out = gate / (1 + exp(-gate)) * up, math in fp32.
#include "kernels/activation_cuda.h"
#include "kernels/cuda_util.cuh"

namespace tessera {
namespace {

using namespace tessera::cuda;

template <class T>
__global__ void silu_mul_kernel(const T* __restrict__ gate, const T* __restrict__ up, int64_t n,
                                T* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float g = to_f32(gate[i]);
    out[i] = from_f32<T>(g / (1.0f + expf(-g)) * to_f32(up[i]));
  }
}

}  // namespace

void silu_mul_cuda(const void* gate, const void* up, int64_t n, void* out, DType dtype,
                   cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float(dtype, "silu_mul", [&](auto tag) {
    using T = decltype(tag);
    silu_mul_kernel<T><<<grid_for(n, 256), 256, 0, stream>>>(
        static_cast<const T*>(gate), static_cast<const T*>(up), n, static_cast<T*>(out));
  });
  check_launch("silu_mul_kernel");
}

}  // namespace tessera
