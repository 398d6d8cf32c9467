// sample_rows: a step's rows sampled in parallel give, for every thread count, exactly what
// each sampler gives called row by row (ids and logprobs, over several steps so the RNGs and
// penalty counts advance), and an error inside the parallel loop reaches the caller.
#include <gtest/gtest.h>
#include <omp.h>

#include <random>
#include <stdexcept>
#include <vector>

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

}  // namespace
}  // namespace tessera::test
