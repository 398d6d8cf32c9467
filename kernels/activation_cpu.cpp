#include <algorithm>
#include <cmath>

#include "kernels/activation.h"
#include "kernels/matmul.h"
#include "kernels/vector_avx512.h"

namespace tessera {

void silu_mul_cpu(const float* gate, const float* up, int64_t n, float* out) {
  if (const VectorSimd* simd = simd_kernels(kVectorAvx512, kVectorAvx2)) {
    const int64_t chunk = 4096;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t c = 0; c < n; c += chunk)
      simd->silu_mul(gate + c, up + c, std::min(chunk, n - c), out + c);
    return;
  }
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace tessera
