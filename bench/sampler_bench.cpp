// The serving engine's sampling stage: one decode step's rows sampled by sample_rows (each
// row a request with temperature 0.7, top-p 0.9 and its own seed), for 1 thread and for all
// threads. Prints ms per step. At a large vocabulary this stage is host work that a GPU
// step waits on, so it is worth knowing next to the step time.
//
//   sampler_bench [VOCAB [ROWS]]        default: 152064 (Qwen2.5) and 32 rows
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "runtime/sampler.h"

using namespace tessera;

int main(int argc, char** argv) {
  const int64_t vocab = argc > 1 ? std::atoll(argv[1]) : 152064;
  const int rows = argc > 2 ? std::atoi(argv[2]) : 32;
  if (vocab <= 0 || rows <= 0) {
    std::fprintf(stderr, "usage: sampler_bench [VOCAB [ROWS]] (positive)\n");
    return 2;
  }
  RequestSampling p;
  p.temperature = 0.7f;
  p.top_p = 0.9f;
  const std::vector<int32_t> prompt{1, 2, 3};
  const int all = omp_get_max_threads();
  // broad: N(0, 3) logits, the nucleus thousands of tokens wide (a worst case); peaked: N(0, 2)
  // plus 16 tokens 10-18 above, an LLM's usual shape (the nucleus a few tokens).
  for (const bool peaked : {false, true})
  for (int threads : {1, all}) {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, peaked ? 2.0f : 3.0f);
    std::vector<float> logits(size_t(vocab) * size_t(rows));
    for (float& x : logits) x = nd(rng);
    for (int r = 0; r < rows && peaked; ++r)
      for (int i = 0; i < 16; ++i) logits[size_t(r * vocab + (rng() % vocab))] += 10.0f + 0.5f * i;
    omp_set_num_threads(threads);
    std::vector<Sampler> samplers;
    std::vector<std::vector<int32_t>> out(static_cast<size_t>(rows));
    for (int r = 0; r < rows; ++r) {
      p.seed = uint64_t(r);
      samplers.emplace_back(p, 0);
    }
    std::vector<double> ms;
    for (int step = 0; step < 10; ++step) {
      std::vector<SampleJob> jobs;
      for (int r = 0; r < rows; ++r)
        jobs.push_back({&samplers[size_t(r)], logits.data() + int64_t(r) * vocab, &prompt,
                        &out[size_t(r)]});
      const auto t0 = std::chrono::steady_clock::now();
      const std::vector<SampledToken> got = sample_rows(jobs, vocab);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                             t0).count());
      for (int r = 0; r < rows; ++r) out[size_t(r)].push_back(got[size_t(r)].id);
    }
    std::sort(ms.begin(), ms.end());
    std::printf("%s logits, vocab %lld, %d rows, %d thread(s): %.2f ms a step (median of 10), "
                "%.3f ms a row\n", peaked ? "peaked" : "broad", static_cast<long long>(vocab),
                rows, threads, ms[5], ms[5] * threads / rows);
  }
  return 0;
}
