// References for the quantized-matmul tests: random inputs, y = x @ w^T (+ bias) in double,
// and the relative L2 error of a result against it.
#pragma once
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace tessera::test {

inline std::vector<float> random_vector(size_t n, std::mt19937& rng, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// x [M, K], w [N, K], bias [N] or null -> y [M, N], accumulated in double.
inline std::vector<double> exact_matmul(const std::vector<float>& x, int64_t M, int64_t K,
                                        const std::vector<float>& w, int64_t N,
                                        const float* bias) {
  std::vector<double> y(size_t(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double acc = bias ? bias[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) acc += double(x[size_t(m * K + k)]) * w[size_t(n * K + k)];
      y[size_t(m * N + n)] = acc;
    }
  return y;
}

// ||got - want|| / ||want||.
template <class T>
double rel_error(const std::vector<float>& got, const std::vector<T>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (double(got[i]) - double(want[i])) * (double(got[i]) - double(want[i]));
    den += double(want[i]) * double(want[i]);
  }
  return std::sqrt(num / den);
}

}  // namespace tessera::test
