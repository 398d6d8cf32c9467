// fp16's range on the GPU. Models trained in bf16 grow "massive activations": a few channels
// that one layer's down_proj makes huge, near or past fp16's 65504 in the Qwen2 family
// (runtime/model.cpp, reserve_workspace). The fixture: tiny-qwen2 with layer 0's up_proj
// scaled by 2^kUpShift and its down_proj by 2^kDownShift (powers of two: exact in bf16 and
// fp16), so that down_proj's outputs pass 65504 while every weight and every fp16 activation
// stays in range. On the CPU (every build) the test checks that the fixture does that; on a
// GPU computing in fp16 the logits must then match the CPU's F32 ones, as stored and with
// int8 / int4 weights (an fp16 projection output would be Inf, then NaN). Plus the rule for
// tessera's own fp16 stores: saturate at +-65504, never Inf; NaN stays NaN.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "runtime/quant.h"
#include "runtime/safetensors.h"
#include "runtime/safetensors_writer.h"
#include "tests/cuda_test_util.h"
#include "tests/model_test_util.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

constexpr int kUpShift = 6, kDownShift = 9;
constexpr float kHalfMax = 65504.0f;
const std::string kUp = "model.layers.0.mlp.up_proj.weight";
const std::string kDown = "model.layers.0.mlp.down_proj.weight";

// F32 copy of a bf16 tensor, times 2^shift.
std::vector<float> scaled_values(const Tensor& t, int shift) {
  std::vector<float> v(size_t(t.numel()));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = std::ldexp(bf16_to_f32(t.ptr<uint16_t>()[i]), shift);
  return v;
}

// The fixture checkpoint (written once per process) and its two scaled weights (F32).
struct Massive {
  std::string dir;
  std::vector<float> up, down;  // [I, H], [H, I]
};

const Massive& massive() {
  static const Massive m = [] {
    Massive r;
    const std::string src = testdata_dir() + "/models/tiny-qwen2";
    r.dir = make_temp_dir("fp16-range");
    std::filesystem::copy_file(src + "/config.json", r.dir + "/config.json");
    auto f = SafetensorsFile::open(src + "/model.safetensors");
    std::vector<NamedTensor> out;
    for (const auto& entry : f->tensors()) {
      Tensor t = f->view(entry.first);
      const int shift = entry.first == kUp ? kUpShift : entry.first == kDown ? kDownShift : 0;
      if (shift != 0) {
        if (t.dtype != DType::BF16) throw std::runtime_error(entry.first + " is not bf16");
        std::vector<float>& keep = entry.first == kUp ? r.up : r.down;
        keep = scaled_values(t, shift);
        Tensor s = host_tensor(DType::BF16, {t.dim(0), t.dim(1)});
        for (size_t i = 0; i < keep.size(); ++i) s.ptr<uint16_t>()[i] = f32_to_bf16(keep[i]);
        t = s;
      }
      out.push_back({entry.first, t});
    }
    write_safetensors(r.dir + "/model.safetensors", out);
    return r;
  }();
  return m;
}

// A prompt of 40 tokens: GPU prefill then takes the matrix-product paths (cuBLAS, and the
// dequantize-then-cuBLAS one for int8 / int4), decode the GEMV ones.
std::vector<int32_t> prompt() {
  const auto g = nlohmann::json::parse(read_file(testdata_dir() + "/goldens/tiny-qwen2.json"));
  for (const auto& p : g["prompts"])
    if (p["prompt_ids"].size() == 40) return p["prompt_ids"].get<std::vector<int32_t>>();
  throw std::runtime_error("tiny-qwen2 golden: no 40-token prompt");
}

// max over rows r and outputs j of |sum_k x[r, k] * w[j, k]|; x [rows, K], w [N, K].
float max_abs_product(const Tensor& x, const std::vector<float>& w) {
  const int64_t rows = x.dim(0), K = x.dim(1), N = int64_t(w.size()) / K;
  float m = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += double(x.ptr<float>()[r * K + k]) * w[size_t(j * K + k)];
      m = std::max(m, float(std::fabs(s)));
    }
  return m;
}

TEST(CudaFp16Range, FixtureHasDownProjOutputsPastFp16) {
  TESSERA_REQUIRE_TESTDATA();
  const Massive& f = massive();
  EXPECT_LT(max_abs(f.up), kHalfMax / 4);  // the weights themselves fit fp16
  EXPECT_LT(max_abs(f.down), kHalfMax / 4);
  CpuModel m = load_cpu_model(f.dir);
  float up_out = 0, act = 0, down_out = 0;
  m.model->set_activation_observer([&](int64_t layer, LinearInput site, const Tensor& x) {
    if (layer != 0) return;
    if (site == LinearInput::kMlp) up_out = max_abs_product(x, f.up);
    if (site == LinearInput::kMlpAct) {
      act = max_abs(std::vector<float>(x.ptr<float>(), x.ptr<float>() + x.numel()));
      down_out = max_abs_product(x, f.down);
    }
  });
  const auto logits = prefill_all_logits(*m.model, prompt());
  EXPECT_LT(up_out, kHalfMax / 4);    // up_proj's outputs fit fp16,
  EXPECT_LT(act, kHalfMax / 4);       // so does silu(gate) * up, down_proj's input,
  EXPECT_GT(down_out, 2 * kHalfMax);  // but down_proj's outputs do not
  for (const auto& row : logits)
    for (float v : row) ASSERT_TRUE(std::isfinite(v));  // the F32 reference stays finite
}

TEST(CudaFp16Range, GpuLogitsMatchCpuWithMassiveActivations) {
  TESSERA_REQUIRE_GPU();
  TESSERA_REQUIRE_TESTDATA();
#ifdef TESSERA_HAVE_CUDA
  const Massive& f = massive();
  const std::vector<int32_t> ids = prompt();
  for (WeightFormat wf : {WeightFormat::Dense, WeightFormat::Int8, WeightFormat::Int4}) {
    // Every prompt position (prefill), then 8 decode steps along the CPU's greedy path.
    CpuModel cpu = load_cpu_model(f.dir, CpuPrecision::Exact, wf);
    std::vector<int32_t> path;
    greedy_decode(*cpu.model, ids, 8, &path);
    auto want = prefill_all_logits(*cpu.model, ids);
    for (auto& row : teacher_forced(*cpu.model, ids, path)) want.push_back(std::move(row));
    for (DType dt : {DType::F16, DType::BF16}) {
      if (!gpu_computes_in(dt)) continue;
      SCOPED_TRACE(std::string(dtype_name(dt)) + ", weight format " + std::to_string(int(wf)));
      ModelOn gpu = load_model_on(gpu_backend(dt), f.dir, wf);
      auto got = prefill_all_logits(*gpu.model, ids);
      for (auto& row : teacher_forced(*gpu.model, ids, path)) got.push_back(std::move(row));
      ASSERT_EQ(got.size(), want.size());
      const float rel_tol = dt == DType::F16 ? 1e-2f : 2e-2f;  // as cuda_model_test's
      for (size_t s = 0; s < want.size(); ++s) {
        float worst = 0;
        for (size_t i = 0; i < want[s].size(); ++i)
          worst = std::max(worst, std::fabs(got[s][i] - want[s][i]));  // NaN fails below
        EXPECT_LE(worst, rel_tol * max_abs(want[s])) << "row " << s;
      }
    }
  }
#endif
}

// tessera's own kernels store fp16 saturated: silu_mul and the int8 GEMV (decode), whose F32
// outputs (the o_proj / down_proj path) keep the exact value. NaN is not hidden.
TEST(CudaFp16Range, OwnKernelsSaturateFp16Stores) {
  TESSERA_REQUIRE_GPU();
#ifdef TESSERA_HAVE_CUDA
  if (!gpu_computes_in(DType::F16)) GTEST_SKIP() << "no fp16 backend";
  Backend& gpu = gpu_backend(DType::F16);
  const std::vector<float> gate = {300, 300, 2, NAN}, up = {300, -300, 1, 1};
  Tensor act = gpu_poisoned(gpu, DType::F16, {1, 4});
  gpu.silu_mul(gpu_from(gate, DType::F16, {1, 4}), gpu_from(up, DType::F16, {1, 4}), act);
  const std::vector<float> a = values_of(gpu, act);
  EXPECT_EQ(a[0], kHalfMax);  // silu(300) * 300 = 90000
  EXPECT_EQ(a[1], -kHalfMax);
  EXPECT_NEAR(a[2], 2.0f / (1.0f + std::exp(-2.0f)), 2e-3);
  EXPECT_TRUE(std::isnan(a[3]));

  // Rows of int8 codes +-127 (scale 1) against x = 100: outputs of +-100 x 127 x 256.
  const int64_t K = 256;
  std::vector<float> w(size_t(2 * K), 127.0f);
  std::fill(w.begin() + K, w.end(), -127.0f);
  const Tensor host_w = host_from(w, DType::F32, {2, K});
  const LinearWeight q = gpu.upload_linear(quantize_weight(host_w, WeightFormat::Int8));
  const Tensor x = gpu_from(std::vector<float>(size_t(K), 100.0f), DType::F16, {1, K});
  Tensor y16 = gpu_poisoned(gpu, DType::F16, {1, 2}), y32 = gpu_poisoned(gpu, DType::F32, {1, 2});
  gpu.linear(x, q, y16);
  gpu.linear(x, q, y32);
  EXPECT_EQ(values_of(gpu, y16), (std::vector<float>{kHalfMax, -kHalfMax}));
  EXPECT_EQ(values_of(gpu, y32), (std::vector<float>{100.0f * 127 * K, -100.0f * 127 * K}));
#endif
}

}  // namespace
}  // namespace tessera::test
