// Paged attention on the GPU: kv_write, the choice of kernel (tensor-core prefill in
// attention_mma.cu, tiled in attention_tiled.cu), and the first attention kernel
// (TESSERA_ATTENTION=naive selects it, to compare on a GPU). One block per
// (token, query head); its warps take the keys in turn (key j to warp j % warps), each warp
// keeps an online softmax (running max, sum and fp32 accumulator, lanes splitting head_dim),
// and the warps merge at the end. The same kernel serves prefill (many tokens) and decode
// (one token per sequence). An I8 cache is read as integers: each key's dot product and each
// value's weight take the row's F32 scale.
#include <cfloat>
#include <type_traits>

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

// A cache element as float: a float dtype converted, an I8 element as its integer (the row's
// scale is applied to the whole dot product / value weight).
template <class C> __device__ __forceinline__ float cache_f32(C x) { return to_f32(x); }
template <> __device__ __forceinline__ float cache_f32<int8_t>(int8_t x) { return float(x); }

// The quantization of quantize_kv_row (kernels/attention_cpu.cpp) by one warp, with the same
// float operations so the bytes match: s = max|x| / 127; q = round-half-even(x / s) clamped
// to [-127, 127]; s = 0 and q = 0 for an all-zero row.
template <class T>
__device__ void quantize_row_warp(const T* __restrict__ x, int64_t d, int8_t* __restrict__ q,
                                  float* __restrict__ scale) {
  const int lane = threadIdx.x & 31;
  float mx = 0.0f;
  for (int64_t i = lane; i < d; i += 32) mx = fmaxf(mx, fabsf(to_f32(x[i])));
  mx = warp_max(mx);
  const float s = mx / 127.0f;
  for (int64_t i = lane; i < d; i += 32)
    q[i] = s == 0.0f ? int8_t(0) : int8_t(max(-127, min(127, __float2int_rn(to_f32(x[i]) / s))));
  if (lane == 0) *scale = s;
}

// One warp per (token, kv head): grid (n, kv_heads), 32 threads.
template <class T>
__global__ void kv_write_i8_kernel(const T* __restrict__ k, const T* __restrict__ v,
                                   const int32_t* __restrict__ slots, int8_t* __restrict__ ck,
                                   int8_t* __restrict__ cv, float* __restrict__ ck_scale,
                                   float* __restrict__ cv_scale, int64_t kv_heads,
                                   int64_t block_size, int64_t head_dim) {
  const int64_t t = blockIdx.x, h = blockIdx.y, slot = slots[t];
  const int64_t row = ((slot / block_size) * kv_heads + h) * block_size + slot % block_size;
  const int64_t src = (t * kv_heads + h) * head_dim;
  quantize_row_warp(k + src, head_dim, ck + row * head_dim, ck_scale + row);
  quantize_row_warp(v + src, head_dim, cv + row * head_dim, cv_scale + row);
}

// T: q and out; C: the cache (T, or int8_t with ks / vs the scales [rows], else null).
template <class T, class C>
__global__ void __launch_bounds__(kWarps * 32)
    paged_attention_kernel(const T* __restrict__ q, int64_t heads, const C* __restrict__ ck,
                           const C* __restrict__ cv, const float* __restrict__ ks,
                           const float* __restrict__ vs, int64_t kv_heads, int64_t block_size,
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
    const int64_t row =
        (int64_t(table[j / block_size]) * kv_heads + kvh) * block_size + j % block_size;
    const int64_t base = row * d;
    float s = 0.0f;
#pragma unroll
    for (int r = 0; r < kMaxPerLane; ++r) {
      const int64_t i = lane + 32 * r;
      if (i < d) s += qr[r] * cache_f32(ck[base + i]);
    }
    s = warp_sum(s);
    if (ks != nullptr) s *= ks[row];
    const float m_new = fmaxf(m, s);
    const float corr = __expf(m - m_new), p = __expf(s - m_new);
    l = l * corr + p;
    const float pv = vs != nullptr ? p * vs[row] : p;  // the value row's weight
#pragma unroll
    for (int r = 0; r < kMaxPerLane; ++r) {
      const int64_t i = lane + 32 * r;
      if (i < d) acc[r] = acc[r] * corr + pv * cache_f32(cv[base + i]);
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

namespace {

void check_cache(DType dtype, const PagedKvCuda& c, const char* op) {
  const bool ok = c.dtype == DType::I8 ? c.k_scale != nullptr && c.v_scale != nullptr
                                       : c.dtype == dtype;
  if (!ok)
    throw std::invalid_argument(std::string(op) + ": " + dtype_name(dtype) + " tensors with a " +
                                dtype_name(c.dtype) + " cache" +
                                (c.dtype == DType::I8 ? " without scales" : ""));
}

template <class T, class C>
void launch_attention(const void* q, int64_t heads, const PagedKvCuda& c, const PagedBatchCuda& b,
                      float scale, int64_t window, void* out, cudaStream_t stream) {
  const dim3 grid(unsigned(b.num_tokens), unsigned(heads));
  const size_t smem = size_t(kWarps) * size_t(c.head_dim) * sizeof(float);
  paged_attention_kernel<T, C><<<grid, kWarps * 32, smem, stream>>>(
      static_cast<const T*>(q), heads, static_cast<const C*>(c.k), static_cast<const C*>(c.v),
      // The kernel scales by non-null scales: only an int8 cache passes them.
      std::is_same_v<C, int8_t> ? c.k_scale : nullptr,
      std::is_same_v<C, int8_t> ? c.v_scale : nullptr, c.kv_heads, c.block_size, c.head_dim, b,
      scale, window, static_cast<T*>(out));
}

}  // namespace

void kv_write_cuda(const void* k, const void* v, DType dtype, const PagedBatchCuda& b,
                   const PagedKvCuda& c, cudaStream_t stream) {
  if (b.num_tokens == 0) return;
  check_cache(dtype, c, "kv_write");
  dispatch_float(dtype, "kv_write", [&](auto tag) {
    using T = decltype(tag);
    if (c.dtype == DType::I8) {
      const dim3 grid(unsigned(b.num_tokens), unsigned(c.kv_heads));
      kv_write_i8_kernel<T><<<grid, 32, 0, stream>>>(
          static_cast<const T*>(k), static_cast<const T*>(v), b.slot_mapping,
          static_cast<int8_t*>(c.k), static_cast<int8_t*>(c.v), c.k_scale, c.v_scale,
          c.kv_heads, c.block_size, c.head_dim);
      return;
    }
    kv_write_kernel<T><<<unsigned(b.num_tokens), 256, 0, stream>>>(
        static_cast<const T*>(k), static_cast<const T*>(v), b.slot_mapping, static_cast<T*>(c.k),
        static_cast<T*>(c.v), c.kv_heads, c.block_size, c.head_dim);
  });
  check_launch("kv_write_kernel");
}

void paged_attention_cuda(const void* q, DType dtype, int64_t heads, const PagedKvCuda& c,
                          const PagedBatchCuda& b, float scale, int64_t window,
                          const AttentionScratchCuda& scratch, void* out, cudaStream_t stream) {
  if (b.num_tokens == 0) return;
  if (c.head_dim > 32 * kMaxPerLane)
    throw std::invalid_argument("attention: head_dim " + std::to_string(c.head_dim) +
                                " > 256 is not supported on CUDA");
  if (c.kv_heads <= 0 || heads % c.kv_heads != 0)
    throw std::invalid_argument("attention: heads not a multiple of kv heads");
  check_cache(dtype, c, "attention");
  if (env_is("TESSERA_ATTENTION", "naive")) {
    dispatch_float(dtype, "attention", [&](auto tag) {
      using T = decltype(tag);
      if (c.dtype == DType::I8)
        launch_attention<T, int8_t>(q, heads, c, b, scale, window, out, stream);
      else
        launch_attention<T, T>(q, heads, c, b, scale, window, out, stream);
    });
    return check_launch("paged_attention_kernel");
  }
  if (mma_attention_applies(dtype, c, b, scratch))
    return paged_attention_mma_cuda(q, dtype, heads, c, b, scale, window, out, stream);
  paged_attention_tiled_cuda(q, dtype, heads, c, b, scale, window, scratch, out, stream);
}

}  // namespace tessera
