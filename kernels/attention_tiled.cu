// The tiled paged attention (the algorithm: kernels/attention_tiles.h) on the GPU: the block
// kernel, the split-K combine, and the launcher (accessors: kernels/attention_access.cuh).
#include <cfloat>
#include <type_traits>

#include "kernels/attention_access.cuh"
#include "kernels/attention_cuda.h"
#include "kernels/attention_tiles.h"
#include "kernels/cuda_util.cuh"

namespace tessera {
namespace {

using namespace tessera::cuda;

template <int KT> struct DeviceExec {  // each thread its registers; a barrier after a phase
  tiles::Regs<KT> regs;
  template <class F> __device__ __forceinline__ void each(F&& f) {
    f(int(threadIdx.x), regs);
    __syncthreads();
  }
};

template <class T, class C, int KT>
__global__ void __launch_bounds__(tiles::kThreads)
    tiled_attention_kernel(tiles::Geometry g, tiles::BatchIndex b, tiles::Plan pl,
                           QAccess<T> q, KvRead<C> kv, OutWrite<T> out) {
  extern __shared__ __align__(16) float sh[];  // F4 reads of its rows
  DeviceExec<KT> ex;
  tiles::attention_block<KT>(ex, sh, g, b, pl, int64_t(blockIdx.x), int64_t(blockIdx.y),
                         int64_t(blockIdx.z), q, kv, out);
}

// One block per (token, head): output element i = combine_splits(..., i).
template <class T>
__global__ void combine_splits_kernel(OutWrite<T> o) {
  const int64_t t = blockIdx.x, h = blockIdx.y, row = t * o.heads + h;
  const float* parts = o.part + row * o.splits * o.d;
  const float* ml = o.part + o.n * o.heads * o.splits * o.d + row * o.splits * 2;
  for (int64_t i = threadIdx.x; i < o.d; i += blockDim.x)
    o.write(t, h, i, tiles::combine_splits(ml, parts, o.splits, o.d, i));
}

template <class T, class C>
void launch(const void* q, int64_t heads, const PagedKvCuda& c, const PagedBatchCuda& b,
            float scale, int64_t window, const AttentionScratchCuda& scratch, void* out,
            cudaStream_t stream) {
  const tiles::Geometry g{heads, c.kv_heads, c.head_dim, c.block_size, scale, window};
  const tiles::BatchIndex bi{b.positions, b.seq_begin, b.block_tables, b.num_tokens,
                             b.num_seqs, b.max_blocks_per_seq};
  const int64_t partial_floats = scratch.data != nullptr ? scratch.floats : 0;
  const tiles::Plan pl = tiles::plan_tiles(b.num_tokens, b.num_seqs, heads, c.kv_heads,
                                           c.head_dim, b.max_blocks_per_seq * c.block_size,
                                           scratch.sm_count, partial_floats);
  const QAccess<T> qa{static_cast<const T*>(q), heads, c.head_dim};
  const KvRead<C> kv{static_cast<const C*>(c.k), static_cast<const C*>(c.v),
                     std::is_same_v<C, int8_t> ? c.k_scale : nullptr,
                     std::is_same_v<C, int8_t> ? c.v_scale : nullptr, c.head_dim};
  const OutWrite<T> ow{static_cast<T*>(out), scratch.data, b.num_tokens, heads, c.head_dim,
                       pl.splits};
  const dim3 grid(unsigned(pl.token_blocks), unsigned(c.kv_heads * pl.head_chunks),
                  unsigned(pl.splits));
  const size_t smem = size_t(tiles::shared_floats(c.head_dim)) * sizeof(float);
  tiles::with_key_tile(c.head_dim, [&](auto kt) {
    tiled_attention_kernel<T, C, decltype(kt)::value>
        <<<grid, tiles::kThreads, smem, stream>>>(g, bi, pl, qa, kv, ow);
  });
  check_launch("tiled_attention_kernel");
  if (pl.splits == 1) return;
  combine_splits_kernel<T><<<dim3(unsigned(b.num_tokens), unsigned(heads)), 128, 0, stream>>>(ow);
  check_launch("combine_splits_kernel");
}

}  // namespace

void paged_attention_tiled_cuda(const void* q, DType dtype, int64_t heads, const PagedKvCuda& c,
                                const PagedBatchCuda& b, float scale, int64_t window,
                                const AttentionScratchCuda& scratch, void* out,
                                cudaStream_t stream) {
  dispatch_float(dtype, "attention", [&](auto tag) {
    using T = decltype(tag);
    if (c.dtype == DType::I8)
      launch<T, int8_t>(q, heads, c, b, scale, window, scratch, out, stream);
    else
      launch<T, T>(q, heads, c, b, scale, window, scratch, out, stream);
  });
}

}  // namespace tessera
