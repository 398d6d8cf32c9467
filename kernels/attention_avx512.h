// AVX-512 inner loops of the CPU attention (kernels/attention_cpu.cpp), compiled in their
// own file with AVX-512 flags (and again for AVX2) and called only after a run-time CPU
// check. Both take the G query heads that share one kv head together, so each K and V row
// is read (and, for an I8 cache, converted) once for all of them. Rows are `keys` contiguous
// rows [keys, d] of F32 values or of I8 codes (the caller applies the rows' scales).
#pragma once
#include <cstdint>

namespace tessera {

// The kernels in their AVX-512 and AVX2 builds (kernels/simd_target.h).
struct AttentionSimd {
  // dots[g * stride + j] = q[g, 0:d] . k[j, 0:d] for g < G, j < keys.
  void (*gqa_dots)(const float* q, int64_t G, const void* k, bool i8, int64_t keys, int64_t d,
                   float* dots, int64_t stride);
  // acc[g, 0:d] += sum_j w[g * stride + j] * v[j, 0:d] for g < G.
  void (*gqa_accumulate)(const float* w, int64_t stride, int64_t G, const void* v, bool i8,
                         int64_t keys, int64_t d, float* acc);
};
extern const AttentionSimd kAttentionAvx512, kAttentionAvx2;

}  // namespace tessera
