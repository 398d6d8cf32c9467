// Per-request sampling for the serving engine, with vLLM (V1) semantics: logit bias,
// repetition / presence / frequency penalties, temperature, min-p, top-k, top-p, a seeded
// per-request RNG, and OpenAI-style logprobs. The draw has kernels/sampling's sample_cpu
// semantics (same candidate order, same use of u), so a request with only temperature /
// top-k / top-p and seed S draws what `tessera generate --seed S` draws (up to rounding:
// with AVX-512 the weights come from glibc's vector exp, within 3 ulp of std::exp); but it
// runs in O(vocab) expected time instead of sample_cpu's full sort (32 ms -> 0.7-1.8 ms at
// 152k vocab, one core of this project's machine: bench/sampler_bench).
#pragma once
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace tessera {

struct RequestSampling {
  float temperature = 1.0f;        // 0: greedy (below 1e-5 counts as 0, as in vLLM)
  float top_p = 1.0f;              // (0, 1]
  int64_t top_k = 0;               // 0 or -1: no limit
  float min_p = 0.0f;              // [0, 1]: drop tokens with prob < min_p * max prob
  std::optional<uint64_t> seed;    // reproducible per request when set
  float repetition_penalty = 1.0f; // > 0; tokens in prompt AND output: logit>0 ? logit/p : logit*p
  float presence_penalty = 0.0f;   // [-2, 2]; output tokens only: logit -= presence * (count > 0)
  float frequency_penalty = 0.0f;  // [-2, 2]; output tokens only: logit -= frequency * count
  std::vector<std::pair<int32_t, float>> logit_bias;  // added to the logits first
  int32_t logprobs = -1;           // -1: none; 0..20: chosen token's logprob + this many top alternatives
};

struct TokenLogprob {
  int32_t id;
  float logprob;
};

struct SampledToken {
  int32_t id = 0;
  float logprob = 0.0f;           // filled when logprobs >= 0
  std::vector<TokenLogprob> top;  // `logprobs` entries (fewer when vocab is smaller), most likely first
};

// One request's sampling state (its RNG and the output-token counts the penalties need).
// Not thread-safe; one per sequence.
class Sampler {
 public:
  Sampler(const RequestSampling& params, uint64_t fallback_seed);  // fallback used when params.seed is empty
  // logits: F32 [vocab] of the model (not modified). prompt / output: the sequence so far.
  // The sequence is expected to only grow between calls (the counts are updated from the
  // new tail); a different prompt length or a shorter output makes the sampler recount.
  SampledToken sample(const float* logits, int64_t vocab, const std::vector<int32_t>& prompt,
                      const std::vector<int32_t>& output);

  const RequestSampling& params() const { return p_; }

 private:
  void track(const std::vector<int32_t>& prompt, const std::vector<int32_t>& output);
  void apply_penalties(std::vector<float>& work) const;

  RequestSampling p_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
  bool need_rep_, need_counts_;
  // Penalty bookkeeping, updated incrementally from the output's new tail each step. (The
  // O(vocab) scratch of a step is per thread in sampler.cpp, not here: a sampler lives as
  // long as its request, and 3 MB each at 152k vocab would add up over a full batch.)
  size_t prompt_len_ = SIZE_MAX;  // the prompt length the sets were built for
  size_t counted_ = 0;            // output tokens already counted
  std::unordered_map<int32_t, int32_t> output_counts_;  // presence / frequency
  std::unordered_set<int32_t> seen_;                    // prompt ∪ output (repetition)
};

// One row of a step's logits and the sequence it samples for.
struct SampleJob {
  Sampler* sampler;
  const float* logits;  // [vocab]
  const std::vector<int32_t>* prompt;
  const std::vector<int32_t>* output;
};

// Samples every job's row, rows in parallel over the OpenMP threads (~2 ms a row at 152k
// vocab: a batch of 32 would otherwise spend 64 ms of one core per step). Each sampler has its
// own RNG and counts and each thread its own scratch, so the tokens do not depend on the
// thread count. An error in any row is rethrown after all rows ran.
std::vector<SampledToken> sample_rows(const std::vector<SampleJob>& jobs, int64_t vocab);

// Validates ranges against OpenAI's (and vLLM's) limits. `param` names the request field.
struct SamplingError {
  std::string param, message;
};
std::optional<SamplingError> validate_sampling(const RequestSampling& p, int64_t vocab);

}  // namespace tessera
