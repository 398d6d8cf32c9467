// AVX-512 vector helpers for the CPU kernels (softmax, SiLU), compiled in their own file with
// AVX-512 flags and again for AVX2 (kernels/simd_target.h), picked by a run-time CPU check.
// Plain pointers only.
#pragma once
#include <cstdint>

namespace tessera {

struct VectorSimd {
  // x[i] = exp(x[i] - shift); returns the sum. Relative error ~1e-7 (degree-7 Taylor on
  // [-ln2/2, ln2/2] after range reduction).
  float (*exp_shift_sum)(float* x, int64_t n, float shift);
  // w[i] = exp((double(l[i]) - mx) / T) for the sampler, by glibc's vector exp (libmvec:
  // within 3 ulp of std::exp, ~8x its speed); returns the sum of w (8 partial sums).
  double (*softmax_weights)(const float* l, int64_t n, double mx, double T, double* w);
  // out[i] = silu(gate[i]) * up[i]
  void (*silu_mul)(const float* gate, const float* up, int64_t n, float* out);
};
extern const VectorSimd kVectorAvx512, kVectorAvx2;

}  // namespace tessera
