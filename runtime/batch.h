// Batch: one forward step's work, as plain data (broadcast to every rank under tensor
// parallel). Prefill, decode and chunked prefill are all batches: a flat list of new tokens,
// and per sequence its slice of that list, its context length and its KV block table.
#pragma once
#include <cstdint>
#include <vector>

namespace tessera {

struct Batch {
  std::vector<int32_t> token_ids;     // [num_tokens] new tokens of all sequences, in order
  std::vector<int32_t> positions;     // [num_tokens] position of each token in its sequence
  std::vector<int32_t> slot_mapping;  // [num_tokens] KV slot = block * block_size + offset
  std::vector<int32_t> seq_begin;     // [num_seqs + 1] token range of sequence s:
                                      //   [seq_begin[s], seq_begin[s+1])
  std::vector<int32_t> context_lens;  // [num_seqs] tokens in the KV cache after this step
  int32_t max_blocks_per_seq = 0;     // row stride of block_tables
  std::vector<int32_t> block_tables;  // [num_seqs, max_blocks_per_seq], -1 padded
  std::vector<int32_t> logit_indices; // token indices (into token_ids) that need logits

  int64_t num_tokens() const { return int64_t(token_ids.size()); }
  int64_t num_seqs() const { return int64_t(context_lens.size()); }
  int64_t num_logits() const { return int64_t(logit_indices.size()); }
  const int32_t* block_table(int64_t s) const {
    return block_tables.data() + s * max_blocks_per_seq;
  }
};

// Checks the internal consistency of a batch (sizes, ranges, slots inside the cache);
// throws std::invalid_argument naming the first problem. Cheap; run on every step.
void validate_batch(const Batch& b, int64_t num_kv_slots, int64_t block_size);

}  // namespace tessera
