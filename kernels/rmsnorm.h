// RMSNorm (Llama/Qwen2): out = x / sqrt(mean(x^2) + eps) * weight, per row.
#pragma once
#include <cstdint>

namespace tessera {

// x, out: F32 [n, h]; weight: F32 [h]. out may alias x.
void rmsnorm_cpu(const float* x, const float* weight, float eps, int64_t n, int64_t h,
                 float* out);

// residual += delta, then out = rmsnorm(residual) * weight. All F32 [n, h].
void add_rmsnorm_cpu(float* residual, const float* delta, const float* weight, float eps,
                     int64_t n, int64_t h, float* out);

}  // namespace tessera
