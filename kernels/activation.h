// SiLU-gated MLP activation: out = silu(gate) * up, silu(g) = g / (1 + exp(-g)).
#pragma once
#include <cstdint>

namespace tessera {

void silu_mul_cpu(const float* gate, const float* up, int64_t n, float* out);

}  // namespace tessera
