#include "runtime/engine.h"

#include <chrono>
#include <cstdio>

#include "parallel/comm.h"
#include "parallel/step_broadcast.h"
#include "runtime/error.h"

namespace tessera {

using Clock = std::chrono::steady_clock;

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Abort: return "abort";
    case FinishReason::Error: return "error";
  }
  return "error";
}

struct Engine::Live {
  EngineRequest req;
  ScheduledSequence sched;
  std::unique_ptr<Sampler> sampler;
  std::vector<int32_t> output;
  int64_t prompt_len = 0;
  int64_t limit = 0;  // total tokens at which the request ends with "length"
  Clock::time_point arrival, last_token;
  bool finished = false;
};

Engine::Engine(Model& model, const EngineConfig& cfg, Comm* comm)
    : model_(model),
      cfg_(cfg),
      comm_(comm),
      kv_(model.backend(), model.kv_shape(cfg.num_blocks, cfg.scheduler.block_size)),
      blocks_(cfg.num_blocks),
      scheduler_(cfg.scheduler, blocks_) {
  if (cfg.max_model_len < 1) throw std::invalid_argument("engine: max_model_len must be >= 1");
  metrics_.set_state(0, 0, 0, cfg.num_blocks, 0);
}

Engine::~Engine() { stop(); }

std::optional<std::string> Engine::check(const EngineRequest& r) const {
  const int64_t vocab = model_.config().vocab_size, n = int64_t(r.prompt.size());
  if (r.prompt.empty()) return "the prompt is empty";
  for (int32_t id : r.prompt)
    if (id < 0 || id >= vocab)
      return "prompt token id " + std::to_string(id) + " is outside the vocabulary [0, " +
             std::to_string(vocab) + ")";
  if (r.max_tokens < 1) return "max_tokens must be at least 1";
  if (n + r.max_tokens > cfg_.max_model_len)
    return "this model's maximum context length is " + std::to_string(cfg_.max_model_len) +
           " tokens; the request has " + std::to_string(n) + " prompt tokens and asks for " +
           std::to_string(r.max_tokens) + " more";
  const int64_t bs = cfg_.scheduler.block_size;
  if ((n + r.max_tokens + bs - 1) / bs > cfg_.num_blocks)
    return "the request needs " + std::to_string((n + r.max_tokens + bs - 1) / bs) +
           " KV blocks but the cache has " + std::to_string(cfg_.num_blocks) +
           " (raise --kv-cache-memory or lower max_tokens)";
  if (auto e = validate_sampling(r.sampling, vocab)) return e->message;
  return std::nullopt;
}

uint64_t Engine::submit(EngineRequest r) {
  if (auto problem = check(r)) throw UserError(*problem);
  auto live = std::make_unique<Live>();
  live->prompt_len = int64_t(r.prompt.size());
  live->limit = live->prompt_len + r.max_tokens;
  live->sched.seq.tokens = r.prompt;
  live->arrival = Clock::now();
  live->req = std::move(r);
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) throw UserError("the engine is shutting down");
    id = next_id_++;
    live->sched.id = id;
    live->sampler = std::make_unique<Sampler>(live->req.sampling, cfg_.seed + id);
    alive_ += 1;
    inbox_.push_back(std::move(live));
  }
  wake_.notify_one();
  return id;
}

void Engine::abort(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborts_.push_back(id);
  }
  wake_.notify_one();
}

void Engine::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void Engine::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  take_inbox();
  while (!live_.empty()) finish(*live_.begin()->second, FinishReason::Abort);
  publish_state();
  if (comm_ && comm_->world().size > 1 && !workers_released_) send_shutdown(*comm_);
  workers_released_ = true;
}

void Engine::take_inbox() {
  std::vector<std::unique_ptr<Live>> incoming;
  std::vector<uint64_t> aborts;
  {
    std::lock_guard<std::mutex> lock(mu_);
    incoming.swap(inbox_);
    aborts.swap(aborts_);
  }
  for (auto& live : incoming) {
    Live& l = *live;
    live_[l.sched.id] = std::move(live);
    scheduler_.add(&l.sched);
  }
  for (uint64_t id : aborts) {
    auto it = live_.find(id);
    if (it != live_.end()) finish(*it->second, FinishReason::Abort);
  }
}

void Engine::finish(Live& live, FinishReason reason, const std::string& error) {
  scheduler_.remove(&live.sched);  // frees its blocks
  FinishEvent ev{reason, live.prompt_len, int64_t(live.sched.seq.tokens.size()) - live.prompt_len,
                 error};
  metrics_.request_finished(finish_reason_name(reason));
  metrics_.add_tokens(live.prompt_len, ev.completion_tokens);
  const uint64_t id = live.sched.id;
  auto on_finish = std::move(live.req.on_finish);
  live_.erase(id);  // `live` is gone from here on
  alive_ -= 1;
  if (on_finish) on_finish(ev);
}

// Appends a sampled token; emits it unless it is a stop token; returns true when finished.
bool Engine::emit_token(Live& live, const SampledToken& tok) {
  const auto now = Clock::now();
  if (live.output.empty())
    metrics_.time_to_first_token(std::chrono::duration<double>(now - live.arrival).count());
  else
    metrics_.inter_token_latency(std::chrono::duration<double>(now - live.last_token).count());
  live.last_token = now;
  live.output.push_back(tok.id);
  live.sched.seq.tokens.push_back(tok.id);
  const EngineRequest& r = live.req;
  if (r.cancelled && r.cancelled()) {
    finish(live, FinishReason::Abort);
    return true;
  }
  const bool eos = !r.ignore_eos && model_.config().is_eos(tok.id);
  bool stop = eos;
  for (int32_t s : r.stop_token_ids) stop = stop || s == tok.id;
  if (!stop && r.on_token && r.on_token(tok)) stop = true;
  if (stop) { finish(live, FinishReason::Stop); return true; }
  if (int64_t(live.sched.seq.tokens.size()) >= std::min(live.limit, cfg_.max_model_len)) {
    finish(live, FinishReason::Length);
    return true;
  }
  return false;
}

bool Engine::step() {
  take_inbox();
  SchedulerStep plan = scheduler_.schedule();
  preemptions_ += plan.num_preempted;
  if (plan.entries.empty()) {
    publish_state();  // aborts may have freed blocks without a step
    return false;
  }
  std::vector<float> logits;
  try {
    if (comm_ && comm_->world().size > 1) send_step(*comm_, plan.batch);
    logits = model_.forward(plan.batch, kv_);
  } catch (const std::exception& e) {
    // Under tensor parallel the other ranks are inside the same collectives: end the job.
    if (comm_ && comm_->world().size > 1) throw;
    std::fprintf(stderr, "tessera: step failed: %s\n", e.what());
    for (const StepPlanEntry& en : plan.entries)
      finish(*live_.at(en.seq->id), FinishReason::Error, e.what());
    return true;
  }
  Scheduler::commit(plan);
  const int64_t vocab = model_.config().vocab_size;
  std::vector<Live*> rows;  // logits row i samples for rows[i]
  std::vector<SampleJob> jobs;
  for (const StepPlanEntry& en : plan.entries) {
    if (!en.samples) continue;
    Live& live = *live_.at(en.seq->id);
    jobs.push_back({live.sampler.get(), logits.data() + int64_t(rows.size()) * vocab,
                    &live.req.prompt, &live.output});
    rows.push_back(&live);
  }
  const std::vector<SampledToken> tokens = sample_rows(jobs, vocab);  // rows in parallel
  for (size_t i = 0; i < rows.size(); ++i) emit_token(*rows[i], tokens[i]);
  publish_state();
  return true;
}

void Engine::publish_state() {
  blocks_used_ = blocks_.num_total() - blocks_.num_free();
  metrics_.set_state(scheduler_.num_running(), scheduler_.num_waiting(), blocks_used_.load(),
                     blocks_.num_total(), preemptions_.load());
}

void Engine::loop() {
  model_.backend().bind_thread();
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] {
        return stopping_ || !inbox_.empty() || !aborts_.empty() || !scheduler_.idle();
      });
      if (stopping_) break;
    }
    if (!step()) {  // alive requests that cannot run yet: do not spin
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait_for(lock, std::chrono::milliseconds(1));
    }
  }
}

void Engine::run_until_idle() {
  for (;;) {
    take_inbox();
    if (scheduler_.idle()) break;
    step();
  }
  publish_state();
}

void run_worker_loop(Model& model, int64_t num_blocks, int64_t block_size, Comm& comm) {
  KvCache kv(model.backend(), model.kv_shape(num_blocks, block_size));
  while (std::optional<Batch> b = receive_step(comm)) model.forward(*b, kv);
}

}  // namespace tessera
