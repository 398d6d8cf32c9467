// Progress of loading a model's weights, on stderr: a bar redrawn in place on a terminal,
// plain log lines (at each quarter) otherwise, nothing on ranks other than 0, nothing for a
// load that takes less than a second.
#pragma once
#include <chrono>
#include <cstdint>

namespace tessera {

class LoadProgress {
 public:
  // `steps`: units of work (layers + embeddings + lm_head); `enabled`: rank 0;
  // `quiet_seconds`: nothing is shown before this much time has passed.
  LoadProgress(int64_t steps, bool enabled, double quiet_seconds = 1.0);
  // One unit done; `bytes`: weight bytes held so far.
  void step(uint64_t bytes);

 private:
  int64_t steps_, done_ = 0;
  bool enabled_, tty_, shown_ = false;
  double quiet_seconds_;
  int last_quarter_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace tessera
