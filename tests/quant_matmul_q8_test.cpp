// kernels/quant_matmul_cpu_q8 (fast mode: int8 activations, AVX512-VNNI) against a double
// matmul of the dequantized weights with x quantized here by the documented rule (blocks of
// 128 inputs, scale amax / 127, round to nearest even), for hand-made int8 and int4 matrices
// covering every code, int8 -128, zero points up to 16 (GPTQ v1), K with a short last block,
// an all-zero block, 1 and many tokens; the fallback for other group sizes; the backend's use.
// What the quantized activations cost in quality: tests/perplexity_fast_quant_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/quant_matmul.h"
#include "runtime/backend.h"
#include "runtime/quant.h"
#include "tests/matmul_reference_util.h"

namespace tessera::test {
namespace {

struct HandMatrix {  // owns what a QuantMatrix points at, and W' [N, K] in float
  std::vector<int8_t> q8;
  std::vector<uint8_t> q4;
  std::vector<float> scales, dequantized;
  std::vector<int8_t> zeros;
  QuantMatrix m;
};

HandMatrix random_matrix(bool int4, int64_t N, int64_t K, int64_t group, std::mt19937& rng) {
  HandMatrix h;
  h.m.N = N;
  h.m.K = K;
  h.m.int4 = int4;
  h.m.group_size = int4 ? group : 0;
  const int64_t G = h.m.groups();
  std::uniform_real_distribution<float> scale(0.001f, 0.02f);
  for (int64_t i = 0; i < N * G; ++i) h.scales.push_back(scale(rng));
  h.dequantized.resize(size_t(N * K));
  if (int4) {
    for (int64_t i = 0; i < N * G; ++i) h.zeros.push_back(int8_t(rng() % 17));  // 0..16
    h.q4.assign(size_t(N * K / 2), 0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        const int c = int(rng() % 16), g = int(k / group);
        h.q4[size_t((n * K + k) / 2)] |= uint8_t(k % 2 == 0 ? c : c << 4);
        h.dequantized[size_t(n * K + k)] =
            float(c - h.zeros[size_t(n * G + g)]) * h.scales[size_t(n * G + g)];
      }
    h.m.q = h.q4.data();
    h.m.zeros = h.zeros.data();
  } else {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        const int8_t c = int8_t(int(rng() % 256) - 128);  // -128 .. 127
        h.q8.push_back(c);
        h.dequantized[size_t(n * K + k)] = float(c) * h.scales[size_t(n)];
      }
    h.m.q = h.q8.data();
  }
  h.m.scales = h.scales.data();
  return h;
}

// x as the fast mode sees it: per token, blocks of 128 inputs, q = rne(x * 127 / amax).
std::vector<float> quantized_activations(const std::vector<float>& x, int64_t M, int64_t K) {
  std::vector<float> r(x.size());
  for (int64_t m = 0; m < M; ++m)
    for (int64_t b0 = 0; b0 < K; b0 += 128) {
      const int64_t b1 = std::min(K, b0 + 128);
      float amax = 0.0f;
      for (int64_t k = b0; k < b1; ++k) amax = std::max(amax, std::fabs(x[size_t(m * K + k)]));
      const float scale = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      for (int64_t k = b0; k < b1; ++k)
        r[size_t(m * K + k)] = std::nearbyint(x[size_t(m * K + k)] * inv) * scale;
    }
  return r;
}

std::vector<float> random_x(int64_t M, int64_t K, std::mt19937& rng) {
  return random_vector(size_t(M * K), rng, 1.0f);
}

// Decode (M = 1) walks rows of K <= 8192 one by one, longer ones in 8-row tiles (with 5
// rows left over here): both are covered. Batches of 2-4 tokens walk the rows while their x,
// all together, take at most 8 KiB (int8) or 16 KiB (int4): M 4 K 3000 walks in int4 and
// tiles in int8, M 2 K 8300 tiles in both; more tokens go 4 to a tile, then one tile of the
// 1-3 left (M 5, 6, 7).
struct Shape { int64_t M, K, N; };
const Shape kShapes[] = {{1, 384, 37}, {1, 4096, 64}, {1, 200, 9}, {1, 8300, 21},
                         {3, 1000, 33}, {17, 384, 130}, {64, 640, 19}, {5, 130, 8},
                         {2, 384, 13}, {6, 256, 10}, {7, 640, 9}, {4, 1000, 17},
                         {2, 8300, 11}, {4, 3000, 9}};

class QuantMatmulQ8 : public ::testing::TestWithParam<bool> {};  // int4?

TEST_P(QuantMatmulQ8, IsTheExactProductOfInt8QuantizedActivations) {
  if (!cpu_has_avx512_vnni() && !cpu_has_avx2()) GTEST_SKIP() << "no AVX512-VNNI or AVX2";
  std::mt19937 rng(21);
  for (const Shape& s : kShapes) {
    SCOPED_TRACE("M " + std::to_string(s.M) + " K " + std::to_string(s.K) + " N " +
                 std::to_string(s.N));
    const HandMatrix w = random_matrix(GetParam(), s.N, s.K, kQ8Block, rng);
    ASSERT_TRUE(quant_matmul_q8_supported(w.m));
    std::vector<float> x = random_x(s.M, s.K, rng);
    if (s.K > 256)  // a block of zeros: scale 0, no NaN
      std::fill(x.begin() + 128, x.begin() + 256, 0.0f);
    const std::vector<float> bias = random_x(1, s.N, rng);
    for (const float* b : {static_cast<const float*>(nullptr), bias.data()}) {
      std::vector<float> y(size_t(s.M * s.N), -1.0f);
      quant_matmul_cpu_q8(x.data(), s.M, w.m, b, y.data());
      // Integer products are exact; what is left is F32 rounding over K / 128 blocks.
      const double tol = std::sqrt(double(s.K)) * std::ldexp(1.0, -24);
      EXPECT_LT(rel_error(y, exact_matmul(quantized_activations(x, s.M, s.K), s.M, s.K,
                                          w.dequantized, s.N, b)),
                tol)
          << (b ? "bias" : "no bias");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, QuantMatmulQ8, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "int4" : "int8"; });

// int4 in groups of 64 has no int8-activation kernel: F32 x, as quant_matmul_cpu.
TEST(QuantMatmulQ8Fallback, OtherGroupSizesKeepF32Activations) {
  std::mt19937 rng(22);
  const int64_t M = 2, K = 256, N = 12;
  const HandMatrix w = random_matrix(true, N, K, 64, rng);
  EXPECT_FALSE(quant_matmul_q8_supported(w.m));
  const std::vector<float> x = random_x(M, K, rng);
  std::vector<float> y(size_t(M * N));
  quant_matmul_cpu_q8(x.data(), M, w.m, nullptr, y.data());
  EXPECT_LT(rel_error(y, exact_matmul(x, M, K, w.dequantized, N, nullptr)),
            std::sqrt(double(K)) * std::ldexp(1.0, -24));
}

// The CPU backend's fast and auto (QuantizedFast) modes take the int8-activation path for int8
// / int4 weights; the exact mode keeps F32 x. Auto keeps F32 x for a dense weight too (the
// fast mode rounds it to bf16: matmul_fast_test).
TEST(QuantMatmulQ8Backend, FastAndAutoModesQuantizeActivationsExactModeDoesNot) {
  if (!cpu_has_avx512_vnni() && !cpu_has_avx2()) GTEST_SKIP() << "no AVX512-VNNI or AVX2";
  std::mt19937 rng(23);
  const int64_t M = 3, K = 512, N = 20;
  Tensor wt = host_tensor(DType::F32, {N, K});
  for (int64_t i = 0; i < N * K; ++i)
    wt.ptr<float>()[i] = std::normal_distribution<float>(0.0f, 0.05f)(rng);
  const std::vector<float> x = random_x(M, K, rng);
  for (WeightFormat f : {WeightFormat::Dense, WeightFormat::Int8, WeightFormat::Int4}) {
    for (CpuPrecision p : {CpuPrecision::Exact, CpuPrecision::Fast, CpuPrecision::QuantizedFast}) {
      if (f == WeightFormat::Dense && p == CpuPrecision::Fast) continue;  // bf16 x
      auto backend = make_cpu_backend(1, p);
      const LinearWeight q = backend->upload_linear(quantize_weight(wt, f));
      Tensor xt = host_tensor(DType::F32, {M, K}), out = host_tensor(DType::F32, {M, N});
      std::copy(x.begin(), x.end(), xt.ptr<float>());
      backend->linear(xt, q, out);
      const std::vector<float> got(out.ptr<float>(), out.ptr<float>() + M * N);
      const bool int8_x = f != WeightFormat::Dense && p != CpuPrecision::Exact;
      const std::vector<float> seen = int8_x ? quantized_activations(x, M, K) : x;
      EXPECT_LT(rel_error(got, exact_matmul(seen, M, K, dequantize_weight(q), N, nullptr)),
                std::sqrt(double(K)) * std::ldexp(1.0, -24))
          << weight_format_name(f) << " " << backend->name();
    }
  }
}

}  // namespace
}  // namespace tessera::test
