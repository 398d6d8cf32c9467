// kernels/quant_matmul_cpu: int8 / int4 matmul (the CPU backend's path and its portable
// reference) against an exact (double) matmul of the dequantized weights, for 1 token (decode) and
// many (prefill), K not a multiple of 256 (and not of 32: int4's shorter last group and the
// kernels' tails), N not a multiple of the row blocks; and through Backend::linear.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/quant_matmul.h"
#include "runtime/quant.h"
#include "tests/matmul_reference_util.h"

namespace tessera::test {
namespace {

// int8 decode (M = 1) walks rows one by one up to K = 2048 (K 320, 200, 1000 here: no,
// one, several partial steps), in 8-row tiles beyond (K 4096).
struct Shape { int64_t M, K, N; };
// int8 batches of 2-4 tokens walk the rows while their F32 x, all together, take at most
// 8 KiB (M 2 K 384, M 4 K 500; not M 3 or 4 K 1000 nor M 2 K 2100); more tokens go 4 to a
// tile, then one tile of the 1-3 left (M 5, 6, 7); int4 with 4 or more tokens dequantizes
// rows first.
const Shape kShapes[] = {{1, 320, 37}, {1, 4096, 64}, {1, 200, 9}, {1, 1000, 11}, {3, 1000, 33},
                         {17, 384, 130}, {64, 1000, 19}, {5, 130, 8}, {2, 384, 13},
                         {6, 256, 10}, {7, 640, 9}, {4, 1000, 17}, {2, 2100, 11},
                         {4, 500, 7}};

class QuantMatmul : public ::testing::TestWithParam<WeightFormat> {};

TEST_P(QuantMatmul, MatchesExactMatmulOfDequantizedWeights) {
  std::mt19937 rng(11);
  for (const Shape& s : kShapes) {
    SCOPED_TRACE("M " + std::to_string(s.M) + " K " + std::to_string(s.K) + " N " +
                 std::to_string(s.N));
    Tensor w = host_tensor(DType::F32, {s.N, s.K});
    const std::vector<float> wv = random_vector(size_t(s.N * s.K), rng, 0.05f);
    std::copy(wv.begin(), wv.end(), w.ptr<float>());
    const LinearWeight q = quantize_weight(w, GetParam());
    const std::vector<float> dq = dequantize_weight(q);
    const std::vector<float> x = random_vector(size_t(s.M * s.K), rng, 1.0f);
    const std::vector<float> bias = random_vector(size_t(s.N), rng, 0.1f);
    // F32 accumulation over K terms: rounding error grows like sqrt(K) * 2^-24.
    const double tol = std::sqrt(double(s.K)) * std::ldexp(1.0, -24);
    for (const float* b : {static_cast<const float*>(nullptr), bias.data()}) {
      const std::vector<double> want = exact_matmul(x, s.M, s.K, dq, s.N, b);
      std::vector<float> fast(want.size()), portable(want.size());
      quant_matmul_cpu(x.data(), s.M, quant_matrix(q), b, fast.data());
      quant_matmul_cpu_portable(x.data(), s.M, quant_matrix(q), b, portable.data());
      EXPECT_LT(rel_error(fast, want), tol) << (b ? "bias" : "no bias");
      EXPECT_LT(rel_error(portable, want), tol) << (b ? "bias" : "no bias");
    }
  }
}

TEST_P(QuantMatmul, BackendLinearUsesTheQuantizedWeight) {
  std::mt19937 rng(12);
  const int64_t M = 4, K = 256, N = 24;
  Tensor w = host_tensor(DType::BF16, {N, K});
  for (int64_t i = 0; i < N * K; ++i)
    w.ptr<uint16_t>()[i] = f32_to_bf16(std::normal_distribution<float>(0.0f, 0.05f)(rng));
  const std::vector<float> x = random_vector(size_t(M * K), rng, 1.0f);
  {  // (the fast mode quantizes x: tests/quant_matmul_q8_test.cpp)
    auto backend = make_cpu_backend(1, CpuPrecision::Exact);
    const LinearWeight q = backend->upload_linear(quantize_weight(w, GetParam()));
    Tensor xt = host_tensor(DType::F32, {M, K}), out = host_tensor(DType::F32, {M, N});
    std::copy(x.begin(), x.end(), xt.ptr<float>());
    backend->linear(xt, q, out);
    const std::vector<double> want = exact_matmul(x, M, K, dequantize_weight(q), N, nullptr);
    EXPECT_LT(rel_error(std::vector<float>(out.ptr<float>(), out.ptr<float>() + M * N), want),
              16 * std::ldexp(1.0, -24));  // sqrt(K) * 2^-24
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, QuantMatmul,
                         ::testing::Values(WeightFormat::Int8, WeightFormat::Int4),
                         [](const auto& info) { return std::string(weight_format_name(info.param)); });

}  // namespace
}  // namespace tessera::test
