// Scheduler: continuous batching over paged KV blocks (vLLM's policy). Every step it takes
// the running sequences first (decode, or the next chunk of a long prompt), then admits
// waiting ones first-come-first-served, within max_num_seqs and max_num_batched_tokens.
// When blocks run out it preempts the most recently admitted running sequence by
// recompute: its blocks are freed and it goes back to the front of the waiting queue with
// all its tokens (prompt + generated), to be prefilled again later. Nothing is lost.
#pragma once
#include <cstdint>
#include <deque>
#include <vector>

#include "runtime/batch.h"
#include "runtime/kv_cache.h"
#include "runtime/sequence.h"

namespace tessera {

struct SchedulerConfig {
  int64_t max_num_seqs = 64;
  int64_t max_num_batched_tokens = 2048;
  int64_t block_size = 16;
};

// A sequence under the scheduler's care. The engine owns it; the scheduler keeps pointers.
struct ScheduledSequence {
  uint64_t id = 0;
  Sequence seq;              // prompt + generated tokens, cached count, block table
  int64_t num_preemptions = 0;
  bool running = false;
};

struct StepPlanEntry {
  ScheduledSequence* seq = nullptr;
  int64_t count = 0;     // new tokens of this sequence in the batch
  bool samples = false;  // the batch reaches its last token: sample the next one
};

struct SchedulerStep {
  Batch batch;                        // empty (no tokens) when nothing can run
  std::vector<StepPlanEntry> entries; // in batch order; logits rows follow the samplers
  int64_t num_preempted = 0;
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& cfg, BlockAllocator& blocks);

  void add(ScheduledSequence* s);     // joins the back of the waiting queue
  // Drops s from whichever queue holds it and frees its blocks (finish, abort, disconnect).
  void remove(ScheduledSequence* s);
  SchedulerStep schedule();
  // After the step ran: every entry's tokens are now cached.
  static void commit(const SchedulerStep& step);

  int64_t num_waiting() const { return int64_t(waiting_.size()); }
  int64_t num_running() const { return int64_t(running_.size()); }
  bool idle() const { return waiting_.empty() && running_.empty(); }
  const SchedulerConfig& config() const { return cfg_; }

 private:
  void preempt(ScheduledSequence* s);

  SchedulerConfig cfg_;
  BlockAllocator& blocks_;
  std::deque<ScheduledSequence*> waiting_;
  std::deque<ScheduledSequence*> running_;  // in admission order
};

}  // namespace tessera
