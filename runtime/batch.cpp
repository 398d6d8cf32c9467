#include "runtime/batch.h"

#include <stdexcept>
#include <string>

namespace tessera {

static void check(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("invalid batch: ") + what);
}

void validate_batch(const Batch& b, int64_t num_kv_slots, int64_t block_size) {
  const int64_t n = b.num_tokens();
  check(b.positions.size() == size_t(n) && b.slot_mapping.size() == size_t(n),
        "positions/slot_mapping size differs from token count");
  check(b.seq_begin.size() == b.context_lens.size() + 1, "seq_begin must have num_seqs + 1");
  check(!b.seq_begin.empty() && b.seq_begin.front() == 0 && b.seq_begin.back() == n,
        "seq_begin must start at 0 and end at num_tokens");
  check(b.block_tables.size() == size_t(b.num_seqs() * b.max_blocks_per_seq),
        "block_tables size must be num_seqs * max_blocks_per_seq");
  for (int64_t s = 0; s < b.num_seqs(); ++s) {
    int32_t count = b.seq_begin[size_t(s) + 1] - b.seq_begin[size_t(s)];
    check(count >= 0, "seq_begin must be non-decreasing");
    check(b.context_lens[size_t(s)] >= count, "context_len smaller than its new tokens");
    check(b.context_lens[size_t(s)] <= int64_t(b.max_blocks_per_seq) * block_size,
          "context_len exceeds the block table");
    int64_t needed = (b.context_lens[size_t(s)] + block_size - 1) / block_size;
    for (int64_t i = 0; i < needed; ++i) {
      int32_t blk = b.block_table(s)[i];
      check(blk >= 0 && int64_t(blk) * block_size < num_kv_slots, "block id out of range");
    }
    // New tokens are the last `count` positions of the context, stored where the table says.
    for (int32_t t = b.seq_begin[size_t(s)]; t < b.seq_begin[size_t(s) + 1]; ++t) {
      const int64_t pos = b.context_lens[size_t(s)] - count + (t - b.seq_begin[size_t(s)]);
      check(b.positions[size_t(t)] == pos, "position differs from the sequence's context");
      check(b.slot_mapping[size_t(t)] ==
                b.block_table(s)[pos / block_size] * block_size + pos % block_size,
            "slot differs from the block table");
    }
  }
  for (int64_t i = 0; i < n; ++i)
    check(b.slot_mapping[size_t(i)] >= 0 && b.slot_mapping[size_t(i)] < num_kv_slots,
          "slot out of range");
  for (int32_t li : b.logit_indices) check(li >= 0 && li < n, "logit index out of range");
}

}  // namespace tessera
