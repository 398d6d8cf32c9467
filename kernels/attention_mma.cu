// The tensor-core paged attention for prefill (the algorithm: kernels/attention_mma.h) on the
// GPU: WMMA fragments as its matrix policy, 16-byte cache loads, the kernel and the launcher.
// Needs compute capability 7.0 (fp16 WMMA); attention.cu picks it (attention_cuda.h).
#include <mma.h>

#include <cstdint>
#include <type_traits>

#include "kernels/attention_access.cuh"
#include "kernels/attention_cuda.h"
#include "kernels/attention_mma.h"
#include "kernels/cuda_util.cuh"

namespace tessera {
namespace {

using namespace tessera::cuda;
namespace mt = tessera::mma_tiles;
namespace wmma = nvcuda::wmma;

// fp16 16x16x16 WMMA with fp32 accumulators. Inputs saturate at fp16's largest finite value
// (a bf16 or int8 cache value beyond it would otherwise become infinity).
struct WmmaOps {
  using E = __half;
  using A = wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major>;
  using BCol = wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major>;
  using BRow = wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major>;
  using Acc = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;
  __device__ static E to_e(float x) {
    return from_f32<__half>(x);  // saturating (cuda_util.cuh)
  }
  __device__ static float from_e(E x) { return __half2float(x); }
  __device__ void zero(Acc& c) const { wmma::fill_fragment(c, 0.0f); }
  __device__ void load_a(A& a, const E* p, int ld) const { wmma::load_matrix_sync(a, p, ld); }
  __device__ void load_b_col(BCol& b, const E* p, int ld) const {
    wmma::load_matrix_sync(b, p, ld);
  }
  __device__ void load_b_row(BRow& b, const E* p, int ld) const {
    wmma::load_matrix_sync(b, p, ld);
  }
  __device__ void load_acc(Acc& c, const float* p, int ld) const {
    wmma::load_matrix_sync(c, p, ld, wmma::mem_row_major);
  }
  template <class B> __device__ void mma(Acc& c, const A& a, const B& b) const {
    wmma::mma_sync(c, a, b, c);
  }
  __device__ void store(float* p, const Acc& c, int ld) const {
    wmma::store_matrix_sync(p, c, ld, wmma::mem_row_major);
  }
  __device__ void gather_rows(Acc& g, const Acc& rows, const float* f) const {
#pragma unroll
    for (int i = 0; i < g.num_elements; ++i) g.x[i] = f[int(rows.x[i])];
  }
  __device__ void scale(Acc& c, const Acc& g) const {
#pragma unroll
    for (int i = 0; i < c.num_elements; ++i) c.x[i] *= g.x[i];
  }
};

struct DeviceExec {  // a barrier after each phase; lanes between warp barriers
  mt::WarpRegs<WmmaOps> regs;
  template <class F> __device__ __forceinline__ void threads(F&& f) {
    f(int(threadIdx.x));
    __syncthreads();
  }
  template <class F> __device__ __forceinline__ void warps(F&& f) {
    f(int(threadIdx.x) / 32, regs);
    __syncthreads();
  }
  template <class F> __device__ __forceinline__ void lanes(F&& f) {
    __syncwarp();
    f(int(threadIdx.x) % 32);
    __syncwarp();
  }
};

// Cache rows 8 elements at a time: one 16-byte load of fp16 / bf16 (8 bytes of int8 codes and
// the row's scale), converted to fp16 as they are stored to shared memory.
template <class C> struct KvChunks {
  const C *k_, *v_;
  const float *ks, *vs;  // I8 only
  int64_t d;
  struct Chunk {
    uint4 raw;
    float scale;
  };
  __device__ Chunk load(const C* base, const float* scales, int64_t row, int i0) const {
    Chunk c{make_uint4(0, 0, 0, 0), 0.0f};
    if constexpr (std::is_same_v<C, int8_t>) {
      const uint2 w = *reinterpret_cast<const uint2*>(base + row * d + i0);
      c.raw.x = w.x;
      c.raw.y = w.y;
      c.scale = scales[row];
    } else {
      c.raw = *reinterpret_cast<const uint4*>(base + row * d + i0);
    }
    return c;
  }
  __device__ Chunk k8(int64_t row, int i0) const { return load(k_, ks, row, i0); }
  __device__ Chunk v8(int64_t row, int i0) const { return load(v_, vs, row, i0); }
  __device__ Chunk none() const { return Chunk{make_uint4(0, 0, 0, 0), 0.0f}; }
  __device__ void put(__half* dst, const Chunk& c) const {  // dst: 16-byte aligned
    if constexpr (std::is_same_v<C, __half>) {
      *reinterpret_cast<uint4*>(dst) = c.raw;
    } else {
      alignas(16) __half h[8];  // read back as one 16-byte word
      if constexpr (std::is_same_v<C, int8_t>) {
        const int8_t* q = reinterpret_cast<const int8_t*>(&c.raw);
#pragma unroll
        for (int i = 0; i < 8; ++i) h[i] = WmmaOps::to_e(float(q[i]) * c.scale);
      } else {
        const C* x = reinterpret_cast<const C*>(&c.raw);
#pragma unroll
        for (int i = 0; i < 8; ++i) h[i] = WmmaOps::to_e(to_f32(x[i]));
      }
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(h);
    }
  }
};

template <class T, class C>
// 3 blocks an SM (168 registers): the loads of one hide behind the others' products. A T4's
// 64 KiB of shared memory holds 2, so there the registers are not capped that far.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 750
#define TESSERA_MMA_BLOCKS_PER_SM 2
#else
#define TESSERA_MMA_BLOCKS_PER_SM 3
#endif
__global__ void __launch_bounds__(mt::kThreads, TESSERA_MMA_BLOCKS_PER_SM)
    mma_attention_kernel(mt::Geometry g, mt::BatchIndex b, mt::Plan pl, QAccess<T> q,
                         KvChunks<C> kv, OutWrite<T> out) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  extern __shared__ __align__(128) unsigned char smem[];  // WMMA tiles: 32-byte aligned
  DeviceExec ex;
  const WmmaOps mm;
  // The last tokens' blocks have the most keys: run them first (less of a tail).
  const int64_t x = int64_t(gridDim.x) - 1 - int64_t(blockIdx.x);
  mt::mma_attention_block(ex, mm, smem, g, b, pl, x, int64_t(blockIdx.y), q, kv, out);
#else
  __trap();  // built without sm_70+ code: mma_attention_applies never picks it
#endif
}

template <class T, class C>
void launch(const void* q, int64_t heads, const PagedKvCuda& c, const PagedBatchCuda& b,
            float scale, int64_t window, void* out, cudaStream_t stream) {
  const mt::Geometry g{heads, c.kv_heads, c.head_dim, c.block_size, scale, window};
  const mt::BatchIndex bi{b.positions, b.seq_begin, b.block_tables, b.num_tokens, b.num_seqs,
                          b.max_blocks_per_seq};
  const mt::Plan pl = mt::plan_mma(b.num_tokens, b.num_seqs, heads, c.kv_heads);
  const QAccess<T> qa{static_cast<const T*>(q), heads, c.head_dim};
  const KvChunks<C> kv{static_cast<const C*>(c.k), static_cast<const C*>(c.v),
                       std::is_same_v<C, int8_t> ? c.k_scale : nullptr,
                       std::is_same_v<C, int8_t> ? c.v_scale : nullptr, c.head_dim};
  const OutWrite<T> ow{static_cast<T*>(out), nullptr, b.num_tokens, heads, c.head_dim, 1};
  const dim3 grid(unsigned(pl.blocks_x), unsigned(c.kv_heads * pl.head_chunks));
  const size_t smem = size_t(mt::shared_bytes(c.head_dim, sizeof(__half)));
  mma_attention_kernel<T, C><<<grid, mt::kThreads, smem, stream>>>(g, bi, pl, qa, kv, ow);
  check_launch("mma_attention_kernel");
}

}  // namespace

bool mma_attention_applies(DType dtype, const PagedKvCuda& c, const PagedBatchCuda& b,
                           const AttentionScratchCuda& scratch) {
  return (dtype == DType::F16 || dtype == DType::BF16) && scratch.arch_major >= 7 &&
         mt::supports_head_dim(c.head_dim) && b.num_tokens > b.num_seqs &&
         !env_is("TESSERA_ATTENTION", "tiled");
}

void paged_attention_mma_cuda(const void* q, DType dtype, int64_t heads, const PagedKvCuda& c,
                              const PagedBatchCuda& b, float scale, int64_t window, void* out,
                              cudaStream_t stream) {
  if (dtype == DType::F16) {
    if (c.dtype == DType::I8) launch<__half, int8_t>(q, heads, c, b, scale, window, out, stream);
    else launch<__half, __half>(q, heads, c, b, scale, window, out, stream);
  } else {
    if (c.dtype == DType::I8)
      launch<__nv_bfloat16, int8_t>(q, heads, c, b, scale, window, out, stream);
    else
      launch<__nv_bfloat16, __nv_bfloat16>(q, heads, c, b, scale, window, out, stream);
  }
}

}  // namespace tessera
