// Scheduler policy without a model: budgets, FCFS admission, chunked prefill, preemption.
#include <gtest/gtest.h>

#include "runtime/scheduler.h"

namespace tessera {
namespace {

ScheduledSequence make_seq(uint64_t id, int prompt_len) {
  ScheduledSequence s;
  s.id = id;
  s.seq.tokens.assign(size_t(prompt_len), 1);
  return s;
}

// Runs a step as the engine would: commit, then append a token to each sampler.
void finish_step(const SchedulerStep& st) {
  Scheduler::commit(st);
  for (const StepPlanEntry& e : st.entries)
    if (e.samples) e.seq->seq.tokens.push_back(2);
}

TEST(Scheduler, ChunksLongPromptsWithinTheTokenBudget) {
  BlockAllocator blocks(100);
  Scheduler s({8, 32, 16}, blocks);
  ScheduledSequence a = make_seq(1, 70);
  s.add(&a);
  std::vector<int64_t> counts;
  for (int i = 0; i < 4; ++i) {
    SchedulerStep st = s.schedule();
    ASSERT_EQ(st.entries.size(), 1u);
    counts.push_back(st.entries[0].count);
    EXPECT_EQ(st.batch.num_logits(), st.entries[0].samples ? 1 : 0);
    finish_step(st);
  }
  EXPECT_EQ(counts, (std::vector<int64_t>{32, 32, 6, 1}));  // then decode
  s.remove(&a);
  EXPECT_EQ(blocks.num_free(), 100);
}

TEST(Scheduler, AdmitsFirstComeFirstServedWithinMaxNumSeqs) {
  BlockAllocator blocks(100);
  Scheduler s({2, 1000, 16}, blocks);
  ScheduledSequence a = make_seq(1, 10), b = make_seq(2, 10), c = make_seq(3, 10);
  s.add(&a);
  s.add(&b);
  s.add(&c);
  SchedulerStep st = s.schedule();
  ASSERT_EQ(st.entries.size(), 2u);
  EXPECT_EQ(st.entries[0].seq, &a);
  EXPECT_EQ(st.entries[1].seq, &b);
  EXPECT_EQ(s.num_waiting(), 1);
  finish_step(st);
  s.remove(&a);  // a finishes: c gets its place
  st = s.schedule();
  ASSERT_EQ(st.entries.size(), 2u);
  EXPECT_EQ(st.entries[0].seq, &b);
  EXPECT_EQ(st.entries[1].seq, &c);
  EXPECT_EQ(st.entries[1].count, 10);
}

TEST(Scheduler, PreemptsTheYoungestWhenBlocksRunOut) {
  BlockAllocator blocks(4);
  Scheduler s({8, 1000, 16}, blocks);
  ScheduledSequence a = make_seq(1, 32), b = make_seq(2, 32);  // 2 blocks each: pool full
  s.add(&a);
  s.add(&b);
  SchedulerStep st = s.schedule();
  ASSERT_EQ(st.entries.size(), 2u);
  finish_step(st);
  EXPECT_EQ(blocks.num_free(), 0);
  st = s.schedule();  // a needs a 3rd block: b is preempted, its blocks go to a
  EXPECT_EQ(st.num_preempted, 1);
  ASSERT_EQ(st.entries.size(), 1u);
  EXPECT_EQ(st.entries[0].seq, &a);
  EXPECT_EQ(b.num_preemptions, 1);
  EXPECT_EQ(b.seq.num_cached, 0);
  EXPECT_EQ(b.seq.tokens.size(), 33u);  // its generated token is kept for the recompute
  EXPECT_EQ(s.num_waiting(), 1);
  finish_step(st);
  s.remove(&a);
  st = s.schedule();  // b comes back and recomputes all 33 tokens
  ASSERT_EQ(st.entries.size(), 1u);
  EXPECT_EQ(st.entries[0].seq, &b);
  EXPECT_EQ(st.entries[0].count, 33);
  EXPECT_TRUE(st.entries[0].samples);
  s.remove(&b);
  EXPECT_EQ(blocks.num_free(), 4);
}

TEST(Scheduler, WaitsInsteadOfAdmittingWhatDoesNotFit) {
  BlockAllocator blocks(3);
  Scheduler s({8, 1000, 16}, blocks);
  ScheduledSequence a = make_seq(1, 40), b = make_seq(2, 20);  // 3 blocks, then 2 more
  s.add(&a);
  s.add(&b);
  SchedulerStep st = s.schedule();
  ASSERT_EQ(st.entries.size(), 1u);
  EXPECT_EQ(s.num_waiting(), 1);
}

}  // namespace
}  // namespace tessera
