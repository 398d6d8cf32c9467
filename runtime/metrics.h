// Serving metrics in Prometheus text format: counters, gauges and latency histograms.
// Written by the engine thread, read by the HTTP server: every member is guarded.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace tessera {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  // Appends `name_bucket{le=...}`, `name_sum`, `name_count` lines.
  void render(const std::string& name, const std::string& help, std::string& out) const;
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> buckets_;  // cumulative at render time; per-bucket here
  double sum_ = 0;
  uint64_t count_ = 0;
};

class ServingMetrics {
 public:
  ServingMetrics();
  void request_finished(const std::string& reason);
  void add_tokens(int64_t prompt, int64_t generated);
  void time_to_first_token(double seconds);
  void inter_token_latency(double seconds);
  void set_state(int64_t running, int64_t waiting, int64_t blocks_used, int64_t blocks_total,
                 int64_t preemptions_total);
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, uint64_t>> finished_;  // by finish reason
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  Histogram ttft_, itl_;
  int64_t running_ = 0, waiting_ = 0, blocks_used_ = 0, blocks_total_ = 0, preemptions_ = 0;
};

}  // namespace tessera
