#include "runtime/kv_cache.h"

#include <stdexcept>
#include <string>

#include "runtime/backend.h"

namespace tessera {

int64_t KvCacheShape::bytes_per_block() const {
  const int64_t scale = dtype == DType::I8 ? int64_t(sizeof(float)) : 0;  // per row
  return 2 * num_layers * kv_heads * block_size * (head_dim * int64_t(dtype_size(dtype)) + scale);
}

KvCache::KvCache(Backend& backend, const KvCacheShape& shape) : shape_(shape) {
  layers_.reserve(size_t(shape.num_layers));
  for (int64_t i = 0; i < shape.num_layers; ++i) {
    KvLayer l;
    l.k = backend.alloc(shape.dtype, {shape.num_blocks, shape.kv_heads, shape.block_size,
                                      shape.head_dim});
    l.v = backend.alloc(shape.dtype, {shape.num_blocks, shape.kv_heads, shape.block_size,
                                      shape.head_dim});
    if (shape.dtype == DType::I8) {
      l.k_scale = backend.alloc(DType::F32, {shape.num_blocks, shape.kv_heads, shape.block_size});
      l.v_scale = backend.alloc(DType::F32, {shape.num_blocks, shape.kv_heads, shape.block_size});
    }
    layers_.push_back(std::move(l));
  }
}

BlockAllocator::BlockAllocator(int64_t num_blocks)
    : total_(num_blocks), in_use_(size_t(num_blocks), false) {
  free_.reserve(size_t(num_blocks));
  // Hand out low ids first (pop from the back).
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

int32_t BlockAllocator::allocate() {
  if (free_.empty()) throw std::runtime_error("KV cache: no free block");
  int32_t b = free_.back();
  free_.pop_back();
  in_use_[size_t(b)] = true;
  return b;
}

void BlockAllocator::free(int32_t block) {
  if (block < 0 || block >= total_ || !in_use_[size_t(block)])
    throw std::logic_error("KV cache: double free or bad block id " + std::to_string(block));
  in_use_[size_t(block)] = false;
  free_.push_back(block);
}

}  // namespace tessera
