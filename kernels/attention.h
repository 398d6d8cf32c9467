// Attention over the paged KV cache (prefill and decode alike). The cache of one layer is
// K, V: [num_blocks, kv_heads, block_size, head_dim]; a token's slot is
// block * block_size + offset, and sequence s's j-th position lives in block
// block_tables[s][j / block_size] at offset j % block_size.
#pragma once
#include <cstdint>

#include "runtime/batch.h"

namespace tessera {

struct PagedKv {
  float* k = nullptr;  // [num_blocks, kv_heads, block_size, head_dim]
  float* v = nullptr;  // [num_blocks, kv_heads, block_size, head_dim]
  int64_t kv_heads = 0;
  int64_t block_size = 0;
  int64_t head_dim = 0;
};

// Stores k, v [n, kv_heads, head_dim] at slots[n].
void kv_write_cpu(const float* k, const float* v, int64_t n, const int32_t* slots,
                  const PagedKv& cache);

// out [n, heads * head_dim] = softmax(q k^T * scale) v for every token of the batch, causal
// (keys at positions <= the token's position) and, when window > 0, limited to keys at
// positions > position - window. Query head h reads kv head h / (heads / kv_heads).
void paged_attention_cpu(const float* q, int64_t heads, const PagedKv& cache, const Batch& b,
                         float scale, int64_t window, float* out);

}  // namespace tessera
