// Sequence + BatchBuilder (slot mapping, -1 padded block tables, logit indices),
// BlockAllocator (ownership, double free) and validate_batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <stdexcept>
#include <vector>

#include "runtime/batch.h"
#include "runtime/kv_cache.h"
#include "runtime/sequence.h"

namespace tessera::test {
namespace {

Sequence make_seq(int n, int first_token) {
  Sequence s;
  for (int i = 0; i < n; ++i) s.tokens.push_back(first_token + i);
  return s;
}

// A valid two-sequence batch to break one field at a time.
Batch good_batch() {
  BlockAllocator alloc(8);
  BatchBuilder bb(4);
  Sequence a = make_seq(6, 10), b = make_seq(3, 50);
  EXPECT_TRUE(a.reserve(alloc, 6, 4));
  EXPECT_TRUE(b.reserve(alloc, 3, 4));
  bb.add(a, 6, true);
  bb.add(b, 3, false);
  return bb.build();
}

}  // namespace

TEST(SequenceBatch, PrefillSlotsTablesAndLogits) {
  const int64_t bs = 4;
  BlockAllocator alloc(10);
  // Take a few blocks first so the sequences get non-trivial ids.
  const int32_t held = alloc.allocate();
  Sequence a = make_seq(6, 100), b = make_seq(9, 200), c = make_seq(1, 300);
  ASSERT_TRUE(a.reserve(alloc, 6, bs));
  ASSERT_TRUE(b.reserve(alloc, 9, bs));
  ASSERT_TRUE(c.reserve(alloc, 1, bs));
  EXPECT_EQ(a.blocks.size(), 2u);
  EXPECT_EQ(b.blocks.size(), 3u);
  EXPECT_EQ(c.blocks.size(), 1u);
  std::set<int32_t> ids(a.blocks.begin(), a.blocks.end());
  ids.insert(b.blocks.begin(), b.blocks.end());
  ids.insert(c.blocks.begin(), c.blocks.end());
  ids.insert(held);
  EXPECT_EQ(ids.size(), 7u) << "a block handed out twice";
  EXPECT_EQ(alloc.num_free(), 3);

  BatchBuilder bb(bs);
  bb.add(a, 6, true);
  bb.add(b, 9, false);
  bb.add(c, 1, false);
  const Batch batch = bb.build();
  ASSERT_EQ(batch.num_tokens(), 16);
  ASSERT_EQ(batch.num_seqs(), 3);
  EXPECT_EQ(batch.seq_begin, (std::vector<int32_t>{0, 6, 15, 16}));
  EXPECT_EQ(batch.context_lens, (std::vector<int32_t>{6, 9, 1}));
  const Sequence* seqs[] = {&a, &b, &c};
  for (int s = 0; s < 3; ++s)
    for (int32_t t = batch.seq_begin[size_t(s)]; t < batch.seq_begin[size_t(s) + 1]; ++t) {
      const int32_t p = t - batch.seq_begin[size_t(s)];
      EXPECT_EQ(batch.positions[size_t(t)], p);
      EXPECT_EQ(batch.token_ids[size_t(t)], seqs[s]->tokens[size_t(p)]);
      EXPECT_EQ(batch.slot_mapping[size_t(t)], seqs[s]->blocks[size_t(p / bs)] * bs + p % bs)
          << "seq " << s << " pos " << p;
    }
  // Block tables: 3 wide (the longest), -1 padded.
  ASSERT_EQ(batch.max_blocks_per_seq, 3);
  const std::vector<int32_t> want = {a.blocks[0], a.blocks[1], -1,          b.blocks[0],
                                     b.blocks[1], b.blocks[2], c.blocks[0], -1,
                                     -1};
  EXPECT_EQ(batch.block_tables, want);
  // Logits: every position of a, the last of b and c.
  EXPECT_EQ(batch.logit_indices, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 14, 15}));
  EXPECT_NO_THROW(validate_batch(batch, 10 * bs, bs));
  // The builder starts over after build().
  bb.add(c, 1, true);
  const Batch again = bb.build();
  EXPECT_EQ(again.num_tokens(), 1);
  EXPECT_EQ(again.seq_begin, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(again.logit_indices, (std::vector<int32_t>{0}));
}

TEST(SequenceBatch, DecodeAndChunkedPrefill) {
  const int64_t bs = 4;
  BlockAllocator alloc(6);
  Sequence s = make_seq(11, 1);
  ASSERT_TRUE(s.reserve(alloc, 5, bs));  // first chunk: 5 tokens, 2 blocks
  EXPECT_EQ(s.blocks.size(), 2u);
  BatchBuilder bb(bs);
  bb.add(s, 5, false);
  Batch b1 = bb.build();
  EXPECT_EQ(b1.positions, (std::vector<int32_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(b1.logit_indices, (std::vector<int32_t>{4}));
  s.num_cached = 5;
  ASSERT_TRUE(s.reserve(alloc, 11, bs));  // grows to 3 blocks, keeps the first two
  EXPECT_EQ(s.blocks.size(), 3u);
  EXPECT_EQ(s.blocks[0], b1.block_tables[0]);
  EXPECT_EQ(s.blocks[1], b1.block_tables[1]);
  bb.add(s, 6, false);  // positions 5..10
  const Batch b2 = bb.build();
  EXPECT_EQ(b2.positions, (std::vector<int32_t>{5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(b2.token_ids, (std::vector<int32_t>{6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(b2.context_lens, (std::vector<int32_t>{11}));
  EXPECT_EQ(b2.slot_mapping[0], s.blocks[1] * bs + 1);
  EXPECT_EQ(b2.slot_mapping[3], s.blocks[2] * bs + 0);
  EXPECT_EQ(b2.logit_indices, (std::vector<int32_t>{5}));
  EXPECT_NO_THROW(validate_batch(b2, 6 * bs, bs));
  // Reserving what is already there allocates nothing.
  const int64_t free_before = alloc.num_free();
  EXPECT_TRUE(s.reserve(alloc, 12, bs));
  EXPECT_EQ(alloc.num_free(), free_before);
  // Adding more tokens than the sequence has, or more than its blocks hold, is refused.
  s.num_cached = 11;
  EXPECT_THROW(bb.add(s, 1, false), std::invalid_argument);
  Sequence t = make_seq(9, 0);
  ASSERT_TRUE(t.reserve(alloc, 4, bs));
  EXPECT_THROW(bb.add(t, 5, false), std::invalid_argument);
  EXPECT_THROW(bb.add(t, 0, false), std::invalid_argument);
}

TEST(SequenceBatch, ReserveFailsWithoutAllocatingAndReleaseReturns) {
  const int64_t bs = 16;
  BlockAllocator alloc(4);
  Sequence a = make_seq(40, 0);
  ASSERT_TRUE(a.reserve(alloc, 40, bs));  // 3 blocks
  EXPECT_EQ(alloc.num_free(), 1);
  Sequence b = make_seq(20, 0);
  EXPECT_FALSE(b.reserve(alloc, 20, bs));  // needs 2, 1 free
  EXPECT_TRUE(b.blocks.empty()) << "a failed reserve must not keep blocks";
  EXPECT_EQ(alloc.num_free(), 1) << "a failed reserve must not take blocks";
  EXPECT_FALSE(a.reserve(alloc, 80, bs));  // needs 2 more
  EXPECT_EQ(a.blocks.size(), 3u);
  EXPECT_EQ(alloc.num_free(), 1);
  a.num_cached = 40;
  a.release(alloc);
  EXPECT_TRUE(a.blocks.empty());
  EXPECT_EQ(a.num_cached, 0);
  EXPECT_EQ(alloc.num_free(), 4);
  EXPECT_TRUE(b.reserve(alloc, 20, bs));
  EXPECT_EQ(alloc.num_free(), 2);
  EXPECT_TRUE(b.reserve(alloc, 64, bs));
  EXPECT_EQ(alloc.num_free(), 0);
  EXPECT_FALSE(a.reserve(alloc, 1, bs));
}

TEST(SequenceBatch, BlockAllocatorOwnershipAndDoubleFree) {
  BlockAllocator alloc(3);
  EXPECT_EQ(alloc.num_total(), 3);
  std::set<int32_t> got;
  for (int i = 0; i < 3; ++i) got.insert(alloc.allocate());
  EXPECT_EQ(got, (std::set<int32_t>{0, 1, 2}));
  EXPECT_FALSE(alloc.can_allocate(1));
  EXPECT_TRUE(alloc.can_allocate(0));
  EXPECT_THROW(alloc.allocate(), std::runtime_error);
  alloc.free(1);
  EXPECT_THROW(alloc.free(1), std::logic_error);   // double free
  EXPECT_THROW(alloc.free(3), std::logic_error);   // not a block
  EXPECT_THROW(alloc.free(-1), std::logic_error);
  EXPECT_EQ(alloc.num_free(), 1);
  EXPECT_EQ(alloc.allocate(), 1);
  // A never-allocated block cannot be freed either.
  BlockAllocator fresh(2);
  EXPECT_THROW(fresh.free(0), std::logic_error);
  EXPECT_EQ(fresh.num_free(), 2);
}

TEST(SequenceBatch, ValidateBatchRejectsInconsistentBatches) {
  const int64_t bs = 4, slots = 8 * bs;
  ASSERT_NO_THROW(validate_batch(good_batch(), slots, bs));
  struct Breaker { const char* what; void (*fn)(Batch&); };
  const Breaker breakers[] = {
      {"positions too short", [](Batch& b) { b.positions.pop_back(); }},
      {"slot_mapping too long", [](Batch& b) { b.slot_mapping.push_back(0); }},
      {"seq_begin size", [](Batch& b) { b.seq_begin.pop_back(); }},
      {"seq_begin not from 0", [](Batch& b) { b.seq_begin[0] = 1; }},
      {"seq_begin not to n", [](Batch& b) { b.seq_begin.back() = 8; }},
      {"decreasing seq_begin", [](Batch& b) { b.seq_begin[1] = 9; }},
      {"context shorter than new tokens", [](Batch& b) { b.context_lens[0] = 5; }},
      {"context beyond the table", [](Batch& b) { b.context_lens[1] = 9; }},
      {"table size", [](Batch& b) { b.block_tables.pop_back(); }},
      {"negative block", [](Batch& b) { b.block_tables[0] = -1; }},
      {"block out of range", [](Batch& b) { b.block_tables[1] = 8; }},
      {"slot out of range", [](Batch& b) { b.slot_mapping[2] = 32; }},
      {"negative slot", [](Batch& b) { b.slot_mapping[0] = -1; }},
      {"logit index out of range", [](Batch& b) { b.logit_indices.push_back(9); }},
      {"negative logit index", [](Batch& b) { b.logit_indices[0] = -1; }},
      {"empty seq_begin", [](Batch& b) { b.seq_begin.clear(); b.context_lens.clear(); }},
  };
  for (const auto& br : breakers) {
    Batch b = good_batch();
    br.fn(b);
    EXPECT_THROW(validate_batch(b, slots, bs), std::invalid_argument) << br.what;
  }
}

// BUG (runtime/batch.cpp, validate_batch): positions are never checked against the
// context lengths and block tables, nor slots against the block tables. A token whose
// position lies beyond its sequence's context makes paged_attention_cpu read
// block_table(s)[pos / block_size] past the row (into the next sequence's row or past the
// vector), and a slot that disagrees with the table writes K/V where attention never reads.
// Enable when validate_batch checks, per sequence s and token t of it:
// positions[t] == context_lens[s] - count + (t - seq_begin[s]) and
// slot_mapping[t] == block_table(s)[pos / block_size] * block_size + pos % block_size.
TEST(SequenceBatch, ValidateBatchChecksPositionsAndSlotsAgainstTables) {
  const int64_t bs = 4, slots = 8 * bs;
  {
    Batch b = good_batch();
    b.positions[8] = 40;  // sequence 1 has context 3 and a one-block table
    EXPECT_THROW(validate_batch(b, slots, bs), std::invalid_argument) << "position past context";
  }
  {
    Batch b = good_batch();
    b.positions[0] = 3;  // duplicate position inside sequence 0 (0..5 expected)
    EXPECT_THROW(validate_batch(b, slots, bs), std::invalid_argument) << "positions out of order";
  }
  {
    Batch b = good_batch();
    b.slot_mapping[0] = b.slot_mapping[0] == 31 ? 30 : 31;  // a slot of a block it does not own
    EXPECT_THROW(validate_batch(b, slots, bs), std::invalid_argument) << "slot off the table";
  }
}

}  // namespace tessera::test
