// Quantized linear layers on the GPU against their CPU twin (the CPU backend's
// quant_matmul_cpu) on the same quantized weights: the fused GEMVs (few tokens: the
// tensor-core one for rows of 64k bytes, 16-byte units, words, bytes; each shape again with
// TESSERA_QUANT_GEMV=fma, which turns the tensor-core one off) and the dequantize + cuBLAS
// path (many tokens; several row blocks of scratch); and TinyStories-656K's perplexity with
// int8 / int4 weights (lm_head as stored and int8) on the GPU against the CPU's, and with the
// embedding table in host memory. Skips without a GPU.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "runtime/perplexity.h"
#include "runtime/quant.h"
#include "runtime/weights.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

// Rows of 64k bytes (896, 4096: tensor cores for 16-bit x), of 16-byte units (1056), of words
// or bytes (1000, 80); K = 80 is one shorter int4 group; N * K = 4200 * 4096 needs two
// blocks of the 32 MiB dequantization scratch.
struct QuantShape { int64_t K, N; bool bias; };
const QuantShape kQuantShapes[] = {{896, 1000, true}, {1056, 200, true}, {1000, 152, false},
                                   {80, 384, true},   {4096, 4200, false}};
const int64_t kQuantTokens[] = {1, 3, 8, 9, 17, 32, 33, 300};  // GEMV, 8-token GEMVs, cuBLAS

// A template so that builds without CUDA (where the op tests below are uninstantiated
// templates too) never reference the GPU helpers.
template <class Unused = void>
void compare_quant_linear(DType dt, WeightFormat f, uint32_t seed) {
  std::mt19937 rng(seed);
  Backend &cpu = cpu_backend(), &gpu = gpu_backend(dt);
  for (const QuantShape& s : kQuantShapes) {
    const auto w = random_values(size_t(s.N * s.K), rng, -0.1f, 0.1f);
    LinearWeight cw = quantize_weight(host_from(w, DType::F32, {s.N, s.K}), f);
    if (s.bias) cw.bias = host_from(random_values(size_t(s.N), rng), DType::F32, {s.N});
    const LinearWeight gw = gpu.upload_linear(cw);
    ASSERT_EQ(gw.weight.dtype, cw.weight.dtype);  // no conversion of packed weights
    ASSERT_EQ(gw.scales.dtype, DType::F32);
    for (int64_t M : kQuantTokens) {
      if (s.N * s.K > (int64_t(1) << 24) && M > 17) continue;  // keep the big shape quick
      const auto x = round_to(random_values(size_t(M * s.K), rng), dt);
      Tensor want = cpu.alloc(DType::F32, {M, s.N});
      cpu.linear(host_from(x, DType::F32, {M, s.K}), cw, want);
      const auto ref = values_of(cpu, want);
      for (const char* gemv : {"auto", "fma"})
      for (DType out : {DType::F32, dt}) {
        setenv("TESSERA_QUANT_GEMV", gemv, 1);
        Tensor got = gpu_poisoned(gpu, out, {M, s.N});
        gpu.linear(gpu_from(x, dt, {M, s.K}), gw, got);
        unsetenv("TESSERA_QUANT_GEMV");
        EXPECT_LT(rel_error(values_of(gpu, got), ref), tolerance(dt))
            << weight_format_name(f) << " M " << M << " K " << s.K << " N " << s.N << " out "
            << dtype_name(out) << " gemv " << gemv;
      }
    }
  }
}

TESSERA_CUDA_OP_TEST(linear_int8) { compare_quant_linear(dt, WeightFormat::Int8, 21); }
TESSERA_CUDA_OP_TEST(linear_int4) { compare_quant_linear(dt, WeightFormat::Int4, 22); }

class CudaQuantPerplexity
    : public ::testing::TestWithParam<std::tuple<WeightFormat, DType>> {};

#ifdef TESSERA_HAVE_CUDA
double perplexity_on(Backend& b, WeightFormat f, WeightFormat lm_head,
                     const std::vector<int32_t>& ids, int64_t window,
                     EmbeddingPlacement embeddings = EmbeddingPlacement::Device) {
  const std::string dir = testdata_dir() + "/models/TinyStories-656K";
  auto comm = make_single_comm();
  const ModelConfig cfg = load_model_config(dir);
  auto src = open_checkpoint_source(dir);
  Model m(cfg, load_model_weights(*src, cfg, b, comm->world(), f, lm_head, embeddings), b,
          *comm);
  return evaluate_perplexity(m, ids, window).perplexity();
}
#endif

// --embeddings host: the same forward pass with the table read from pinned host memory (the
// tied model needs its int8 lm_head): the same values, so the same perplexity, bit for bit.
TEST(CudaEmbeddingsHost, SamePerplexityAsTheDeviceTable) {
  TESSERA_REQUIRE_GPU();
  TESSERA_REQUIRE_TESTDATA();
#ifdef TESSERA_HAVE_CUDA
  const auto g = nlohmann::json::parse(
      read_file(testdata_dir() + "/perplexity/TinyStories-656K.ppl.json"));
  const auto ids = g["ids"].get<std::vector<int32_t>>();
  for (DType dt : {DType::F16, DType::BF16}) {
    Backend& b = gpu_backend(dt);
    const double device = perplexity_on(b, WeightFormat::Int4, WeightFormat::Int8, ids, 256);
    const double host = perplexity_on(b, WeightFormat::Int4, WeightFormat::Int8, ids, 256,
                                      EmbeddingPlacement::Host);
    EXPECT_EQ(host, device) << dtype_name(dt);
  }
#endif
}

TEST_P(CudaQuantPerplexity, TinyStoriesNearTheCpu) {
  TESSERA_REQUIRE_GPU();
  TESSERA_REQUIRE_TESTDATA();
#ifdef TESSERA_HAVE_CUDA
  const auto [f, dt] = GetParam();
  const auto g = nlohmann::json::parse(
      read_file(testdata_dir() + "/perplexity/TinyStories-656K.ppl.json"));
  const auto ids = g["ids"].get<std::vector<int32_t>>();
  // Each with lm_head as stored and int8 (--lm-head int8: the same kernels over [V, H]).
  for (WeightFormat lm_head : {WeightFormat::Dense, WeightFormat::Int8}) {
    const double cpu = perplexity_on(cpu_backend(), f, lm_head, ids, 256);
    const double gpu = perplexity_on(gpu_backend(dt), f, lm_head, ids, 256);
    // 16-bit activations move the perplexity by well under 1% on this model.
    EXPECT_NEAR(gpu, cpu, 0.01 * cpu) << weight_format_name(f) << " " << dtype_name(dt)
                                      << " lm_head " << weight_format_name(lm_head);
  }
#endif
}

INSTANTIATE_TEST_SUITE_P(
    Formats, CudaQuantPerplexity,
    ::testing::Combine(::testing::Values(WeightFormat::Int8, WeightFormat::Int4),
                       ::testing::Values(DType::F16, DType::BF16)),
    [](const auto& info) {
      return std::string(weight_format_name(std::get<0>(info.param))) + "_" +
             dtype_name(std::get<1>(info.param));
    });

}  // namespace
}  // namespace tessera::test
