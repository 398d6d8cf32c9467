// The CPU forward pass against golden outputs of an independent float64 implementation
// (../shared/testdata/goldens, cross-checked with llama.cpp), for every golden model.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/sampling.h"
#include "runtime/generator.h"
#include "tests/model_test_util.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

using json = nlohmann::json;

const char* kModels[] = {"TinyStories-656K", "tiny-llama", "tiny-qwen2", "tiny-qwen2-tok",
                         "tiny-llama3-rope"};

class GoldenModel : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (!have_testdata()) GTEST_SKIP() << "test data not found at " << testdata_dir();
    const std::string name = GetParam();
    golden_ = json::parse(read_file(testdata_dir() + "/goldens/" + name + ".json"));
    model_ = load_cpu_model(testdata_dir() + "/models/" + name);
  }

  // The golden last-position logits of prompt p (inline, or in the .f32.bin side file).
  std::vector<float> golden_last_logits(size_t p) {
    const json& pr = golden_["prompts"][p];
    if (pr.contains("last_logits") && pr["last_logits"].is_array())
      return pr["last_logits"].get<std::vector<float>>();
    const int64_t V = model_.model->config().vocab_size;
    std::ifstream f(testdata_dir() + "/goldens/" + GetParam() + ".last_logits.f32.bin",
                    std::ios::binary);
    EXPECT_TRUE(bool(f)) << "missing last_logits side file";
    std::vector<float> v(static_cast<size_t>(V));
    f.seekg(std::streamoff(p * size_t(V) * 4));
    f.read(reinterpret_cast<char*>(v.data()), std::streamsize(V * 4));
    return v;
  }

  json golden_;
  CpuModel model_;
};

TEST_P(GoldenModel, LastLogitsMatch) {
  for (size_t p = 0; p < golden_["prompts"].size(); ++p) {
    const auto prompt = golden_["prompts"][p]["prompt_ids"].get<std::vector<int32_t>>();
    const std::vector<float> want = golden_last_logits(p);
    const auto rows = prefill_all_logits(*model_.model, prompt);
    const std::vector<float>& got = rows.back();
    ASSERT_EQ(got.size(), want.size());
    const float tol = 2e-5f * max_abs(want);
    float worst = 0;
    for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
    EXPECT_LE(worst, tol) << "prompt " << p << ": max |logit error| " << worst;
  }
}

TEST_P(GoldenModel, Top5AtEveryPosition) {
  for (size_t p = 0; p < golden_["prompts"].size(); ++p) {
    const json& pr = golden_["prompts"][p];
    const auto prompt = pr["prompt_ids"].get<std::vector<int32_t>>();
    const auto rows = prefill_all_logits(*model_.model, prompt);
    const float scale = max_abs(golden_last_logits(p));
    const auto ids = pr["top5"]["ids"].get<std::vector<std::vector<int32_t>>>();
    const auto vals = pr["top5"]["logits"].get<std::vector<std::vector<float>>>();
    ASSERT_EQ(ids.size(), prompt.size());
    for (size_t pos = 0; pos < prompt.size(); ++pos) {
      std::vector<int32_t> order(rows[pos].size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = int32_t(i);
      std::partial_sort(order.begin(), order.begin() + 5, order.end(), [&](int32_t a, int32_t b) {
        return rows[pos][size_t(a)] > rows[pos][size_t(b)];
      });
      for (size_t r = 0; r < 5; ++r) {
        // The golden logit of each top-5 id matches; the id's rank matters only where the
        // golden gaps around it are clear of rounding.
        EXPECT_NEAR(rows[pos][size_t(ids[pos][r])], vals[pos][r], 2e-5f * scale)
            << "prompt " << p << " position " << pos << " rank " << r;
        const float gap_up = r == 0 ? INFINITY : vals[pos][r - 1] - vals[pos][r];
        const float gap_down = r == 4 ? INFINITY : vals[pos][r] - vals[pos][r + 1];
        if (std::min(gap_up, gap_down) > 1e-4f * scale) {
          EXPECT_EQ(order[r], ids[pos][r]) << "prompt " << p << " position " << pos;
        }
      }
    }
  }
}

TEST_P(GoldenModel, GreedyIdsAndCachedLogitsMatchFullRecompute) {
  for (size_t p = 0; p < golden_["prompts"].size(); ++p) {
    const json& pr = golden_["prompts"][p];
    const auto prompt = pr["prompt_ids"].get<std::vector<int32_t>>();
    const auto want = pr["greedy_ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> got;
    const auto cached = greedy_decode(*model_.model, prompt, int(want.size()), &got);
    EXPECT_EQ(got, want) << "prompt " << p;
    // The same path without the cache: one pass over prompt + generated ids.
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), got.begin(), got.end() - 1);
    const auto full = prefill_all_logits(*model_.model, all);
    for (size_t s = 0; s < cached.size(); ++s) {
      const auto& ref = full[prompt.size() - 1 + s];
      const float tol = 1e-5f * max_abs(ref);
      float worst = 0;
      for (size_t i = 0; i < ref.size(); ++i)
        worst = std::max(worst, std::fabs(ref[i] - cached[s][i]));
      EXPECT_LE(worst, tol) << "prompt " << p << " step " << s;
    }
    // And against the golden top-5 logits along the greedy path.
    const auto gids = pr["greedy_top5"]["ids"].get<std::vector<std::vector<int32_t>>>();
    const auto gvals = pr["greedy_top5"]["logits"].get<std::vector<std::vector<float>>>();
    for (size_t s = 0; s < cached.size() && s < gids.size(); ++s) {
      const float tol = 2e-5f * max_abs(cached[s]);
      for (size_t r = 0; r < 5; ++r)
        EXPECT_NEAR(cached[s][size_t(gids[s][r])], gvals[s][r], tol)
            << "prompt " << p << " step " << s;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllGoldens, GoldenModel, ::testing::ValuesIn(kModels),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(TinyStories, StoryGoldenThroughGenerate) {
  TESSERA_REQUIRE_TESTDATA();
  const json g = json::parse(read_file(testdata_dir() + "/goldens/TinyStories-656K.story.json"));
  CpuModel m = load_cpu_model(testdata_dir() + "/models/TinyStories-656K");
  GenerateOptions opt;
  opt.max_tokens = int64_t(g["greedy_ids"].size());
  opt.sampling.temperature = 0.0f;
  opt.ignore_eos = true;
  GenerateResult r = generate(*m.model, g["prompt_ids"].get<std::vector<int32_t>>(), opt);
  EXPECT_EQ(r.ids, g["greedy_ids"].get<std::vector<int32_t>>());
}

}  // namespace
}  // namespace tessera::test
