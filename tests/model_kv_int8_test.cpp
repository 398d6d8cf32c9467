// The int8 KV cache through the whole CPU model (every golden model in
// ../shared/testdata): logits with the int8 cache close to those with the F32 cache, greedy
// ids equal to the goldens, TinyStories' perplexity within +1% of the F32 cache's (issue 7
// item 6), and the cache's bytes as the memory plan counts them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "runtime/memory_plan.h"
#include "runtime/perplexity.h"
#include "tests/model_test_util.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

using json = nlohmann::json;

const char* kModels[] = {"TinyStories-656K", "tiny-llama", "tiny-qwen2", "tiny-qwen2-tok",
                         "tiny-llama3-rope"};

class KvInt8Model : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (!have_testdata()) GTEST_SKIP() << "test data not found at " << testdata_dir();
    golden_ = json::parse(read_file(testdata_dir() + "/goldens/" + GetParam() + ".json"));
    model_ = load_cpu_model(testdata_dir() + "/models/" + GetParam());
  }
  json golden_;
  CpuModel model_;
};

// ||a - b|| / ||b||.
double relative_rms(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

size_t argmax(const std::vector<float>& v) {
  return size_t(std::max_element(v.begin(), v.end()) - v.begin());
}

// The largest shift of a top-2 logit gap the int8 cache causes on these models is 0.13
// (measured along every golden path); where the golden margin is more than twice that, the
// int8 cache must pick the golden id.
constexpr double kClearMargin = 0.3;

TEST_P(KvInt8Model, LogitsCloseToTheF32CacheAndGreedyIdsMatchTheGolden) {
  Model& m = *model_.model;
  for (size_t p = 0; p < golden_["prompts"].size(); ++p) {
    SCOPED_TRACE(::testing::Message() << GetParam() << " prompt " << p);
    const json& pr = golden_["prompts"][p];
    const auto prompt = pr["prompt_ids"].get<std::vector<int32_t>>();
    const auto want = pr["greedy_ids"].get<std::vector<int32_t>>();
    const auto margins = pr["greedy_margins"].get<std::vector<double>>();
    // Prompt + golden continuation in one prefill: every position's logits, each cache
    // (prefill reads its own K/V back from the cache too, so they pass through int8).
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), want.begin(), want.end());
    m.set_kv_dtype(DType::F32);
    const auto f32 = prefill_all_logits(m, all);
    m.set_kv_dtype(DType::I8);
    const auto i8 = prefill_all_logits(m, all);
    // Each K/V element is rounded by up to s / 2 = max|row| / 254 (~0.3% RMS of the row's
    // scale); through the layers that becomes a measured <= 2% RMS of the logits on every
    // golden model (their perplexity moves far less: see below). Bound: 4%.
    double worst = 0;
    for (size_t r = 0; r < f32.size(); ++r) worst = std::max(worst, relative_rms(i8[r], f32[r]));
    std::printf("[ kv int8 ] %-18s prompt %zu: logits off by %.2e RMS (relative)\n", GetParam(),
                p, worst);
    EXPECT_LT(worst, 0.04);
    for (size_t s = 0; s < want.size(); ++s) {
      if (margins[s] > kClearMargin) {
        EXPECT_EQ(argmax(i8[prompt.size() - 1 + s]), size_t(want[s])) << "step " << s;
      }
    }
    // Decoding token by token through the int8 cache: the same quantized K/V as the prefill
    // above, so the same logits up to float rounding, and the golden ids until a near-tie.
    std::vector<int32_t> got;
    const auto cached = greedy_decode(m, prompt, int(want.size()), &got);
    for (size_t s = 0; s < want.size() && (s == 0 || got[s - 1] == want[s - 1]); ++s) {
      const auto& ref = i8[prompt.size() - 1 + s];
      float err = 0;
      for (size_t i = 0; i < ref.size(); ++i) err = std::max(err, std::fabs(cached[s][i] - ref[i]));
      EXPECT_LE(err, 1e-5f * max_abs(ref)) << "step " << s;
      if (margins[s] < kClearMargin) break;
      EXPECT_EQ(got[s], want[s]) << "step " << s;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllGoldens, KvInt8Model, ::testing::ValuesIn(kModels),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(KvInt8, PerplexityWithinOnePercentOfTheF32Cache) {
  TESSERA_REQUIRE_TESTDATA();
  const json g =
      json::parse(read_file(testdata_dir() + "/perplexity/TinyStories-656K.ppl.json"));
  const auto ids = g["ids"].get<std::vector<int32_t>>();
  const int64_t window = g["window"].get<int64_t>();
  CpuModel m = load_cpu_model(testdata_dir() + "/models/TinyStories-656K");
  const double f32 = evaluate_perplexity(*m.model, ids, window).perplexity();
  m.model->set_kv_dtype(DType::I8);
  const PerplexityResult r = evaluate_perplexity(*m.model, ids, window);
  std::printf("[ perplexity ] KV fp32 %.4f  KV int8 %.4f  (%+.3f%%)\n", f32, r.perplexity(),
              100.0 * (r.perplexity() / f32 - 1.0));
  EXPECT_EQ(r.scored, g["fp32"]["scored_tokens"].get<int64_t>());
  EXPECT_LE(r.perplexity(), 1.01 * f32);
  // The F32 cache reproduces the golden (computed independently) as before.
  const double golden = g["fp32"]["perplexity"].get<double>();
  EXPECT_NEAR(f32, golden, 0.005 * golden);
}

TEST(KvInt8, CacheBytesAreWhatTheMemoryPlanCounts) {
  TESSERA_REQUIRE_TESTDATA();
  CpuModel m = load_cpu_model(testdata_dir() + "/models/tiny-qwen2");
  const ModelConfig& c = m.model->config();
  m.model->set_kv_dtype(DType::I8);
  const KvCacheShape s = m.model->kv_shape(3, 16);
  // Per block: K and V, each layers x kv heads x 16 tokens x (head_dim int8 + one F32 scale).
  EXPECT_EQ(s.bytes_per_block(), 2 * c.num_layers * c.num_kv_heads * 16 * (c.head_dim + 4));
  KvCache kv(m.model->backend(), s);
  int64_t held = 0;
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (const Tensor* t : {&kv.layer(l).k, &kv.layer(l).v, &kv.layer(l).k_scale,
                            &kv.layer(l).v_scale})
      held += int64_t(t->nbytes());
  EXPECT_EQ(held, 3 * s.bytes_per_block());
  // And the plan's bytes per token for an int8 cache on the host.
  PlanRequest req;
  req.model = c;
  req.device = host_device();
  req.kv = KvDtype::INT8;
  EXPECT_EQ(make_plan(req).kv_bytes_per_token * 16, s.bytes_per_block());
}

TEST(KvInt8, TheCpuRefusesHalfPrecisionCaches) {
  TESSERA_REQUIRE_TESTDATA();
  CpuModel m = load_cpu_model(testdata_dir() + "/models/tiny-llama");
  EXPECT_THROW(m.model->set_kv_dtype(DType::F16), std::invalid_argument);
  EXPECT_THROW(m.model->set_kv_dtype(DType::BF16), std::invalid_argument);
  EXPECT_EQ(m.model->kv_dtype(), DType::F32);
  m.model->set_kv_dtype(DType::I8);
  EXPECT_EQ(m.model->kv_shape(1, 16).dtype, DType::I8);
}

}  // namespace
}  // namespace tessera::test
