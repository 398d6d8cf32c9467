#include <cmath>

#include "kernels/rmsnorm.h"

namespace tessera {

void rmsnorm_cpu(const float* x, const float* weight, float eps, int64_t n, int64_t h,
                 float* out) {
#pragma omp parallel for schedule(static) if (n > 1)
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * h;
    double ss = 0.0;  // double: the goldens are float64
    for (int64_t j = 0; j < h; ++j) ss += double(xi[j]) * xi[j];
    const float inv = float(1.0 / std::sqrt(ss / double(h) + double(eps)));
    float* oi = out + i * h;
    for (int64_t j = 0; j < h; ++j) oi[j] = xi[j] * inv * weight[j];
  }
}

void add_rmsnorm_cpu(float* residual, const float* delta, const float* weight, float eps,
                     int64_t n, int64_t h, float* out) {
  for (int64_t i = 0; i < n * h; ++i) residual[i] += delta[i];
  rmsnorm_cpu(residual, weight, eps, n, h, out);
}

}  // namespace tessera
