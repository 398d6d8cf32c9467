// Engine: the serving loop on rank 0. Requests arrive from any thread; one engine thread
// repeats: schedule -> (broadcast the step to the other ranks) -> Model::forward -> sample
// -> update sequences -> emit outputs, until stopped. Blocks are freed on finish, abort and
// error, so the pool is full again whenever no request is alive.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/kv_cache.h"
#include "runtime/metrics.h"
#include "runtime/model.h"
#include "runtime/sampler.h"
#include "runtime/scheduler.h"

namespace tessera {

enum class FinishReason { Stop, Length, Abort, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "abort", "error"

struct FinishEvent {
  FinishReason reason = FinishReason::Stop;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // includes a matched eos / stop token
  std::string error;              // for FinishReason::Error
};

struct EngineRequest {
  std::vector<int32_t> prompt;
  RequestSampling sampling;
  int64_t max_tokens = 16;  // the engine also stops at max_model_len
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;
  // Called on the engine thread for each generated token that belongs to the output (not
  // for a matched eos / stop token). Returning true finishes the request now with "stop"
  // (a stop string matched).
  std::function<bool(const SampledToken&)> on_token;
  std::function<void(const FinishEvent&)> on_finish;  // exactly once, engine thread
  // Polled before each token is emitted: true ends the request with "abort" (its client is
  // gone), even if the disconnect notice has not arrived yet.
  std::function<bool()> cancelled;
};

struct EngineConfig {
  SchedulerConfig scheduler;
  int64_t num_blocks = 0;     // KV blocks in the pool
  int64_t max_model_len = 0;  // prompt + generated tokens per sequence
  uint64_t seed = 0;          // seeds requests that give none (each gets seed + its id)
};

class Comm;

class Engine {
 public:
  // `comm` (may be null for one rank): under tensor parallel every step is broadcast to the
  // other ranks, which run run_worker_loop(). The engine owns the KV cache.
  Engine(Model& model, const EngineConfig& cfg, Comm* comm = nullptr);
  ~Engine();  // stops the thread; unfinished requests end with "abort"

  // Empty when the request can be served; else why not (for a 400).
  std::optional<std::string> check(const EngineRequest& r) const;
  // Queues the request; throws UserError when check() fails. Thread-safe.
  uint64_t submit(EngineRequest r);
  void abort(uint64_t id);  // thread-safe; a finished or unknown id is ignored
  void start();             // runs the loop on its own thread
  void stop();              // finishes alive requests with "abort", joins the thread
  // Runs steps on the calling thread until no request is alive (offline use and tests).
  void run_until_idle();

  const EngineConfig& config() const { return cfg_; }
  int64_t blocks_total() const { return cfg_.num_blocks; }
  int64_t blocks_used() const { return blocks_used_.load(); }  // as of the last step
  int64_t num_alive() const { return alive_.load(); }
  int64_t num_preemptions() const { return preemptions_.load(); }
  ServingMetrics& metrics() { return metrics_; }

 private:
  struct Live;
  void loop();
  bool step();  // false when there was nothing to do
  void publish_state();  // blocks in use and queue sizes -> atomics and metrics
  void take_inbox();
  void finish(Live& live, FinishReason reason, const std::string& error = "");
  bool emit_token(Live& live, const SampledToken& tok);  // true when it finished

  Model& model_;
  EngineConfig cfg_;
  Comm* comm_;
  KvCache kv_;
  BlockAllocator blocks_;
  Scheduler scheduler_;
  ServingMetrics metrics_;
  std::map<uint64_t, std::unique_ptr<Live>> live_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::vector<std::unique_ptr<Live>> inbox_;
  std::vector<uint64_t> aborts_;
  bool stopping_ = false;
  bool workers_released_ = false;  // the shutdown step went out (tensor parallel)
  uint64_t next_id_ = 1;
  std::thread thread_;
  std::atomic<int64_t> blocks_used_{0}, alive_{0}, preemptions_{0};
};

// The loop of ranks other than 0 under tensor parallel: receive a step, run it on this
// rank's shard, until the engine on rank 0 sends the shutdown step.
void run_worker_loop(Model& model, int64_t num_blocks, int64_t block_size, Comm& comm);

}  // namespace tessera
