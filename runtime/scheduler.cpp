#include "runtime/scheduler.h"

#include <algorithm>
#include <stdexcept>

namespace tessera {

Scheduler::Scheduler(const SchedulerConfig& cfg, BlockAllocator& blocks)
    : cfg_(cfg), blocks_(blocks) {
  if (cfg.max_num_seqs < 1 || cfg.max_num_batched_tokens < 1 || cfg.block_size < 1)
    throw std::invalid_argument("scheduler limits must be positive");
}

void Scheduler::add(ScheduledSequence* s) {
  s->running = false;
  waiting_.push_back(s);
}

void Scheduler::remove(ScheduledSequence* s) {
  auto drop = [s](std::deque<ScheduledSequence*>& q) {
    q.erase(std::remove(q.begin(), q.end(), s), q.end());
  };
  drop(waiting_);
  drop(running_);
  s->seq.release(blocks_);
  s->running = false;
}

void Scheduler::preempt(ScheduledSequence* s) {
  s->seq.release(blocks_);  // recompute later: num_cached = 0, tokens kept
  s->running = false;
  s->num_preemptions += 1;
  waiting_.push_front(s);
}

SchedulerStep Scheduler::schedule() {
  SchedulerStep step;
  BatchBuilder builder(cfg_.block_size);
  int64_t budget = cfg_.max_num_batched_tokens;
  auto take = [&](ScheduledSequence* s, int64_t count) {
    const bool samples = s->seq.num_cached + count == int64_t(s->seq.tokens.size());
    builder.add(s->seq, count, samples ? LogitsFor::Last : LogitsFor::None);
    step.entries.push_back({s, count, samples});
    budget -= count;
  };

  // Running sequences, oldest first. A sequence that cannot grow takes blocks from the
  // youngest running one (possibly itself).
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    ScheduledSequence* s = running_[i];
    const int64_t pending = int64_t(s->seq.tokens.size()) - s->seq.num_cached;
    const int64_t count = std::min(pending, budget);
    bool self_preempted = false;
    while (!s->seq.reserve(blocks_, s->seq.num_cached + count, cfg_.block_size)) {
      ScheduledSequence* victim = running_.back();
      running_.pop_back();
      preempt(victim);
      step.num_preempted += 1;
      if (victim == s) { self_preempted = true; break; }
    }
    if (self_preempted) break;
    take(s, count);
    ++i;
  }

  // Waiting sequences in arrival order; none are admitted in a step that had to preempt.
  while (step.num_preempted == 0 && !waiting_.empty() &&
         int64_t(running_.size()) < cfg_.max_num_seqs && budget > 0) {
    ScheduledSequence* s = waiting_.front();
    const int64_t pending = int64_t(s->seq.tokens.size()) - s->seq.num_cached;
    const int64_t count = std::min(pending, budget);
    if (!s->seq.reserve(blocks_, s->seq.num_cached + count, cfg_.block_size)) break;
    waiting_.pop_front();
    s->running = true;
    running_.push_back(s);
    take(s, count);
  }
  if (!step.entries.empty()) step.batch = builder.build();
  return step;
}

void Scheduler::commit(const SchedulerStep& step) {
  for (const StepPlanEntry& e : step.entries) e.seq->seq.num_cached += e.count;
}

}  // namespace tessera
