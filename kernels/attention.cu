// Paged attention on the GPU. One block per (token, query head); its warps take the keys in
// turn (key j to warp j % warps), each warp keeps an online softmax (running max, sum and
// fp32 accumulator, lanes splitting head_dim), and the warps merge at the end. The same
// kernel serves prefill (many tokens) and decode (one token per sequence).
#include <cfloat>

#include "kernels/attention_cuda.h"
#include "kernels/cuda_util.cuh"

namespace tessera {
namespace {

using namespace tessera::cuda;

constexpr int kWarps = 4;
constexpr int kMaxPerLane = 8;  // head_dim <= 256

// ---- kernels ----

template <class T>
__global__ void kv_write_kernel(const T* __restrict__ k, const T* __restrict__ v,
                                const int32_t* __restrict__ slots, T* __restrict__ ck,
                                T* __restrict__ cv, int64_t kv_heads, int64_t block_size,
                                int64_t head_dim) {
  const int64_t t = blockIdx.x, slot = slots[t];
  const int64_t block = slot / block_size, off = slot % block_size;
  for (int64_t e = threadIdx.x; e < kv_heads * head_dim; e += blockDim.x) {
    const int64_t h = e / head_dim, i = e % head_dim;
    const int64_t dst = ((block * kv_heads + h) * block_size + off) * head_dim + i;
    ck[dst] = k[t * kv_heads * head_dim + e];
    cv[dst] = v[t * kv_heads * head_dim + e];
  }
}

template <class T>
__global__ void __launch_bounds__(kWarps * 32)
    paged_attention_kernel(const T* __restrict__ q, int64_t heads, const T* __restrict__ ck,
                           const T* __restrict__ cv, int64_t kv_heads, int64_t block_size,
                           int64_t d, PagedBatchCuda b, float scale, int64_t window,
                           T* __restrict__ out) {
  __shared__ float sm_m[kWarps], sm_l[kWarps];
  extern __shared__ float sm_acc[];  // [kWarps, d]
  const int64_t t = blockIdx.x, h = blockIdx.y;  // tokens on x: up to 2^31
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  // The sequence of token t: the last s with seq_begin[s] <= t.
  int64_t lo = 0, hi = b.num_seqs - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (b.seq_begin[mid] <= t) lo = mid; else hi = mid - 1;
  }
  const int32_t* table = b.block_tables + lo * b.max_blocks_per_seq;
  const int64_t pos = b.positions[t];
  const int64_t first = window > 0 ? max(int64_t(0), pos - window + 1) : 0;
  const int64_t kvh = h / (heads / kv_heads);

  float qr[kMaxPerLane], acc[kMaxPerLane];
  const T* qv = q + (t * heads + h) * d;
#pragma unroll
  for (int r = 0; r < kMaxPerLane; ++r) {
    const int64_t i = lane + 32 * r;
    qr[r] = i < d ? to_f32(qv[i]) * scale : 0.0f;
    acc[r] = 0.0f;
  }
  float m = -FLT_MAX, l = 0.0f;
  for (int64_t j = first + warp; j <= pos; j += kWarps) {
    const int64_t base =
        ((int64_t(table[j / block_size]) * kv_heads + kvh) * block_size + j % block_size) * d;
    float s = 0.0f;
#pragma unroll
    for (int r = 0; r < kMaxPerLane; ++r) {
      const int64_t i = lane + 32 * r;
      if (i < d) s += qr[r] * to_f32(ck[base + i]);
    }
    s = warp_sum(s);
    const float m_new = fmaxf(m, s);
    const float corr = __expf(m - m_new), p = __expf(s - m_new);
    l = l * corr + p;
#pragma unroll
    for (int r = 0; r < kMaxPerLane; ++r) {
      const int64_t i = lane + 32 * r;
      if (i < d) acc[r] = acc[r] * corr + p * to_f32(cv[base + i]);
    }
    m = m_new;
  }
  if (lane == 0) { sm_m[warp] = m; sm_l[warp] = l; }
#pragma unroll
  for (int r = 0; r < kMaxPerLane; ++r) {
    const int64_t i = lane + 32 * r;
    if (i < d) sm_acc[warp * d + i] = acc[r];
  }
  __syncthreads();
  float mx = -FLT_MAX;
  for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, sm_m[w]);
  float scale_w[kWarps], sum = 0.0f;
  for (int w = 0; w < kWarps; ++w) {
    scale_w[w] = sm_l[w] > 0.0f ? __expf(sm_m[w] - mx) : 0.0f;  // a warp with no keys
    sum += sm_l[w] * scale_w[w];
  }
  const float inv = 1.0f / sum;
  T* o = out + (t * heads + h) * d;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    float v = 0.0f;
    for (int w = 0; w < kWarps; ++w) v += sm_acc[w * d + i] * scale_w[w];
    o[i] = from_f32<T>(v * inv);
  }
}

}  // namespace

// ---- launchers ----

void kv_write_cuda(const void* k, const void* v, const PagedBatchCuda& b, const PagedKvCuda& c,
                   cudaStream_t stream) {
  if (b.num_tokens == 0) return;
  dispatch_float(c.dtype, "kv_write", [&](auto tag) {
    using T = decltype(tag);
    kv_write_kernel<T><<<unsigned(b.num_tokens), 256, 0, stream>>>(
        static_cast<const T*>(k), static_cast<const T*>(v), b.slot_mapping, static_cast<T*>(c.k),
        static_cast<T*>(c.v), c.kv_heads, c.block_size, c.head_dim);
  });
  check_launch("kv_write_kernel");
}

void paged_attention_cuda(const void* q, int64_t heads, const PagedKvCuda& c,
                          const PagedBatchCuda& b, float scale, int64_t window, void* out,
                          cudaStream_t stream) {
  if (b.num_tokens == 0) return;
  if (c.head_dim > 32 * kMaxPerLane)
    throw std::invalid_argument("attention: head_dim " + std::to_string(c.head_dim) +
                                " > 256 is not supported on CUDA");
  if (c.kv_heads <= 0 || heads % c.kv_heads != 0)
    throw std::invalid_argument("attention: heads not a multiple of kv heads");
  const dim3 grid(unsigned(b.num_tokens), unsigned(heads));
  const size_t smem = size_t(kWarps) * size_t(c.head_dim) * sizeof(float);
  dispatch_float(c.dtype, "attention", [&](auto tag) {
    using T = decltype(tag);
    paged_attention_kernel<T><<<grid, kWarps * 32, smem, stream>>>(
        static_cast<const T*>(q), heads, static_cast<const T*>(c.k), static_cast<const T*>(c.v),
        c.kv_heads, c.block_size, c.head_dim, b, scale, window, static_cast<T*>(out));
  });
  check_launch("paged_attention_kernel");
}

}  // namespace tessera
