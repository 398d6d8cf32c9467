#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/sampling.h"

namespace tessera {

int32_t argmax_cpu(const float* logits, int64_t vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  return int32_t(best);
}

int32_t sample_cpu(const float* logits, int64_t vocab, const SamplingParams& p, double u) {
  if (p.temperature <= 0.0f || p.top_k == 1) return argmax_cpu(logits, vocab);
  // Candidates sorted by logit, descending (ties: lower id first), cut to top-k.
  std::vector<int32_t> idx(static_cast<size_t>(vocab));
  std::iota(idx.begin(), idx.end(), 0);
  const int64_t k = p.top_k > 0 ? std::min(p.top_k, vocab) : vocab;
  auto by_logit = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), by_logit);
  idx.resize(size_t(k));
  // Softmax over the candidates at this temperature (double: stable sums).
  std::vector<double> prob(idx.size());
  const double mx = logits[idx[0]];
  double sum = 0.0;
  for (size_t i = 0; i < idx.size(); ++i) {
    prob[i] = std::exp((double(logits[idx[i]]) - mx) / p.temperature);
    sum += prob[i];
  }
  // Nucleus: the smallest prefix whose probability reaches top_p.
  size_t keep = idx.size();
  if (p.top_p < 1.0f) {
    double cum = 0.0;
    for (size_t i = 0; i < idx.size(); ++i) {
      cum += prob[i] / sum;
      if (cum >= p.top_p) { keep = i + 1; break; }
    }
  }
  double kept = 0.0;
  for (size_t i = 0; i < keep; ++i) kept += prob[i];
  double target = u * kept, cum = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    cum += prob[i];
    if (target < cum) return idx[i];
  }
  return idx[keep - 1];
}

}  // namespace tessera
