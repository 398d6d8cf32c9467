#include "runtime/load_progress.h"

#include <unistd.h>

#include <cstdio>

namespace tessera {

LoadProgress::LoadProgress(int64_t steps, bool enabled, double quiet_seconds)
    : steps_(steps < 1 ? 1 : steps),
      enabled_(enabled),
      tty_(enabled && isatty(STDERR_FILENO) == 1),
      quiet_seconds_(quiet_seconds),
      start_(std::chrono::steady_clock::now()) {}

void LoadProgress::step(uint64_t bytes) {
  if (!enabled_ || done_ >= steps_) return;
  ++done_;
  const double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double gib = double(bytes) / (1024.0 * 1024.0 * 1024.0);
  // Loads under a second (small models, tests) print nothing: progress is for waits.
  if (s < quiet_seconds_ && !shown_) return;
  shown_ = true;
  if (tty_) {
    constexpr int kWidth = 30;
    const int filled = int(done_ * kWidth / steps_);
    char bar[kWidth + 1];
    for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
    bar[kWidth] = '\0';
    std::fprintf(stderr, "\rloading weights [%s] %3lld%% %.2f GiB %.1f s", bar,
                 (long long)(done_ * 100 / steps_), gib, s);
    if (done_ == steps_) std::fputc('\n', stderr);
    std::fflush(stderr);
    return;
  }
  // A log line at 25, 50, 75 and 100%: readable in a file, not a line per layer.
  const int quarter = int(done_ * 4 / steps_);
  if (quarter > last_quarter_) {
    last_quarter_ = quarter;
    std::fprintf(stderr, "loading weights: %d%% (%.2f GiB, %.1f s)\n", quarter * 25, gib, s);
  }
}

}  // namespace tessera
