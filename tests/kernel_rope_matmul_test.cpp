// RoPE frequencies (default, linear, llama3 bands) and rotation; matmul's AVX-512 path
// against a double reference and the portable path, for F32/F16/BF16 weights.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/matmul.h"
#include "kernels/rope.h"
#include "tests/test_util.h"

namespace tessera::test {

TEST(KernelRope, Llama3ScalingHasThreeBandsAndMatchesFormula) {
  TESSERA_REQUIRE_TESTDATA();
  const ModelConfig c = load_model_config(testdata_dir() + "/models/tiny-llama3-rope");
  const auto inv = rope_inv_freq(c);
  ASSERT_EQ(inv.size(), 8u);
  int kept = 0, scaled = 0, smooth = 0;
  for (size_t i = 0; i < inv.size(); ++i) {
    const double base = std::pow(500000.0, -2.0 * double(i) / 16.0);
    const double wavelen = 2 * M_PI / base;  // original ctx 64, factors 1 and 4, scale 8
    double want;
    if (wavelen < 64.0 / 4.0) { want = base; ++kept; }
    else if (wavelen > 64.0 / 1.0) { want = base / 8.0; ++scaled; }
    else {
      const double s = (64.0 / wavelen - 1.0) / (4.0 - 1.0);
      want = (1 - s) * base / 8.0 + s * base;
      ++smooth;
    }
    EXPECT_NEAR(inv[i], want, 1e-12 * want) << i;
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(scaled, 0);
  EXPECT_GT(smooth, 0);
}

TEST(KernelRope, LinearScalingAndRotateHalf) {
  ModelConfig c;
  c.head_dim = 8;
  c.rope_theta = 10000.0f;
  auto plain = rope_inv_freq(c);
  c.rope_scaling.type = RopeScaling::Type::Linear;
  c.rope_scaling.factor = 4.0f;
  auto lin = rope_inv_freq(c);
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(lin[i], plain[i] / 4.0, 1e-15);
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8};
  const int32_t pos[2] = {0, 5};
  rope_cpu(x.data(), 2, 1, 8, pos, plain.data());
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(x[size_t(i)], float(i + 1));  // position 0
  for (int i = 0; i < 4; ++i) {
    const double a = 5 * plain[size_t(i)], x1 = i + 1, x2 = i + 5;
    EXPECT_NEAR(x[size_t(8 + i)], x1 * std::cos(a) - x2 * std::sin(a), 1e-5);
    EXPECT_NEAR(x[size_t(12 + i)], x2 * std::cos(a) + x1 * std::sin(a), 1e-5);
  }
}

TEST(KernelMatmul, AllWeightDtypesAgainstDoubleReference) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  for (DType wt : {DType::F32, DType::F16, DType::BF16})
    for (int64_t M : {1, 3, 4, 5, 17})
      for (int64_t K : {1, 15, 16, 17, 100})
        for (int64_t N : {1, 3, 4, 5, 9, 33}) {
          std::vector<float> x(size_t(M * K)), wf(size_t(N * K)), bias(static_cast<size_t>(N));
          for (auto& v : x) v = u(rng);
          for (auto& v : bias) v = u(rng);
          std::vector<uint16_t> wh(wf.size());
          for (size_t i = 0; i < wf.size(); ++i) {
            const float v = u(rng);
            if (wt == DType::F16) { wh[i] = f32_to_f16(v); wf[i] = f16_to_f32(wh[i]); }
            else if (wt == DType::BF16) { wh[i] = f32_to_bf16(v); wf[i] = bf16_to_f32(wh[i]); }
            else wf[i] = v;
          }
          const void* w = wt == DType::F32 ? static_cast<const void*>(wf.data()) : wh.data();
          std::vector<float> y(size_t(M * N), NAN), yp(y.size(), NAN);
          matmul_cpu(x.data(), M, K, w, wt, N, bias.data(), y.data());
          matmul_cpu_portable(x.data(), M, K, w, wt, N, bias.data(), yp.data());
          double err = 0, errp = 0, norm = 0;
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) {
              double ref = bias[size_t(n)];
              for (int64_t k = 0; k < K; ++k) ref += double(x[size_t(m * K + k)]) * wf[size_t(n * K + k)];
              const double g = y[size_t(m * N + n)], gp = yp[size_t(m * N + n)];
              ASSERT_FALSE(std::isnan(g) || std::isnan(gp)) << "unwritten output";
              err += (g - ref) * (g - ref);
              errp += (gp - ref) * (gp - ref);
              norm += ref * ref;
            }
          EXPECT_LT(std::sqrt(err / norm), 1e-5) << dtype_name(wt) << " " << M << "x" << K << "x" << N;
          EXPECT_LT(std::sqrt(errp / norm), 1e-5) << dtype_name(wt) << " " << M << "x" << K << "x" << N;
        }
}

}  // namespace tessera::test
