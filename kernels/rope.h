// Rotary position embedding, Hugging Face rotate-half convention: for i < d/2,
//   (x[i], x[i + d/2]) <- (x[i] cos - x[i + d/2] sin, x[i + d/2] cos + x[i] sin),
// with angle = position * inv_freq[i].
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/model_config.h"

namespace tessera {

// inv_freq[i] = theta^(-2i/d), with linear or llama3 scaling applied. [head_dim / 2]
std::vector<double> rope_inv_freq(const ModelConfig& cfg);

// In place on x: [n, heads, head_dim] F32, positions: [n].
void rope_cpu(float* x, int64_t n, int64_t heads, int64_t head_dim, const int32_t* positions,
              const double* inv_freq);

}  // namespace tessera
