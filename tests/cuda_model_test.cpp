// The whole model on the CUDA backend against the CPU backend, teacher-forced along the
// golden greedy path of every golden model (../shared/testdata/goldens): at each of the
// steps, feed the golden id whatever the GPU would pick, and compare the step's logits with
// the CPU's (max error within tol x max|logit|) and the argmax wherever the golden margin
// between the first two candidates exceeds that tolerance. fp16 and bf16, each with the KV
// cache in the compute dtype and in int8 (both backends); skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "kernels/sampling.h"
#include "runtime/sequence.h"
#include "runtime/weights.h"
#include "tests/cuda_test_util.h"
#include "tests/model_test_util.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

using json = nlohmann::json;

const char* kGoldenModels[] = {"TinyStories-656K", "tiny-llama", "tiny-qwen2", "tiny-qwen2-tok",
                               "tiny-llama3-rope"};

#ifdef TESSERA_HAVE_CUDA
// The gap between the largest and second-largest value.
float top_margin(const std::vector<float>& v) {
  float a = -INFINITY, b = -INFINITY;
  for (float x : v) {
    if (x > a) { b = a; a = x; } else if (x > b) { b = x; }
  }
  return a - b;
}
#endif

class CudaModel : public ::testing::TestWithParam<std::tuple<const char*, DType, bool>> {};

TEST_P(CudaModel, TeacherForcedLogitsMatchCpu) {
  TESSERA_REQUIRE_GPU();
  TESSERA_REQUIRE_TESTDATA();
#ifdef TESSERA_HAVE_CUDA
  const std::string name = std::get<0>(GetParam());
  const DType dt = std::get<1>(GetParam());
  const json golden = json::parse(read_file(testdata_dir() + "/goldens/" + name + ".json"));
  const std::string dir = testdata_dir() + "/models/" + name;
  CpuModel cpu = load_cpu_model(dir);
  ModelOn gpu = load_model_on(gpu_backend(dt), dir);
  if (std::get<2>(GetParam())) {  // int8 KV cache on both
    cpu.model->set_kv_dtype(DType::I8);
    gpu.model->set_kv_dtype(DType::I8);
  }
  // Outputs pass through ~2 x layers roundings in the compute dtype (bf16 has 8 bits).
  const float rel_tol = dt == DType::F16 ? 1e-2f : 2e-2f;
  for (size_t p = 0; p < golden["prompts"].size(); ++p) {
    const json& pr = golden["prompts"][p];
    const auto prompt = pr["prompt_ids"].get<std::vector<int32_t>>();
    const auto ids = pr["greedy_ids"].get<std::vector<int32_t>>();
    const auto want = teacher_forced(*cpu.model, prompt, ids);
    const auto got = teacher_forced(*gpu.model, prompt, ids);
    ASSERT_EQ(got.size(), want.size());
    for (size_t s = 0; s < want.size(); ++s) {
      const float tol = rel_tol * max_abs(want[s]);
      float worst = 0;
      for (size_t i = 0; i < want[s].size(); ++i)
        worst = std::max(worst, std::fabs(got[s][i] - want[s][i]));  // NaN fails below
      EXPECT_LE(worst, tol) << name << " " << dtype_name(dt) << " prompt " << p << " step " << s;
      if (top_margin(want[s]) > 2 * tol) {
        EXPECT_EQ(argmax_cpu(got[s].data(), int64_t(got[s].size())), ids[s])
            << name << " " << dtype_name(dt) << " prompt " << p << " step " << s;
      }
    }
  }
#endif
}

INSTANTIATE_TEST_SUITE_P(
    AllGoldens, CudaModel,
    ::testing::Combine(::testing::ValuesIn(kGoldenModels),
                       ::testing::Values(DType::F16, DType::BF16), ::testing::Bool()),
    [](const auto& info) {
      std::string n = std::get<0>(info.param);
      for (char& c : n)
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
      return n + "_" + dtype_name(std::get<1>(info.param)) +
             (std::get<2>(info.param) ? "_kv_int8" : "");
    });

}  // namespace
}  // namespace tessera::test
