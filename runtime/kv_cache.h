// Paged KV cache: per layer K and V as [num_blocks, kv_heads_local, block_size, head_dim],
// and a free-list allocator of block ids. Same layout on every backend. An I8 cache adds one
// F32 scale per (token, kv head) for K and for V (quantization: kernels/attention.h).
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/tensor.h"

namespace tessera {

class Backend;

struct KvLayer {
  Tensor k;  // [num_blocks, kv_heads_local, block_size, head_dim]
  Tensor v;  // [num_blocks, kv_heads_local, block_size, head_dim]
  Tensor k_scale{};  // I8 cache only: F32 [num_blocks, kv_heads_local, block_size]
  Tensor v_scale{};  // I8 cache only: F32 [num_blocks, kv_heads_local, block_size]
};

struct KvCacheShape {
  int64_t num_layers = 0;
  int64_t num_blocks = 0;
  int64_t kv_heads = 0;  // this rank's kv heads
  int64_t block_size = 16;
  int64_t head_dim = 0;
  DType dtype = DType::F32;  // F32 / F16 / BF16, or I8 (+ the F32 scales)

  int64_t bytes_per_block() const;  // all layers, K and V (and their scales)
};

class KvCache {
 public:
  KvCache(Backend& backend, const KvCacheShape& shape);
  const KvCacheShape& shape() const { return shape_; }
  KvLayer& layer(int64_t i) { return layers_[size_t(i)]; }
  int64_t num_slots() const { return shape_.num_blocks * shape_.block_size; }

 private:
  KvCacheShape shape_;
  std::vector<KvLayer> layers_;
};

// Hands out block ids; a block is owned by at most one sequence at a time.
class BlockAllocator {
 public:
  explicit BlockAllocator(int64_t num_blocks);
  int64_t num_free() const { return int64_t(free_.size()); }
  int64_t num_total() const { return total_; }
  bool can_allocate(int64_t n) const { return n <= num_free(); }
  int32_t allocate();  // throws std::runtime_error when none is free
  void free(int32_t block);

 private:
  int64_t total_;
  std::vector<int32_t> free_;
  std::vector<bool> in_use_;
};

}  // namespace tessera
