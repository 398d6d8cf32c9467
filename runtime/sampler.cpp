#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <sstream>
#include <stdexcept>

#include "kernels/matmul.h"          // simd_kernels
#include "kernels/sampling.h"        // argmax_cpu
#include "kernels/vector_avx512.h"   // VectorSimd::softmax_weights

namespace tessera {

namespace {

// vLLM's _SAMPLING_EPS: a temperature this small is greedy (dividing by it would overflow).
constexpr float kGreedyTemperature = 1e-5f;

bool is_greedy(const RequestSampling& p) {
  return !(p.temperature >= kGreedyTemperature) || p.top_k == 1;
}

}  // namespace

Sampler::Sampler(const RequestSampling& params, uint64_t fallback_seed)
    : p_(params),
      rng_(params.seed.value_or(fallback_seed)),
      need_rep_(params.repetition_penalty != 1.0f),
      need_counts_(params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f) {}

// Brings the penalty bookkeeping up to date in O(new tokens): the engine calls once per
// step with an output that grew by one, so the whole output is never rescanned.
void Sampler::track(const std::vector<int32_t>& prompt, const std::vector<int32_t>& output) {
  if (!need_rep_ && !need_counts_) return;
  if (prompt.size() != prompt_len_ || output.size() < counted_) {
    output_counts_.clear();
    seen_.clear();
    counted_ = 0;
    prompt_len_ = prompt.size();
    if (need_rep_) seen_.insert(prompt.begin(), prompt.end());
  }
  for (; counted_ < output.size(); ++counted_) {
    const int32_t id = output[counted_];
    if (need_counts_) ++output_counts_[id];
    if (need_rep_) seen_.insert(id);
  }
}

// vLLM V1 apply_penalties order: repetition (prompt and output, once per distinct token),
// then frequency, then presence (output only). Cost: O(distinct tokens), not O(vocab).
void Sampler::apply_penalties(std::vector<float>& work) const {
  const int64_t vocab = int64_t(work.size());
  auto in_vocab = [vocab](int32_t id) { return id >= 0 && id < vocab; };
  if (need_rep_) {
    const float rp = p_.repetition_penalty;
    for (int32_t id : seen_) {
      if (!in_vocab(id)) continue;
      float& l = work[size_t(id)];
      l = l > 0.0f ? l / rp : l * rp;
    }
  }
  if (need_counts_) {
    for (const auto& [id, count] : output_counts_) {
      if (!in_vocab(id) || count <= 0) continue;
      float& l = work[size_t(id)];
      l -= p_.frequency_penalty * float(count);
      l -= p_.presence_penalty;
    }
  }
}

namespace {

// Candidate rank order, as in sample_cpu: the larger logit first, the lower id on ties.
// Packed into one integer key (ascending key = rank order) so that selection compares
// plain integers instead of chasing ids into the logits: about 3x faster at 152k vocab.
uint64_t rank_key(float logit, int32_t id) {
  const float normal = logit + 0.0f;  // -0 becomes +0: they compare equal as floats
  uint32_t bits;
  std::memcpy(&bits, &normal, sizeof bits);
  // Branch-free float -> uint32 that orders like the float: negatives flip every bit,
  // non-negatives only the sign bit (a branch here mispredicts on half the vocabulary).
  const uint32_t ascending = bits ^ (uint32_t(int32_t(bits) >> 31) | 0x80000000u);
  return uint64_t(~ascending) << 32 | uint32_t(id);
}
int32_t key_id(uint64_t key) { return int32_t(uint32_t(key)); }

void fill_keys(const float* logits, int64_t vocab, std::vector<uint64_t>& keys) {
  keys.resize(size_t(vocab));
  for (int64_t i = 0; i < vocab; ++i) keys[size_t(i)] = rank_key(logits[i], int32_t(i));
}

// Per-thread O(vocab) scratch of one step, reused across steps and requests.
struct Scratch {
  std::vector<float> work;      // [vocab] the processed logits
  std::vector<uint64_t> keys;   // [vocab] rank keys of the candidates
  std::vector<double> weight;   // [vocab] by id: exp((l - max) / T) of the candidates
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// Weighted quickselect over the candidates keys[lo, hi): the position of the first one,
// in rank order, at which the running weight sum passes `target` (sum > target, or >= when
// inclusive), without sorting. On return keys[lo, p) are exactly the candidates ranked
// before it and `before` is their weight. Expected O(hi - lo): each round partitions around
// a rank and keeps the side the crossing is in. The first round splits off the top 256:
// an LLM's distribution is peaked, so the crossing is usually there and the rest of the
// vocabulary is partitioned once, not log(vocab) times. Sums are taken per block instead
// of one by one, which can move a boundary only by rounding (~1e-16 relative).
size_t select_by_mass(Scratch& s, size_t lo, size_t hi, double target, bool inclusive,
                      double& before) {
  auto reached = [&](double cum) { return inclusive ? cum >= target : target < cum; };
  before = 0.0;
  for (size_t split = 256; hi - lo > 1; split = SIZE_MAX) {
    const size_t mid = lo + std::min(split, (hi - lo) / 2);
    std::nth_element(s.keys.begin() + lo, s.keys.begin() + mid, s.keys.begin() + hi);
    double block = 0.0;
    for (size_t i = lo; i < mid; ++i) block += s.weight[size_t(key_id(s.keys[i]))];
    if (reached(before + block)) {
      hi = mid;
      continue;
    }
    before += block;
    const double w = s.weight[size_t(key_id(s.keys[mid]))];
    if (reached(before + w) || mid + 1 == hi) return mid;  // the last one also takes u ~ 1
    before += w;
    lo = mid + 1;
  }
  return lo;
}

// Among the candidates keys[0, k) (weights in s.weight, `total` their sum): top-p, then u.
int32_t pick(const RequestSampling& p, Scratch& s, size_t k, double total, double u) {
  // Nucleus: the shortest rank prefix whose probability reaches top_p.
  size_t keep = k;
  double kept = total, before = 0.0;
  if (p.top_p < 1.0f) {
    const size_t last = select_by_mass(s, 0, k, double(p.top_p) * total, true, before);
    keep = last + 1;
    kept = before + s.weight[size_t(key_id(s.keys[last]))];
  }
  return key_id(s.keys[select_by_mass(s, 0, keep, u * kept, false, before)]);
}

// Weight (relative to the most likely token's 1) from which a token is "likely": the likely
// tokens rank above all others, so when their mass reaches what top-p (or, without it, the
// draw) needs, the answer lies among them and the other ~vocab tokens need no rank keys nor
// selection. An LLM's distribution is peaked: usually a few dozen tokens are likely.
constexpr double kLikely = 1e-6;

// The random draw from s.work: temperature, min-p, top-k, top-p, then u.
// Min-p comes before top-k / top-p as in vLLM V1 (its min-p is an argmax-invariant logits
// processor applied right after temperature); vLLM V0 and Hugging Face apply it after
// them, which differs only when top_p < 1 as well.
int32_t draw(const RequestSampling& p, Scratch& s, double u) {
  const int64_t vocab = int64_t(s.work.size());
  const double T = p.temperature;
  const double mx = *std::max_element(s.work.begin(), s.work.end());
  int64_t k = p.top_k > 0 ? std::min(p.top_k, vocab) : vocab;
  if (p.min_p > 0.0f) {
    // prob_i < min_p * max_prob  <=>  (l_i - l_max) / T < log(min_p). The kept tokens are
    // exactly the highest logits (ties fall on the same side), so min-p is a top-k of
    // their count, and a filtered token is never a candidate, not even at u ~ 1.
    const double log_min_p = std::log(double(p.min_p));
    int64_t kept = 0;
    for (float l : s.work) kept += (double(l) - mx) / T >= log_min_p;
    k = std::min(k, std::max<int64_t>(kept, 1));
  }
  // Softmax weights of the candidates at this temperature (double: stable sums).
  s.weight.resize(size_t(vocab));
  double total = 0.0;
  if (k == vocab) {  // every token a candidate: all weights, then the likely ones first
    if (const VectorSimd* simd = simd_kernels(kVectorAvx512, kVectorAvx2)) {
      total = simd->softmax_weights(s.work.data(), vocab, mx, T, s.weight.data());
    } else {
      for (int64_t i = 0; i < vocab; ++i)
        total += s.weight[size_t(i)] = std::exp((double(s.work[size_t(i)]) - mx) / T);
    }
    s.keys.clear();
    double likely = 0.0;
    for (int64_t i = 0; i < vocab; ++i) {
      if (s.weight[size_t(i)] < kLikely) continue;
      s.keys.push_back(rank_key(s.work[size_t(i)], int32_t(i)));
      likely += s.weight[size_t(i)];
    }
    if (likely > (p.top_p < 1.0f ? double(p.top_p) : u) * total)
      return pick(p, s, s.keys.size(), total, u);
    fill_keys(s.work.data(), vocab, s.keys);  // the answer lies further down: all tokens
    return pick(p, s, size_t(vocab), total, u);
  }
  fill_keys(s.work.data(), vocab, s.keys);
  std::nth_element(s.keys.begin(), s.keys.begin() + k, s.keys.end());
  for (int64_t i = 0; i < k; ++i) {
    const int32_t id = key_id(s.keys[size_t(i)]);
    s.weight[size_t(id)] = std::exp((double(s.work[size_t(id)]) - mx) / T);
    total += s.weight[size_t(id)];
  }
  return pick(p, s, size_t(k), total, u);
}

// Logprobs are the log_softmax of the model's RAW logits, before bias, penalties,
// temperature and filtering: vLLM V1's default logprobs_mode "raw_logprobs". Computed in
// double so the sum over a large vocabulary does not lose the small terms.
// s.weight is free again by then: it takes the vector exp's output.
void fill_logprobs(int32_t logprobs, const float* logits, int64_t vocab, Scratch& s,
                   SampledToken& out) {
  double mx = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) mx = std::max(mx, double(logits[i]));
  double sum = 0.0;
  if (const VectorSimd* simd = simd_kernels(kVectorAvx512, kVectorAvx2)) {
    s.weight.resize(size_t(vocab));
    sum = simd->softmax_weights(logits, vocab, mx, 1.0, s.weight.data());
  } else {
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - mx);
  }
  const double lse = mx + std::log(sum);
  out.logprob = float(double(logits[out.id]) - lse);
  const int64_t n = std::min<int64_t>(logprobs, vocab);
  out.top.clear();
  if (n <= 0) return;
  // One pass keeping the n best keys sorted: n <= 20, so after the first few hundred
  // tokens an insertion is rare and this costs about one read of the row.
  std::vector<uint64_t> best;
  best.reserve(size_t(n) + 1);
  for (int64_t i = 0; i < vocab; ++i) {
    const uint64_t key = rank_key(logits[i], int32_t(i));
    if (int64_t(best.size()) == n && key >= best.back()) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), key), key);
    if (int64_t(best.size()) > n) best.pop_back();
  }
  out.top.reserve(size_t(n));
  for (uint64_t key : best) {
    const int32_t id = key_id(key);
    out.top.push_back({id, float(double(logits[id]) - lse)});
  }
}

}  // namespace

SampledToken Sampler::sample(const float* logits, int64_t vocab,
                             const std::vector<int32_t>& prompt,
                             const std::vector<int32_t>& output) {
  if (vocab <= 0) throw std::invalid_argument("Sampler::sample: empty vocabulary");
  Scratch& s = scratch();
  s.work.assign(logits, logits + vocab);  // the one O(vocab) copy; the model's row stays raw
  for (const auto& [id, bias] : p_.logit_bias)
    if (id >= 0 && id < vocab) s.work[size_t(id)] += bias;
  track(prompt, output);
  apply_penalties(s.work);

  SampledToken out;
  out.id = is_greedy(p_) ? argmax_cpu(s.work.data(), vocab) : draw(p_, s, uniform_(rng_));
  if (p_.logprobs >= 0) fill_logprobs(p_.logprobs, logits, vocab, s, out);
  return out;
}

std::vector<SampledToken> sample_rows(const std::vector<SampleJob>& jobs, int64_t vocab) {
  std::vector<SampledToken> out(jobs.size());
  std::vector<std::exception_ptr> errors(jobs.size());
  const int64_t n = int64_t(jobs.size());
#pragma omp parallel for schedule(dynamic, 1) if (n > 1)
  for (int64_t i = 0; i < n; ++i) {
    const SampleJob& j = jobs[size_t(i)];
    try {
      out[size_t(i)] = j.sampler->sample(j.logits, vocab, *j.prompt, *j.output);
    } catch (...) {  // an exception must not leave an OpenMP region
      errors[size_t(i)] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

namespace {

std::string num(double x) {
  std::ostringstream s;
  s << x;
  return s.str();
}

// NaN compares false both ways, so it is never inside: a NaN field is rejected.
bool inside(double x, double lo, double hi) { return lo <= x && x <= hi; }

}  // namespace

std::optional<SamplingError> validate_sampling(const RequestSampling& p, int64_t vocab) {
  if (!inside(p.temperature, 0.0, 2.0))
    return SamplingError{"temperature", "temperature must be in [0, 2], got " + num(p.temperature)};
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
    return SamplingError{"top_p", "top_p must be in (0, 1], got " + num(p.top_p)};
  if (p.top_k < -1)
    return SamplingError{"top_k", "top_k must be -1 (no limit) or >= 0, got " + std::to_string(p.top_k)};
  if (!inside(p.min_p, 0.0, 1.0))
    return SamplingError{"min_p", "min_p must be in [0, 1], got " + num(p.min_p)};
  if (!(p.repetition_penalty > 0.0f && p.repetition_penalty <= 2.0f))
    return SamplingError{"repetition_penalty",
                         "repetition_penalty must be in (0, 2], got " + num(p.repetition_penalty)};
  if (!inside(p.presence_penalty, -2.0, 2.0))
    return SamplingError{"presence_penalty",
                         "presence_penalty must be in [-2, 2], got " + num(p.presence_penalty)};
  if (!inside(p.frequency_penalty, -2.0, 2.0))
    return SamplingError{"frequency_penalty",
                         "frequency_penalty must be in [-2, 2], got " + num(p.frequency_penalty)};
  if (p.logprobs != -1 && !(p.logprobs >= 0 && p.logprobs <= 20))
    return SamplingError{"logprobs", "logprobs must be in [0, 20], got " + std::to_string(p.logprobs)};
  for (const auto& [id, bias] : p.logit_bias) {
    if (id < 0 || id >= vocab)
      return SamplingError{"logit_bias", "logit_bias token id " + std::to_string(id) +
                                             " is outside the vocabulary [0, " +
                                             std::to_string(vocab) + ")"};
    if (!inside(bias, -100.0, 100.0))
      return SamplingError{"logit_bias", "logit_bias value for token " + std::to_string(id) +
                                             " must be in [-100, 100], got " + num(bias)};
  }
  return std::nullopt;
}

}  // namespace tessera
