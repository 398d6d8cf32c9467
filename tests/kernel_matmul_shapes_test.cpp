// matmul_cpu (AVX-512 when available) and matmul_cpu_portable against a double-precision
// reference on odd shapes, F32/F16/BF16 weights, with and without bias. Outputs are
// NaN-poisoned before each call so an element the kernel forgets to write is caught.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "runtime/dtype.h"

namespace tessera::test {
namespace {

struct Weights {
  std::vector<float> f32;        // the F32 values the kernel sees (after rounding to dtype)
  std::vector<uint16_t> half;    // F16 / BF16 storage
  const void* data(DType t) const {
    return t == DType::F32 ? static_cast<const void*>(f32.data()) : half.data();
  }
};

Weights make_weights(DType t, int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  Weights w;
  for (int64_t i = 0; i < n; ++i) {
    const float v = ud(rng);
    if (t == DType::F32) {
      w.f32.push_back(v);
    } else if (t == DType::F16) {
      w.half.push_back(f32_to_f16(v));
      w.f32.push_back(f16_to_f32(w.half.back()));
    } else {
      w.half.push_back(f32_to_bf16(v));
      w.f32.push_back(bf16_to_f32(w.half.back()));
    }
  }
  return w;
}

// y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]), in double; `mag` gets the same sum of
// absolute values (the scale of the rounding error when the sum cancels).
std::vector<double> reference(const std::vector<float>& x, int64_t M, int64_t K,
                              const std::vector<float>& w, int64_t N, const float* bias,
                              std::vector<double>* mag) {
  std::vector<double> y(size_t(M * N));
  mag->assign(y.size(), 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double acc = bias ? double(bias[n]) : 0.0, abs = bias ? std::fabs(bias[n]) : 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const double p = double(x[size_t(m * K + k)]) * w[size_t(n * K + k)];
        acc += p;
        abs += std::fabs(p);
      }
      y[size_t(m * N + n)] = acc;
      (*mag)[size_t(m * N + n)] = abs;
    }
  return y;
}

double norm(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

// ||got - ref|| / ||ref||, failing on any unwritten (NaN) element. When the sums cancel
// (||ref|| < ||mag|| / 10, rare) the error is measured against ||mag|| instead.
double rel_error(const std::vector<float>& got, const std::vector<double>& ref,
                 const std::vector<double>& mag, const std::string& what) {
  double num = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::isnan(got[i])) {
      ADD_FAILURE() << what << ": element " << i << " not written";
      return INFINITY;
    }
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
  }
  const double den = std::max(norm(ref), norm(mag) / 10.0);
  return den == 0.0 ? std::sqrt(num) : std::sqrt(num) / den;
}

using MatmulFn = void (*)(const float*, int64_t, int64_t, const void*, DType, int64_t,
                          const float*, float*);

}  // namespace

TEST(KernelMatmulShapes, OddShapesAllDtypesAgainstDoubleReference) {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  const int64_t Ms[] = {1, 2, 3, 4, 5, 6, 7, 17, 128};
  const int64_t Ks[] = {1, 15, 16, 17, 100, 768};
  const int64_t Ns[] = {1, 3, 4, 5, 33};
  const struct { MatmulFn fn; const char* name; } fns[] = {
      {matmul_cpu, "matmul_cpu"}, {matmul_cpu_portable, "matmul_cpu_portable"}};
  int cases = 0;
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    // Weights are exactly representable in t, so the only error is the F32 accumulation.
    const double tol = 1e-5;
    for (int64_t M : Ms)
      for (int64_t K : Ks)
        for (int64_t N : Ns) {
          std::vector<float> x(size_t(M * K));
          for (auto& v : x) v = ud(rng);
          const Weights w = make_weights(t, N * K, rng);
          std::vector<float> bias(static_cast<size_t>(N));
          for (auto& v : bias) v = ud(rng);
          for (bool with_bias : {false, true}) {
            const float* b = with_bias ? bias.data() : nullptr;
            std::vector<double> mag;
            const std::vector<double> ref = reference(x, M, K, w.f32, N, b, &mag);
            for (const auto& f : fns) {
              std::vector<float> y(size_t(M * N), NAN);
              f.fn(x.data(), M, K, w.data(t), t, N, b, y.data());
              const std::string what = std::string(f.name) + " " + dtype_name(t) +
                                       " M=" + std::to_string(M) + " K=" + std::to_string(K) +
                                       " N=" + std::to_string(N) + (with_bias ? " bias" : "");
              EXPECT_LT(rel_error(y, ref, mag, what), tol) << what;
              ++cases;
            }
          }
        }
  }
  EXPECT_GT(cases, 1000);
}

TEST(KernelMatmulShapes, PortableAndVectorisedAgree) {
  if (!cpu_has_avx512() && !cpu_has_avx2())
    GTEST_SKIP() << "no AVX-512 or AVX2 on this CPU: matmul_cpu is the portable path";
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> ud(-2.0f, 2.0f);
  // M = 1 walks rows one by one up to 8 KiB of F32 x (K <= 2048), in 8-row tiles beyond.
  const struct { int64_t M, K, N; } shapes[] = {
      {1, 768, 33}, {1, 2100, 11}, {5, 100, 64}, {17, 17, 17}, {64, 256, 40}, {2, 1000, 9}};
  for (DType t : {DType::F32, DType::F16, DType::BF16})
    for (const auto& s : shapes) {
      std::vector<float> x(size_t(s.M * s.K)), bias(size_t(s.N));
      for (auto& v : x) v = ud(rng);
      for (auto& v : bias) v = ud(rng);
      const Weights w = make_weights(t, s.N * s.K, rng);
      std::vector<float> a(size_t(s.M * s.N), NAN), b(a.size(), NAN);
      matmul_cpu(x.data(), s.M, s.K, w.data(t), t, s.N, bias.data(), a.data());
      matmul_cpu_portable(x.data(), s.M, s.K, w.data(t), t, s.N, bias.data(), b.data());
      double num = 0.0, den = 0.0;
      for (size_t i = 0; i < a.size(); ++i) {
        ASSERT_FALSE(std::isnan(a[i]) || std::isnan(b[i])) << i;
        num += double(a[i] - b[i]) * (a[i] - b[i]);
        den += double(b[i]) * b[i];
      }
      EXPECT_LT(std::sqrt(num / den), 1e-5)
          << dtype_name(t) << " " << s.M << "x" << s.K << "x" << s.N;
    }
}

TEST(KernelMatmulShapes, ExactSmallIntegersAndRowIndependence) {
  // Small integers multiply and add exactly in F32: any indexing slip shows as a wrong value.
  const int64_t M = 3, K = 19, N = 7;
  std::vector<float> x(size_t(M * K)), w(size_t(N * K)), bias(static_cast<size_t>(N));
  for (int64_t i = 0; i < M * K; ++i) x[size_t(i)] = float(i % 5 - 2);
  for (int64_t i = 0; i < N * K; ++i) w[size_t(i)] = float(i % 7 - 3);
  for (int64_t n = 0; n < N; ++n) bias[size_t(n)] = float(100 * n);
  std::vector<uint16_t> wh, wb;
  for (float v : w) { wh.push_back(f32_to_f16(v)); wb.push_back(f32_to_bf16(v)); }
  for (int pass = 0; pass < 2; ++pass)
    for (DType t : {DType::F32, DType::F16, DType::BF16}) {
      const void* wp = t == DType::F32 ? static_cast<const void*>(w.data())
                                       : t == DType::F16 ? static_cast<const void*>(wh.data())
                                                         : wb.data();
      std::vector<float> y(size_t(M * N), NAN);
      (pass ? matmul_cpu_portable : matmul_cpu)(x.data(), M, K, wp, t, N, bias.data(),
                                                y.data());
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double e = bias[size_t(n)];
          for (int64_t k = 0; k < K; ++k) e += double(x[size_t(m * K + k)]) * w[size_t(n * K + k)];
          EXPECT_EQ(y[size_t(m * N + n)], float(e)) << dtype_name(t) << " m=" << m << " n=" << n;
        }
      // The same row alone (M = 1) gives the same answer as inside the batch.
      std::vector<float> y1(size_t(N), NAN);
      (pass ? matmul_cpu_portable : matmul_cpu)(x.data() + K, 1, K, wp, t, N, bias.data(),
                                                y1.data());
      for (int64_t n = 0; n < N; ++n) EXPECT_EQ(y1[size_t(n)], y[size_t(N + n)]) << n;
    }
}

TEST(KernelMatmulShapes, UnsupportedWeightDtypeThrows) {
  std::vector<float> x(4, 1.0f), y(2, 0.0f);
  std::vector<int32_t> w(8, 1);
  EXPECT_THROW(matmul_cpu(x.data(), 1, 4, w.data(), DType::I32, 2, nullptr, y.data()),
               std::invalid_argument);
  EXPECT_THROW(matmul_cpu_portable(x.data(), 1, 4, w.data(), DType::I8, 2, nullptr, y.data()),
               std::invalid_argument);
}

}  // namespace tessera::test
