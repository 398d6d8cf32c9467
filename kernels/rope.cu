// Rotary embedding on the GPU: one block per token. The angles are formed and reduced in
// double (positions reach 10^5 and more) from inv_freq split into two floats (hi + lo, so
// the table keeps double precision), then rotated in fp32.
#include "kernels/cuda_util.cuh"
#include "kernels/rope_cuda.h"

namespace tessera {
namespace {

using namespace tessera::cuda;

constexpr int kMaxHalf = 256;  // head_dim up to 512

template <class T>
__global__ void rope_kernel(T* __restrict__ x, int64_t heads, int64_t head_dim,
                            const int32_t* __restrict__ positions,
                            const float* __restrict__ inv_freq) {
  __shared__ float cs[kMaxHalf], sn[kMaxHalf];
  const int64_t t = blockIdx.x, half = head_dim / 2;
  const double pos = double(positions[t]);
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    const double two_pi = 6.283185307179586476925;
    double a = pos * (double(inv_freq[i]) + double(inv_freq[half + i]));  // hi + lo
    a -= two_pi * floor(a / two_pi);
    float s, c;
    sincosf(float(a), &s, &c);
    cs[i] = c;
    sn[i] = s;
  }
  __syncthreads();
  T* base = x + t * heads * head_dim;
  for (int64_t k = threadIdx.x; k < heads * half; k += blockDim.x) {
    const int64_t h = k / half, i = k % half;
    T* v = base + h * head_dim;
    const float a = to_f32(v[i]), b = to_f32(v[i + half]);
    v[i] = from_f32<T>(a * cs[i] - b * sn[i]);
    v[i + half] = from_f32<T>(b * cs[i] + a * sn[i]);
  }
}

}  // namespace

void rope_cuda(void* x, DType dtype, int64_t n, int64_t heads, int64_t head_dim,
               const int32_t* positions, const float* inv_freq, cudaStream_t stream) {
  if (n == 0) return;
  if (head_dim / 2 > kMaxHalf || head_dim % 2 != 0)
    throw std::invalid_argument("rope: head_dim " + std::to_string(head_dim) + " unsupported");
  dispatch_float(dtype, "rope", [&](auto tag) {
    using T = decltype(tag);
    rope_kernel<T><<<unsigned(n), 128, 0, stream>>>(static_cast<T*>(x), heads, head_dim,
                                                    positions, inv_freq);
  });
  check_launch("rope_kernel");
}

}  // namespace tessera
