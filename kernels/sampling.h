// Token sampling from one row of logits: greedy (temperature 0), or temperature, top-k and
// top-p (nucleus) filtering, then a draw with a uniform number u in [0, 1) that the caller
// supplies (so a seeded caller is reproducible, and the CUDA twin can take the same u).
#pragma once
#include <cstdint>

namespace tessera {

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy
  float top_p = 1.0f;        // (0, 1]
  int64_t top_k = 0;         // 0: no limit
};

// Index of the largest logit (the first on ties).
int32_t argmax_cpu(const float* logits, int64_t vocab);

int32_t sample_cpu(const float* logits, int64_t vocab, const SamplingParams& p, double u);

}  // namespace tessera
