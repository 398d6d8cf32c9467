// The sampler's speed paths. sample_rows: a step's rows sampled in parallel give, for every
// thread count, exactly what each sampler gives called row by row (ids and logprobs, over
// several steps so the RNGs and penalty counts advance), and an error inside the parallel
// loop reaches the caller. The likely-token shortcut (no top-k / min-p): draws equal
// sample_cpu's whether the answer lies among the likely tokens or past them.
#include <gtest/gtest.h>
#include <omp.h>

#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/sampling.h"
#include "runtime/sampler.h"

namespace tessera::test {
namespace {

constexpr int64_t kVocab = 50000;
constexpr int kRows = 12;

RequestSampling params_of(int row) {  // a mix: greedy, nucleus, top-k, min-p, penalties
  RequestSampling p;
  p.temperature = row % 4 == 0 ? 0.0f : 0.6f + 0.1f * float(row % 5);
  p.top_p = row % 3 == 0 ? 0.9f : 1.0f;
  p.top_k = row % 5 == 1 ? 40 : 0;
  p.min_p = row % 6 == 2 ? 0.05f : 0.0f;
  p.repetition_penalty = row % 4 == 3 ? 1.2f : 1.0f;
  p.frequency_penalty = row % 7 == 1 ? 0.4f : 0.0f;
  p.logprobs = row % 2 == 0 ? 3 : -1;
  p.seed = 7 + uint64_t(row);
  return p;
}

TEST(SampleRows, MatchRowByRowForAnyThreadCount) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  const int steps = 4;
  std::vector<float> logits(size_t(steps * kRows * kVocab));
  for (float& x : logits) x = nd(rng);
  std::vector<std::vector<int32_t>> prompt(kRows, std::vector<int32_t>{1, 2, 3, 40, 500});

  // Reference: one sampler per row, called in row order.
  std::vector<Sampler> ref;
  std::vector<std::vector<int32_t>> ref_out(kRows);
  std::vector<std::vector<SampledToken>> want(steps);
  for (int r = 0; r < kRows; ++r) ref.emplace_back(params_of(r), 0);
  for (int t = 0; t < steps; ++t)
    for (int r = 0; r < kRows; ++r) {
      const float* l = logits.data() + (int64_t(t) * kRows + r) * kVocab;
      want[size_t(t)].push_back(ref[size_t(r)].sample(l, kVocab, prompt[size_t(r)],
                                                      ref_out[size_t(r)]));
      ref_out[size_t(r)].push_back(want[size_t(t)].back().id);
    }

  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 5}) {
    omp_set_num_threads(threads);
    std::vector<Sampler> samplers;
    std::vector<std::vector<int32_t>> out(kRows);
    for (int r = 0; r < kRows; ++r) samplers.emplace_back(params_of(r), 0);
    for (int t = 0; t < steps; ++t) {
      std::vector<SampleJob> jobs;
      for (int r = 0; r < kRows; ++r)
        jobs.push_back({&samplers[size_t(r)],
                        logits.data() + (int64_t(t) * kRows + r) * kVocab, &prompt[size_t(r)],
                        &out[size_t(r)]});
      const std::vector<SampledToken> got = sample_rows(jobs, kVocab);
      ASSERT_EQ(got.size(), size_t(kRows));
      for (int r = 0; r < kRows; ++r) {
        const SampledToken& w = want[size_t(t)][size_t(r)];
        EXPECT_EQ(got[size_t(r)].id, w.id) << threads << " threads, step " << t << " row " << r;
        EXPECT_EQ(got[size_t(r)].logprob, w.logprob);
        ASSERT_EQ(got[size_t(r)].top.size(), w.top.size());
        for (size_t k = 0; k < w.top.size(); ++k) EXPECT_EQ(got[size_t(r)].top[k].id, w.top[k].id);
        out[size_t(r)].push_back(got[size_t(r)].id);
      }
    }
  }
  omp_set_num_threads(saved);
}

TEST(SampleRows, AnErrorInTheParallelLoopReachesTheCaller) {
  std::vector<Sampler> samplers;
  for (int r = 0; r < 4; ++r) samplers.emplace_back(params_of(r), 0);
  const std::vector<int32_t> none;
  const float logit = 0.0f;
  std::vector<SampleJob> jobs;
  for (Sampler& s : samplers) jobs.push_back({&s, &logit, &none, &none});
  EXPECT_THROW(sample_rows(jobs, 0), std::invalid_argument);  // an empty vocabulary
  EXPECT_TRUE(sample_rows({}, kVocab).empty());
}

// One token at 0, 20 at -5 and 30,000 at -14 (weight e^-14 < 1e-6: not "likely"; together
// 2% of the mass at T = 1): top-p 0.5 stays among the likely tokens, top-p 0.99 always needs
// the tail, and without top-p the draws with u past ~0.98 do.
TEST(SamplerLikelyTokens, DrawsAsSampleCpuOnBothSidesOfTheShortcut) {
  std::vector<float> l(30021, -14.0f);
  l[7] = 0.0f;
  for (int i = 0; i < 20; ++i) l[size_t(100 + 997 * i)] = -5.0f;
  const int64_t vocab = int64_t(l.size());
  int in_tail = 0;
  for (float top_p : {0.5f, 0.99f, 1.0f}) {
    RequestSampling p;
    p.temperature = 1.0f;
    p.top_p = top_p;
    p.seed = 11;
    Sampler s(p, 0);
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    for (int i = 0; i < 100; ++i) {
      const int32_t id = s.sample(l.data(), vocab, {}, {}).id;
      ASSERT_EQ(id, sample_cpu(l.data(), vocab, SamplingParams{1.0f, top_p, 0}, uniform(rng)))
          << "top_p " << top_p << " draw " << i;
      in_tail += l[size_t(id)] == -14.0f;
    }
  }
  EXPECT_GT(in_tail, 0);  // some draws landed past the likely tokens
}

}  // namespace
}  // namespace tessera::test
