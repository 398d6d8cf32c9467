#include <cmath>
#include <vector>

#include "kernels/rope.h"

namespace tessera {

std::vector<double> rope_inv_freq(const ModelConfig& cfg) {
  const int64_t half = cfg.head_dim / 2;
  std::vector<double> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv[size_t(i)] = 1.0 / std::pow(double(cfg.rope_theta), double(2 * i) / double(cfg.head_dim));
  const RopeScaling& s = cfg.rope_scaling;
  if (s.type == RopeScaling::Type::Linear) {
    for (double& f : inv) f /= s.factor;
  } else if (s.type == RopeScaling::Type::Llama3) {
    const double old_ctx = double(s.original_max_position);
    const double low_wavelen = old_ctx / s.low_freq_factor;
    const double high_wavelen = old_ctx / s.high_freq_factor;
    for (double& f : inv) {
      const double wavelen = 2.0 * M_PI / f;
      if (wavelen < high_wavelen) continue;           // high frequency: unchanged
      if (wavelen > low_wavelen) { f /= s.factor; continue; }  // low frequency: scaled
      const double smooth =
          (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      f = (1.0 - smooth) * f / s.factor + smooth * f;
    }
  }
  return inv;
}

void rope_cpu(float* x, int64_t n, int64_t heads, int64_t head_dim, const int32_t* positions,
              const double* inv_freq) {
  const int64_t half = head_dim / 2;
#pragma omp parallel if (n > 4)
  {
    std::vector<float> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t i = 0; i < half; ++i) {
        const double a = double(positions[t]) * inv_freq[i];
        c[size_t(i)] = float(std::cos(a));
        s[size_t(i)] = float(std::sin(a));
      }
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + (t * heads + h) * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half];
          v[i] = a * c[size_t(i)] - b * s[size_t(i)];
          v[i + half] = b * c[size_t(i)] + a * s[size_t(i)];
        }
      }
    }
  }
}

}  // namespace tessera
