// Attention over the paged KV cache (prefill and decode alike). The cache of one layer is
// K, V: [num_blocks, kv_heads, block_size, head_dim]; a token's slot is
// block * block_size + offset, and sequence s's j-th position lives in block
// block_tables[s][j / block_size] at offset j % block_size.
//
// An I8 cache stores each (token, kv head) row of head_dim values x symmetrically quantized:
// s = max|x| / 127 (F32, in k_scale / v_scale [num_blocks, kv_heads, block_size], the index
// of the row), q = round-half-to-even(x / s) clamped to [-127, 127], x' = q * s. An all-zero
// row gets s = 0 and q = 0 (x' = 0 exactly; no division by zero).
#pragma once
#include <cstdint>

#include "runtime/batch.h"
#include "runtime/dtype.h"

namespace tessera {

struct PagedKv {
  void* k = nullptr;  // [num_blocks, kv_heads, block_size, head_dim] of dtype
  void* v = nullptr;  // [num_blocks, kv_heads, block_size, head_dim] of dtype
  int64_t kv_heads = 0;
  int64_t block_size = 0;
  int64_t head_dim = 0;
  DType dtype = DType::F32;  // F32 or I8
  float* k_scale = nullptr;  // I8 only: [num_blocks, kv_heads, block_size]
  float* v_scale = nullptr;  // I8 only: [num_blocks, kv_heads, block_size]
};

// One row as above: q[0:d] and the returned scale s.
float quantize_kv_row(const float* x, int64_t d, int8_t* q);

// Stores k, v [n, kv_heads, head_dim] at slots[n] (quantized when the cache is I8).
void kv_write_cpu(const float* k, const float* v, int64_t n, const int32_t* slots,
                  const PagedKv& cache);

// out [n, heads * head_dim] = softmax(q k^T * scale) v for every token of the batch, causal
// (keys at positions <= the token's position) and, when window > 0, limited to keys at
// positions > position - window. Query head h reads kv head h / (heads / kv_heads). An I8
// cache's codes are converted as they are read (no dequantized copy of the cache); a score is
// scale * s_k * (q . codes), a V row adds p * s_v * codes. The query heads of one kv head are
// computed together (each K/V row read once for all of them), a long context in parts whose
// partial softmaxes are folded in order, split over the threads when the batch has few
// (token, kv head) pairs; the result does not depend on the thread count. AVX-512 when the
// processor has it.
void paged_attention_cpu(const float* q, int64_t heads, const PagedKv& cache, const Batch& b,
                         float scale, int64_t window, float* out);
// The portable path alone, for tests that compare it with the vectorised one.
void paged_attention_cpu_portable(const float* q, int64_t heads, const PagedKv& cache,
                                  const Batch& b, float scale, int64_t window, float* out);

}  // namespace tessera
