// CUDA launchers for the paged KV cache: kv_write and attention over it (twins of
// attention_cpu.cpp). Cache per layer: K, V [num_blocks, kv_heads, block_size, head_dim] in
// the compute dtype, or I8 with F32 scales per (token, kv head) (the quantization of
// kernels/attention.h, bit for bit).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/dtype.h"

namespace tessera {

struct PagedKvCuda {
  void* k = nullptr;  // [num_blocks, kv_heads, block_size, head_dim]
  void* v = nullptr;
  DType dtype = DType::F16;  // of k and v: the compute dtype, or I8
  int64_t kv_heads = 0, block_size = 0, head_dim = 0;
  float* k_scale = nullptr;  // I8 only: [num_blocks, kv_heads, block_size]
  float* v_scale = nullptr;
};

// The batch's index arrays on the device (shapes as in Batch).
struct PagedBatchCuda {
  const int32_t* positions = nullptr;     // [n]
  const int32_t* slot_mapping = nullptr;  // [n]
  const int32_t* seq_begin = nullptr;     // [num_seqs + 1]
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  int64_t num_tokens = 0, num_seqs = 0, max_blocks_per_seq = 0;
};

// Device memory for the split-K partial softmaxes of decode attention (kernels/
// attention_tiles.h), the SM count the splits aim to fill (data == nullptr: no splits), and
// the GPU's compute capability (major; 7 and up: the tensor-core prefill kernel).
struct AttentionScratchCuda {
  float* data = nullptr;
  int64_t floats = 0;
  int64_t sm_count = 0;
  int arch_major = 0;
};

// Stores k, v [n, kv_heads, head_dim] (dtype: the cache's, or any float dtype for an I8
// cache, which quantizes them) at their slots.
void kv_write_cuda(const void* k, const void* v, DType dtype, const PagedBatchCuda& b,
                   const PagedKvCuda& cache, cudaStream_t stream);

// out [n, heads * head_dim] = causal softmax(q k^T * scale) v per token, q [n, heads, head_dim],
// q and out in dtype (the cache's, or any float dtype for an I8 cache, dequantized as it is
// read); fp32 scores and accumulation. window > 0: keys at positions > position - window
// only. Query head h reads kv head h / (heads / kv_heads). Batches with prefill tokens in
// fp16 / bf16 run the tensor-core kernel when mma_attention_applies (attention_mma.cu: fp16
// tiles, fp32 scores and sums), others the tiled kernel (a block per kv head's query heads
// and a run of tokens, decode contexts split over `scratch`). To compare them on a GPU,
// TESSERA_ATTENTION=tiled runs the tiled kernel for every batch and TESSERA_ATTENTION=naive
// the first kernel (a block per token and query head).
void paged_attention_cuda(const void* q, DType dtype, int64_t heads, const PagedKvCuda& cache,
                          const PagedBatchCuda& b, float scale, int64_t window,
                          const AttentionScratchCuda& scratch, void* out, cudaStream_t stream);
// The tiled kernel alone (kernels/attention_tiled.cu), arguments checked by the above.
void paged_attention_tiled_cuda(const void* q, DType dtype, int64_t heads,
                                const PagedKvCuda& cache, const PagedBatchCuda& b, float scale,
                                int64_t window, const AttentionScratchCuda& scratch, void* out,
                                cudaStream_t stream);
// Whether the tensor-core kernel takes this batch: fp16 / bf16, compute capability 7.0 and
// up, head_dim a multiple of 16 up to 128, some sequence with more than one new token, and
// TESSERA_ATTENTION not "tiled".
bool mma_attention_applies(DType dtype, const PagedKvCuda& cache, const PagedBatchCuda& b,
                           const AttentionScratchCuda& scratch);
// The tensor-core kernel alone (kernels/attention_mma.cu), when the above holds.
void paged_attention_mma_cuda(const void* q, DType dtype, int64_t heads,
                              const PagedKvCuda& cache, const PagedBatchCuda& b, float scale,
                              int64_t window, void* out, cudaStream_t stream);

}  // namespace tessera
