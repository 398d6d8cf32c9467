#include "runtime/sequence.h"

#include <algorithm>
#include <stdexcept>

namespace tessera {

bool Sequence::reserve(BlockAllocator& alloc, int64_t total_tokens, int64_t block_size) {
  const int64_t need = (total_tokens + block_size - 1) / block_size - int64_t(blocks.size());
  if (need <= 0) return true;
  if (!alloc.can_allocate(need)) return false;
  for (int64_t i = 0; i < need; ++i) blocks.push_back(alloc.allocate());
  return true;
}

void Sequence::release(BlockAllocator& alloc) {
  for (int32_t b : blocks) alloc.free(b);
  blocks.clear();
  num_cached = 0;
}

void BatchBuilder::add(const Sequence& seq, int64_t count, LogitsFor logits) {
  const int64_t first = seq.num_cached, end = first + count;
  if (count <= 0 || end > int64_t(seq.tokens.size()))
    throw std::invalid_argument("BatchBuilder: bad token range");
  if (int64_t(seq.blocks.size()) * block_size_ < end)
    throw std::invalid_argument("BatchBuilder: sequence has too few blocks");
  if (b_.seq_begin.empty()) b_.seq_begin.push_back(0);
  for (int64_t p = first; p < end; ++p) {
    const bool wants = logits == LogitsFor::All || (logits == LogitsFor::Last && p == end - 1);
    if (wants) b_.logit_indices.push_back(int32_t(b_.token_ids.size()));
    b_.token_ids.push_back(seq.tokens[size_t(p)]);
    b_.positions.push_back(int32_t(p));
    b_.slot_mapping.push_back(int32_t(seq.blocks[size_t(p / block_size_)] * block_size_ +
                                      p % block_size_));
  }
  b_.seq_begin.push_back(int32_t(b_.token_ids.size()));
  b_.context_lens.push_back(int32_t(end));
  tables_.push_back(seq.blocks);
}

Batch BatchBuilder::build() {
  size_t width = 0;
  for (const auto& t : tables_) width = std::max(width, t.size());
  b_.max_blocks_per_seq = int32_t(width);
  b_.block_tables.assign(tables_.size() * width, -1);
  for (size_t s = 0; s < tables_.size(); ++s)
    std::copy(tables_[s].begin(), tables_[s].end(), b_.block_tables.begin() + long(s * width));
  Batch out = std::move(b_);
  b_ = Batch{};
  tables_.clear();
  return out;
}

}  // namespace tessera
