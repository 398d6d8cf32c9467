// Sampler: greedy, seeding, top-k / top-p / min-p, temperature against softmax, penalties
// against their formulas (tiny vocabularies where the greedy choice flips exactly at the
// formula's value), logit bias, raw logprobs against log_softmax, validation messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "kernels/sampling.h"
#include "runtime/sampler.h"

namespace tessera::test {
namespace {

std::vector<float> random_logits(int64_t vocab, uint32_t seed, float sd = 2.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> l(static_cast<size_t>(vocab));
  for (auto& x : l) x = nd(rng);
  return l;
}

RequestSampling greedy() {
  RequestSampling p;
  p.temperature = 0.0f;
  return p;
}

// One greedy pick from a fresh sampler.
int32_t pick(const RequestSampling& p, const std::vector<float>& l,
             const std::vector<int32_t>& prompt = {}, const std::vector<int32_t>& output = {}) {
  Sampler s(p, 0);
  return s.sample(l.data(), int64_t(l.size()), prompt, output).id;
}

std::vector<int32_t> draws(Sampler& s, const std::vector<float>& l, int n) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back(s.sample(l.data(), int64_t(l.size()), {}, {}).id);
  return ids;
}

std::vector<int> histogram(Sampler& s, const std::vector<float>& l, int n) {
  std::vector<int> count(l.size(), 0);
  for (int32_t id : draws(s, l, n)) ++count[size_t(id)];
  return count;
}

std::vector<double> softmax_ref(const std::vector<float>& l, double T) {
  double mx = -INFINITY, sum = 0.0;
  for (float x : l) mx = std::max(mx, double(x));
  std::vector<double> p;
  for (float x : l) { p.push_back(std::exp((x - mx) / T)); sum += p.back(); }
  for (double& x : p) x /= sum;
  return p;
}

double chi_square(const std::vector<int>& count, const std::vector<double>& p, int n) {
  double chi2 = 0.0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double e = n * p[i];
    chi2 += (count[i] - e) * (count[i] - e) / e;
  }
  return chi2;
}

// Draws on flat logits (a real draw would wander) that must all be the argmax.
void expect_always_argmax(RequestSampling p) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    const auto l = random_logits(500, seed, 0.3f);
    p.seed = seed;
    Sampler s(p, 0);
    for (int32_t id : draws(s, l, 20)) EXPECT_EQ(id, argmax_cpu(l.data(), 500));
  }
}

// Ids by logit, descending (ties: lower id first).
std::vector<int32_t> rank_order(const std::vector<float>& l) {
  std::vector<int32_t> order(l.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
  return order;
}

}  // namespace

TEST(Sampler, GreedyIsArgmaxFirstOnTies) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    const auto l = random_logits(1000, seed);
    EXPECT_EQ(pick(greedy(), l), argmax_cpu(l.data(), 1000));
  }
  EXPECT_EQ(pick(greedy(), {0.5f, 3.0f, -1.0f, 3.0f}), 1);
  RequestSampling tiny;  // a temperature below vLLM's epsilon is greedy, not a division by ~0
  tiny.temperature = 1e-6f;
  EXPECT_EQ(pick(tiny, {0.5f, 3.0f, -1.0f, 3.0f}), 1);
}

TEST(Sampler, SameSeedSameDrawsDifferentSeedsDiffer) {
  const std::vector<float> flat(50, 0.0f);
  RequestSampling p;
  p.seed = 42;
  Sampler a(p, 1), b(p, 2);  // an explicit seed wins over the fallback
  const auto da = draws(a, flat, 200);
  EXPECT_EQ(da, draws(b, flat, 200));
  p.seed = 43;
  Sampler c(p, 1);
  EXPECT_NE(da, draws(c, flat, 200));
  // Without a seed the fallback seeds the RNG.
  RequestSampling unseeded;
  Sampler d(unseeded, 42), e(unseeded, 7);
  const auto dd = draws(d, flat, 200);
  EXPECT_EQ(dd, da);
  EXPECT_NE(dd, draws(e, flat, 200));
  EXPECT_GT(std::set<int32_t>(da.begin(), da.end()).size(), 30u);  // the draws do vary
}

// The draw has sample_cpu's semantics (candidate order, nucleus, use of u) without its sort:
// plain temperature / top-k / top-p with seed S draws what generate() draws with seed S.
TEST(Sampler, PlainParamsMatchSampleCpuWithTheSameRng) {
  const SamplingParams configs[] = {
      {0.8f, 0.9f, 40}, {1.0f, 1.0f, 0}, {1.3f, 0.8f, 0}, {0.5f, 1.0f, 1000},
      {2.0f, 0.95f, 0}, {0.7f, 0.3f, 5}, {1.0f, 1e-6f, 0}, {1.0f, 1.0f, 2}};
  for (int64_t vocab : {7, 300, 4096, 1000}) {
    auto l = random_logits(vocab, uint32_t(vocab), 2.5f);
    if (vocab == 1000) {  // many ties, both signs and both zeros: the rank order's tie-break
      const float values[] = {-1.0f, -0.0f, 0.0f, 0.5f, 2.0f};
      for (size_t i = 0; i < l.size(); ++i) l[i] = values[i * 7 % 5];
    }
    for (const SamplingParams& sp : configs) {
      RequestSampling p;
      p.temperature = sp.temperature;
      p.top_p = sp.top_p;
      p.top_k = sp.top_k;
      p.seed = 7;
      Sampler s(p, 0);
      std::mt19937_64 rng(7);
      std::uniform_real_distribution<double> uniform(0.0, 1.0);
      for (int i = 0; i < 200; ++i) {
        const int32_t id = s.sample(l.data(), vocab, {}, {}).id;
        ASSERT_EQ(id, sample_cpu(l.data(), vocab, sp, uniform(rng)))
            << "vocab " << vocab << " T " << sp.temperature << " top_p " << sp.top_p
            << " top_k " << sp.top_k << " draw " << i;
      }
    }
  }
}

TEST(Sampler, TopK1IsGreedy) {
  RequestSampling p;
  p.temperature = 1.5f;
  p.top_k = 1;
  expect_always_argmax(p);
}

TEST(Sampler, TinyTopPIsArgmax) {
  RequestSampling p;
  p.top_p = 1e-6f;
  expect_always_argmax(p);
}

TEST(Sampler, TopKRestrictsTheSupport) {
  const auto l = random_logits(200, 4);
  const auto order = rank_order(l);
  RequestSampling p;
  p.temperature = 2.0f;  // flat enough that all of the top 3 are drawn
  p.top_k = 3;
  p.seed = 3;
  Sampler s(p, 0);
  const auto ids = draws(s, l, 3000);
  EXPECT_EQ(std::set<int32_t>(ids.begin(), ids.end()),
            std::set<int32_t>(order.begin(), order.begin() + 3));
}

TEST(Sampler, MinPNeverPicksFilteredTokens) {
  // Probabilities at T = 1; min_p 0.1 keeps p >= 0.03: ids 0..4 (ids 5..8 hold 10% of the mass).
  const std::vector<double> prob = {0.30, 0.25, 0.20, 0.10, 0.05, 0.025, 0.025, 0.025, 0.025};
  std::vector<float> l;
  for (double q : prob) l.push_back(float(std::log(q)));
  RequestSampling p;
  p.min_p = 0.1f;
  p.seed = 11;
  Sampler s(p, 0);
  const int n = 20000;
  const auto count = histogram(s, l, n);
  for (size_t i = 0; i < 5; ++i) EXPECT_GT(count[i], 0) << "kept id " << i << " never drawn";
  for (size_t i = 5; i < 9; ++i) EXPECT_EQ(count[i], 0) << "filtered id " << i << " drawn";
  // The kept tokens are renormalised, not otherwise changed: 4 degrees of freedom.
  std::vector<double> kept(prob.begin(), prob.begin() + 5);
  for (double& q : kept) q /= 0.9;
  EXPECT_LT(chi_square({count.begin(), count.begin() + 5}, kept, n), 25.0);
  // min_p is applied after temperature: at T = 2 the ratio 0.025/0.30 becomes its square
  // root (0.29 >= 0.1), so ids 5..8 come back.
  p.temperature = 2.0f;
  Sampler hot(p, 0);
  const auto hot_count = histogram(hot, l, n);
  for (size_t i = 5; i < 9; ++i) EXPECT_GT(hot_count[i], 0) << "id " << i << " at T=2";
}

TEST(Sampler, TemperatureDistributionMatchesSoftmax) {
  const std::vector<float> l = {0.2f, 1.5f, -0.7f, 1.1f, 0.0f, -2.0f, 0.9f, -0.3f};
  const int n = 40000;
  for (float T : {0.6f, 1.0f, 1.7f}) {
    RequestSampling p;
    p.temperature = T;
    p.seed = 99;
    Sampler s(p, 0);
    const auto count = histogram(s, l, n);
    // 7 degrees of freedom: P(chi2 > 30) ~ 1e-4; a wrong temperature gives hundreds.
    EXPECT_LT(chi_square(count, softmax_ref(l, T), n), 30.0) << "T=" << T;
    const double wrong_T = T == 1.0f ? 1.5 : 1.0;
    EXPECT_GT(chi_square(count, softmax_ref(l, wrong_T), n), 200.0) << "T=" << T;
  }
}

// logit > 0 ? logit / p : logit * p, checked by a competitor just above / below the result.
TEST(Sampler, RepetitionPenaltyFollowsTheFormula) {
  RequestSampling p = greedy();
  p.repetition_penalty = 2.0f;
  // Positive logit in the prompt: 2.0 -> 1.0.
  EXPECT_EQ(pick(p, {2.0f, 0.999f, -3.0f, -3.0f}, {0}), 0);
  EXPECT_EQ(pick(p, {2.0f, 1.001f, -3.0f, -3.0f}, {0}), 1);
  // Negative logit in the output: -1.0 -> -2.0 (dividing would give -0.5).
  EXPECT_EQ(pick(p, {-1.0f, -2.001f, -3.0f, -3.0f}, {}, {0}), 0);
  EXPECT_EQ(pick(p, {-1.0f, -1.999f, -3.0f, -3.0f}, {}, {0}), 1);
  // Not in the sequence: untouched.
  EXPECT_EQ(pick(p, {2.0f, 1.5f, -3.0f, -3.0f}, {2, 3}, {3}), 0);
  // A penalty below 1 rewards: 2.0 -> 4.0 and -1.0 -> -0.5.
  p.repetition_penalty = 0.5f;
  EXPECT_EQ(pick(p, {2.0f, 3.999f, -3.0f, -3.0f}, {0}), 0);
  EXPECT_EQ(pick(p, {2.0f, 4.001f, -3.0f, -3.0f}, {0}), 1);
  EXPECT_EQ(pick(p, {-1.0f, -0.501f, -3.0f, -3.0f}, {}, {0}), 0);
  EXPECT_EQ(pick(p, {-1.0f, -0.499f, -3.0f, -3.0f}, {}, {0}), 1);
  // Once per distinct token: id 0 five times in prompt + output, 2.0 -> 1.0 (not 0.5).
  p.repetition_penalty = 2.0f;
  EXPECT_EQ(pick(p, {2.0f, 0.75f, -3.0f, -3.0f}, {0, 0, 0}, {0, 0}), 0);
}

TEST(Sampler, PresenceAndFrequencyCountOnlyOutputTokens) {
  const std::vector<float> l = {1.0f, 0.9f, 0.0f, 0.0f};
  RequestSampling presence = greedy();
  presence.presence_penalty = 0.5f;
  EXPECT_EQ(pick(presence, l, {0, 0, 0}, {}), 0);  // the prompt does not count
  EXPECT_EQ(pick(presence, l, {}, {2, 3}), 0);
  EXPECT_EQ(pick(presence, l, {}, {0}), 1);        // 1.0 - 0.5
  EXPECT_EQ(pick(presence, l, {}, {0, 0, 0}), 1);  // presence does not grow with the count
  presence.presence_penalty = -0.5f;               // negative: a reward
  EXPECT_EQ(pick(presence, {1.0f, 0.6f}, {}, {1}), 1);

  RequestSampling freq = greedy();
  freq.frequency_penalty = 0.04f;
  EXPECT_EQ(pick(freq, l, std::vector<int32_t>(10, 0), {}), 0);
  // One sampler over a growing output: the counts update incrementally.
  Sampler s(freq, 0);
  std::vector<int32_t> out = {0, 0};
  EXPECT_EQ(s.sample(l.data(), 4, {5}, out).id, 0);  // 1.0 - 2 * 0.04 = 0.92 > 0.9
  out.push_back(0);
  EXPECT_EQ(s.sample(l.data(), 4, {5}, out).id, 1);  // 0.88 < 0.9
  out.push_back(1);
  EXPECT_EQ(s.sample(l.data(), 4, {5}, out).id, 0);  // 0.88 vs 0.9 - 0.04 = 0.86
  // Both: 1.0 - 2 * 0.1 - 0.3 = 0.5.
  freq.frequency_penalty = 0.1f;
  freq.presence_penalty = 0.3f;
  EXPECT_EQ(pick(freq, {1.0f, 0.49f}, {}, {0, 0}), 0);
  EXPECT_EQ(pick(freq, {1.0f, 0.51f}, {}, {0, 0}), 1);
}

TEST(Sampler, PenaltyCountsStartOverWhenTheSequenceDoes) {
  RequestSampling p = greedy();
  p.presence_penalty = 0.5f;
  p.repetition_penalty = 1.5f;
  const std::vector<float> l = {1.0f, 0.9f};
  Sampler s(p, 0);
  EXPECT_EQ(s.sample(l.data(), 2, {1}, {0, 0}).id, 1);
  EXPECT_EQ(s.sample(l.data(), 2, {1}, {}).id, 0);  // shorter output: recounted
  const std::vector<float> l2 = {0.8f, 0.9f};  // other prompt: id 1 no longer penalised
  EXPECT_EQ(s.sample(l2.data(), 2, {}, {}).id, 1);
}

TEST(Sampler, LogitBiasBansAndForces) {
  const auto l = random_logits(100, 3, 1.5f);
  const auto order = rank_order(l);
  const int32_t top = order[0], bottom = order.back();
  RequestSampling ban = greedy();
  ban.logit_bias = {{top, -100.0f}};
  EXPECT_EQ(pick(ban, l), order[1]);
  ban.temperature = 1.0f;
  ban.seed = 5;
  Sampler banned(ban, 0);
  for (int32_t id : draws(banned, l, 3000)) ASSERT_NE(id, top);
  ban.temperature = 2.0f;
  ban.logit_bias = {{bottom, 100.0f}};
  Sampler forced(ban, 0);
  for (int32_t id : draws(forced, l, 3000)) ASSERT_EQ(id, bottom);
}

TEST(Sampler, LogprobsAreTheRawLogSoftmax) {
  for (int64_t vocab : {1000, 152064}) {
    const auto l = random_logits(vocab, 8, 3.0f);
    // Reference log_softmax in double.
    double mx = -INFINITY, sum = 0.0;
    for (float x : l) mx = std::max(mx, double(x));
    for (float x : l) sum += std::exp(x - mx);
    std::vector<double> ref;
    for (float x : l) ref.push_back(x - mx - std::log(sum));
    const auto order = rank_order(l);

    RequestSampling p;  // processing that changes the draw but never the reported logprobs
    p.temperature = 0.7f;
    p.top_k = 50;
    p.repetition_penalty = 1.3f;
    p.logit_bias = {{order[3], 5.0f}};
    p.logprobs = 5;
    p.seed = 1;
    Sampler s(p, 0);
    for (int step = 0; step < 5; ++step) {
      const SampledToken t = s.sample(l.data(), vocab, {order[0]}, {});
      EXPECT_NEAR(t.logprob, ref[size_t(t.id)], 1e-5);
      ASSERT_EQ(t.top.size(), 5u);
      for (size_t i = 0; i < 5; ++i) {
        EXPECT_EQ(t.top[i].id, order[i]);
        EXPECT_NEAR(t.top[i].logprob, ref[size_t(order[i])], 1e-5);
      }
      EXPECT_TRUE(std::is_sorted(t.top.begin(), t.top.end(),
                                 [](auto& a, auto& b) { return a.logprob > b.logprob; }));
    }
  }
  const std::vector<float> small = {0.1f, 0.4f, -0.2f};
  RequestSampling p = greedy();
  EXPECT_TRUE(Sampler(p, 0).sample(small.data(), 3, {}, {}).top.empty());  // -1: none
  p.logprobs = 0;  // the chosen token only
  const SampledToken zero = Sampler(p, 0).sample(small.data(), 3, {}, {});
  EXPECT_TRUE(zero.top.empty() && zero.id == 1);
  EXPECT_NEAR(zero.logprob, std::log(softmax_ref(small, 1.0)[1]), 1e-6);
  p.logprobs = 20;  // more than the vocabulary: all of it
  EXPECT_EQ(Sampler(p, 0).sample(small.data(), 3, {}, {}).top.size(), 3u);
  // Ties in the top list: the lower id first (as argmax).
  std::vector<float> tied(64, 0.0f);
  for (size_t i = 0; i < tied.size(); i += 3) tied[i] = 1.0f;
  p.logprobs = 4;
  const SampledToken t = Sampler(p, 0).sample(tied.data(), 64, {}, {});
  ASSERT_EQ(t.top.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(t.top[i].id, int32_t(3 * i));
}

TEST(SamplerValidation, AcceptsTheEdgesOfEachRange) {
  EXPECT_FALSE(validate_sampling(RequestSampling{}, 10));
  RequestSampling lo, hi;
  lo.temperature = 0.0f, hi.temperature = 2.0f;
  lo.top_p = 1e-6f, hi.top_p = 1.0f;
  lo.top_k = -1, hi.top_k = 1000000;
  lo.min_p = 0.0f, hi.min_p = 1.0f;
  lo.repetition_penalty = 1e-3f, hi.repetition_penalty = 2.0f;
  lo.presence_penalty = -2.0f, hi.presence_penalty = 2.0f;
  lo.frequency_penalty = -2.0f, hi.frequency_penalty = 2.0f;
  lo.logprobs = 0, hi.logprobs = 20;
  lo.logit_bias = {{0, -100.0f}}, hi.logit_bias = {{9, 100.0f}};
  EXPECT_FALSE(validate_sampling(lo, 10) || validate_sampling(hi, 10));
}

TEST(SamplerValidation, NamesEachBadField) {
  struct Case {
    std::function<void(RequestSampling&)> set;
    std::string param, says;
  };
  const std::vector<Case> cases = {
      {[](auto& p) { p.temperature = 2.5f; }, "temperature", "[0, 2]"},
      {[](auto& p) { p.temperature = NAN; }, "temperature", "[0, 2]"},
      {[](auto& p) { p.top_p = 0.0f; }, "top_p", "(0, 1]"},
      {[](auto& p) { p.top_p = 1.5f; }, "top_p", "(0, 1]"},
      {[](auto& p) { p.top_k = -2; }, "top_k", "-1"},
      {[](auto& p) { p.min_p = 1.1f; }, "min_p", "[0, 1]"},
      {[](auto& p) { p.repetition_penalty = 0.0f; }, "repetition_penalty", "(0, 2]"},
      {[](auto& p) { p.repetition_penalty = 2.5f; }, "repetition_penalty", "(0, 2]"},
      {[](auto& p) { p.presence_penalty = -2.1f; }, "presence_penalty", "[-2, 2]"},
      {[](auto& p) { p.frequency_penalty = 2.1f; }, "frequency_penalty", "[-2, 2]"},
      {[](auto& p) { p.logprobs = 21; }, "logprobs", "[0, 20]"},
      {[](auto& p) { p.logprobs = -2; }, "logprobs", "[0, 20]"},
      {[](auto& p) { p.logit_bias = {{1, 101.0f}}; }, "logit_bias", "[-100, 100]"},
      {[](auto& p) { p.logit_bias = {{1, -100.5f}}; }, "logit_bias", "[-100, 100]"},
      {[](auto& p) { p.logit_bias = {{10, 1.0f}}; }, "logit_bias", "outside the vocabulary [0, 10)"},
      {[](auto& p) { p.logit_bias = {{-1, 1.0f}}; }, "logit_bias", "token id -1"},
  };
  for (const Case& c : cases) {
    RequestSampling p;
    c.set(p);
    const auto err = validate_sampling(p, 10);
    ASSERT_TRUE(err) << c.param << " / " << c.says;
    EXPECT_EQ(err->param, c.param) << err->message;
    EXPECT_TRUE(err->message.find(c.param) != std::string::npos &&
                err->message.find(c.says) != std::string::npos) << err->message;
  }
}

}  // namespace tessera::test
