#include <cmath>

#include "kernels/rmsnorm.h"

namespace tessera {

namespace {

void norm_row(const float* xi, const float* weight, float eps, int64_t h, float* oi) {
  double ss = 0.0;  // double: the goldens are float64
  for (int64_t j = 0; j < h; ++j) ss += double(xi[j]) * xi[j];
  const float inv = float(1.0 / std::sqrt(ss / double(h) + double(eps)));
  for (int64_t j = 0; j < h; ++j) oi[j] = xi[j] * inv * weight[j];
}

}  // namespace

void rmsnorm_cpu(const float* x, const float* weight, float eps, int64_t n, int64_t h,
                 float* out) {
#pragma omp parallel for schedule(static) if (n > 1)
  for (int64_t i = 0; i < n; ++i) norm_row(x + i * h, weight, eps, h, out + i * h);
}

void add_rmsnorm_cpu(float* residual, const float* delta, const float* weight, float eps,
                     int64_t n, int64_t h, float* out) {
#pragma omp parallel for schedule(static) if (n > 1)
  for (int64_t i = 0; i < n; ++i) {
    float* r = residual + i * h;
    for (int64_t j = 0; j < h; ++j) r[j] += delta[i * h + j];
    norm_row(r, weight, eps, h, out + i * h);
  }
}

}  // namespace tessera
