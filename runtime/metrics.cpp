#include "runtime/metrics.h"

#include <cstdio>

namespace tessera {
namespace {

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void gauge(const std::string& name, const std::string& help, const char* type, double v,
           std::string& out) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  out += name + " " + num(v) + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), buckets_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i] += 1;
  sum_ += v;
  count_ += 1;
}

void Histogram::render(const std::string& name, const std::string& help,
                       std::string& out) const {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += buckets_[i];
    out += name + "_bucket{le=\"" + num(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  out += name + "_sum " + num(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
}

ServingMetrics::ServingMetrics()
    : ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
             7.5, 10.0, 20.0, 40.0, 80.0}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15,
            0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}) {}

void ServingMetrics::request_finished(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [r, n] : finished_)
    if (r == reason) { n += 1; return; }
  finished_.emplace_back(reason, 1);
}

void ServingMetrics::add_tokens(int64_t prompt, int64_t generated) {
  std::lock_guard<std::mutex> lock(mu_);
  prompt_tokens_ += uint64_t(prompt);
  generated_tokens_ += uint64_t(generated);
}

void ServingMetrics::time_to_first_token(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ttft_.observe(seconds);
}

void ServingMetrics::inter_token_latency(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  itl_.observe(seconds);
}

void ServingMetrics::set_state(int64_t running, int64_t waiting, int64_t blocks_used,
                               int64_t blocks_total, int64_t preemptions_total) {
  std::lock_guard<std::mutex> lock(mu_);
  running_ = running;
  waiting_ = waiting;
  blocks_used_ = blocks_used;
  blocks_total_ = blocks_total;
  preemptions_ = preemptions_total;
}

std::string ServingMetrics::render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  out += "# HELP tessera_requests_total Finished requests by finish reason.\n"
         "# TYPE tessera_requests_total counter\n";
  for (const auto& [reason, n] : finished_)
    out += "tessera_requests_total{finish_reason=\"" + reason + "\"} " + std::to_string(n) + "\n";
  gauge("tessera_prompt_tokens_total", "Prompt tokens processed.", "counter",
        double(prompt_tokens_), out);
  gauge("tessera_generation_tokens_total", "Tokens generated.", "counter",
        double(generated_tokens_), out);
  ttft_.render("tessera_time_to_first_token_seconds", "Time to first token.", out);
  itl_.render("tessera_inter_token_latency_seconds", "Time between output tokens.", out);
  gauge("tessera_num_requests_running", "Sequences in the running queue.", "gauge",
        double(running_), out);
  gauge("tessera_num_requests_waiting", "Sequences in the waiting queue.", "gauge",
        double(waiting_), out);
  gauge("tessera_kv_blocks_used", "KV cache blocks in use.", "gauge", double(blocks_used_), out);
  gauge("tessera_kv_blocks_total", "KV cache blocks in the pool.", "gauge",
        double(blocks_total_), out);
  gauge("tessera_num_preemptions_total", "Sequences preempted (recomputed later).", "counter",
        double(preemptions_), out);
  return out;
}

}  // namespace tessera
