// The CPU fast mode: x rounded to bf16, bf16 dot products with F32 accumulation. Against a
// double reference on the same bf16-rounded inputs (products of bf16 values are exact in
// F32, so only the accumulation order differs), on shapes big enough to go multithreaded.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/matmul.h"
#include "runtime/dtype.h"
#include "tests/model_test_util.h"
#include "tests/test_util.h"

namespace tessera::test {

TEST(MatmulFast, MatchesDoubleReferenceOnBf16RoundedInputs) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  struct Shape { int64_t M, K, N; };
  // M = 1 walks rows one by one up to 8 KiB of bf16 x (K <= 4096; here with and without
  // partial steps), in 4-row tiles beyond.
  for (Shape s : {Shape{1, 768, 33}, Shape{1, 1000, 9}, Shape{1, 100, 7}, Shape{1, 4200, 10},
                  Shape{5, 100, 7}, Shape{128, 768, 260}, Shape{67, 2048, 9}}) {
    std::vector<float> x(size_t(s.M * s.K)), bias(size_t(s.N));
    std::vector<uint16_t> w(size_t(s.N * s.K));
    for (auto& v : x) v = u(rng);
    for (auto& v : w) v = f32_to_bf16(u(rng));
    for (auto& v : bias) v = u(rng);
    std::vector<float> y(size_t(s.M * s.N), NAN);
    matmul_cpu_bf16_activations(x.data(), s.M, s.K, w.data(), DType::BF16, s.N, bias.data(),
                                y.data());
    double err = 0, norm = 0;
    for (int64_t m = 0; m < s.M; ++m)
      for (int64_t n = 0; n < s.N; ++n) {
        double ref = bias[size_t(n)];
        for (int64_t k = 0; k < s.K; ++k)
          ref += double(bf16_to_f32(f32_to_bf16(x[size_t(m * s.K + k)]))) *
                 bf16_to_f32(w[size_t(n * s.K + k)]);
        const float got = y[size_t(m * s.N + n)];
        ASSERT_FALSE(std::isnan(got)) << "unwritten output " << m << "," << n;
        err += (got - ref) * (got - ref);
        norm += ref * ref;
      }
    EXPECT_LT(std::sqrt(err / norm), 1e-6) << s.M << "x" << s.K << "x" << s.N;
  }
}

TEST(MatmulFast, WholeModelStaysNearTheGolden) {
  TESSERA_REQUIRE_TESTDATA();
  // bf16 activations: ~1e-2 x max|logit| is the documented bf16 tolerance.
  auto exact = load_cpu_model(testdata_dir() + "/models/tiny-qwen2");
  auto fast = load_cpu_model(testdata_dir() + "/models/tiny-qwen2", CpuPrecision::Fast);
  const std::vector<int32_t> prompt = {3, 17, 99, 512, 7, 1000, 42, 5};
  const auto a = prefill_all_logits(*exact.model, prompt);
  const auto b = prefill_all_logits(*fast.model, prompt);
  double worst = 0;
  for (size_t p = 0; p < a.size(); ++p)
    for (size_t i = 0; i < a[p].size(); ++i) worst = std::max(worst, double(std::fabs(a[p][i] - b[p][i])));
  EXPECT_LT(worst, 1e-2 * max_abs(a.back()));
  EXPECT_GT(worst, 0.0) << "fast mode computed exactly what exact mode did: not engaged?";
}

}  // namespace tessera::test
