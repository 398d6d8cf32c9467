// Sequence: one generation's tokens and its KV blocks; BatchBuilder turns the uncached
// tokens of several sequences into one Batch (prefill, decode and chunked prefill alike).
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/batch.h"
#include "runtime/kv_cache.h"

namespace tessera {

struct Sequence {
  std::vector<int32_t> tokens;  // prompt + generated so far
  int64_t num_cached = 0;       // leading tokens whose K/V are in the cache
  std::vector<int32_t> blocks;  // block table

  // Ensures blocks for `total_tokens` tokens; returns false (allocating nothing) when the
  // allocator has too few free blocks.
  bool reserve(BlockAllocator& alloc, int64_t total_tokens, int64_t block_size);
  void release(BlockAllocator& alloc);
};

// Which of a sequence's new tokens need logits: none (a prefill chunk that does not reach
// the end of the prompt), the last (sampling), or all (scoring, tests).
enum class LogitsFor { None, Last, All };

class BatchBuilder {
 public:
  explicit BatchBuilder(int64_t block_size) : block_size_(block_size) {}
  // Adds tokens [num_cached, num_cached + count) of seq. The sequence must have blocks
  // reserved for num_cached + count tokens.
  void add(const Sequence& seq, int64_t count, LogitsFor logits);
  void add(const Sequence& seq, int64_t count, bool all_logits) {
    add(seq, count, all_logits ? LogitsFor::All : LogitsFor::Last);
  }
  // Finishes the batch (pads block tables). The builder is empty afterwards.
  Batch build();

 private:
  int64_t block_size_;
  Batch b_;
  std::vector<std::vector<int32_t>> tables_;
};

}  // namespace tessera
