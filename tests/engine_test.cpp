// The serving engine on the CPU backend (fp32): continuous batching gives every request the
// tokens it would get alone, blocks always return to the pool, preemption loses nothing.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "model_test_util.h"
#include "runtime/engine.h"
#include "runtime/error.h"
#include "test_util.h"

namespace tessera {
namespace {

using test::testdata_dir;

struct Outcome {
  std::vector<int32_t> ids;
  FinishEvent finish;
  bool finished = false;
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::have_testdata()) GTEST_SKIP() << "test data not found at " << testdata_dir();
    m_ = test::load_cpu_model(testdata_dir() + "/models/TinyStories-656K");
  }
  EngineConfig config(int64_t blocks, int64_t max_seqs = 16, int64_t max_tokens = 2048) {
    EngineConfig c;
    c.scheduler = {max_seqs, max_tokens, 16};
    c.num_blocks = blocks;
    c.max_model_len = 512;
    return c;
  }
  // Greedy request; its outcome lands in outcomes[key].
  EngineRequest request(std::vector<int32_t> prompt, int64_t max_tokens,
                        std::map<int, Outcome>& outcomes, int key) {
    EngineRequest r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    r.sampling.temperature = 0.0f;
    r.on_token = [&outcomes, key](const SampledToken& t) {
      outcomes[key].ids.push_back(t.id);
      return false;
    };
    r.on_finish = [&outcomes, key](const FinishEvent& ev) {
      EXPECT_FALSE(outcomes[key].finished) << "finished twice";
      outcomes[key].finish = ev;
      outcomes[key].finished = true;
    };
    return r;
  }
  std::vector<int32_t> prompt(int len, int seed) {
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::vector<int32_t> p(static_cast<size_t>(len));
    for (auto& id : p) id = int32_t(rng() % uint32_t(m_.model->config().vocab_size));
    return p;
  }
  test::CpuModel m_;
};

// Each prompt alone, then all at once with chunked prefill and a small step budget: the same
// greedy tokens, and the pool is full again afterwards.
TEST_F(EngineTest, BatchedRequestsGiveTheTokensTheyGetAlone) {
  const int n = 6;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < n; ++i) prompts.push_back(prompt(5 + 23 * i, i));
  std::map<int, Outcome> alone, together;
  for (int i = 0; i < n; ++i) {
    Engine e(*m_.model, config(64));
    e.submit(request(prompts[size_t(i)], 20, alone, i));
    e.run_until_idle();
  }
  Engine e(*m_.model, config(256, 4, 48));  // 4 seqs, 48 tokens per step: chunks + queueing
  for (int i = 0; i < n; ++i) e.submit(request(prompts[size_t(i)], 20, together, i));
  e.run_until_idle();
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(together[i].finished);
    EXPECT_EQ(together[i].finish.reason, FinishReason::Length);
    EXPECT_EQ(together[i].finish.completion_tokens, 20);
    EXPECT_EQ(together[i].finish.prompt_tokens, int64_t(prompts[size_t(i)].size()));
    EXPECT_EQ(together[i].ids, alone[i].ids) << "request " << i;
  }
  EXPECT_EQ(e.blocks_used(), 0);
  EXPECT_EQ(e.num_alive(), 0);
}

// Seeded sampling (temperature, top-p, a penalty, logprobs) batched: the rows of a step are
// sampled in parallel (sample_rows), and each request still draws what it draws alone.
TEST_F(EngineTest, BatchedSeededSamplingGivesTheTokensEachGetsAlone) {
  const int n = 6;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < n; ++i) prompts.push_back(prompt(7 + 11 * i, 50 + i));
  auto sampled = [&](int i, std::map<int, Outcome>& outcomes) {
    EngineRequest r = request(prompts[size_t(i)], 24, outcomes, i);
    r.sampling.temperature = 0.9f;
    r.sampling.top_p = 0.95f;
    r.sampling.presence_penalty = 0.5f;
    r.sampling.logprobs = 2;
    r.sampling.seed = 1000 + uint64_t(i);
    return r;
  };
  std::map<int, Outcome> alone, together;
  for (int i = 0; i < n; ++i) {
    Engine e(*m_.model, config(64));
    e.submit(sampled(i, alone));
    e.run_until_idle();
  }
  Engine e(*m_.model, config(256));
  for (int i = 0; i < n; ++i) e.submit(sampled(i, together));
  e.run_until_idle();
  std::set<std::vector<int32_t>> distinct;
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(together[i].finished);
    EXPECT_EQ(together[i].ids, alone[i].ids) << "request " << i;
    distinct.insert(together[i].ids);
  }
  EXPECT_EQ(distinct.size(), size_t(n));  // the seeds and prompts differ, so do the draws
  EXPECT_EQ(e.blocks_used(), 0);
}

// A pool too small for all sequences at once forces preemption by recompute; every request
// still completes with exactly its solo tokens.
TEST_F(EngineTest, PreemptionRecomputesWithoutLosingARequest) {
  const int n = 5;
  std::map<int, Outcome> alone, tight;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < n; ++i) prompts.push_back(prompt(30, 100 + i));
  for (int i = 0; i < n; ++i) {
    Engine e(*m_.model, config(64));
    e.submit(request(prompts[size_t(i)], 40, alone, i));
    e.run_until_idle();
  }
  Engine e(*m_.model, config(10));  // each request needs 5 blocks by its end
  for (int i = 0; i < n; ++i) e.submit(request(prompts[size_t(i)], 40, tight, i));
  e.run_until_idle();
  EXPECT_GT(e.num_preemptions(), 0);
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(tight[i].finished);
    EXPECT_EQ(tight[i].ids, alone[i].ids) << "request " << i;
  }
  EXPECT_EQ(e.blocks_used(), 0);
}

TEST_F(EngineTest, AbortFreesBlocksAndReportsAbort) {
  std::map<int, Outcome> out;
  Engine e(*m_.model, config(64));
  e.start();
  const uint64_t a = e.submit(request(prompt(20, 1), 400, out, 0));
  e.submit(request(prompt(20, 2), 3, out, 1));
  e.abort(a);
  e.abort(987654);  // unknown: ignored
  for (int i = 0; i < 2000 && e.num_alive() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  e.stop();
  ASSERT_TRUE(out[0].finished);
  EXPECT_EQ(out[0].finish.reason, FinishReason::Abort);
  EXPECT_LT(out[0].ids.size(), 400u);
  EXPECT_EQ(out[1].finish.reason, FinishReason::Length);
  EXPECT_EQ(e.blocks_used(), 0);
}

TEST_F(EngineTest, StopCallbackStopTokenAndStopOnShutdown) {
  std::map<int, Outcome> out;
  Engine e(*m_.model, config(64));
  EngineRequest r = request(prompt(8, 3), 30, out, 0);
  r.on_token = [&out](const SampledToken& t) {  // a "stop string" after 3 tokens
    out[0].ids.push_back(t.id);
    return out[0].ids.size() == 3;
  };
  e.submit(std::move(r));
  e.run_until_idle();
  EXPECT_EQ(out[0].finish.reason, FinishReason::Stop);
  EXPECT_EQ(out[0].ids.size(), 3u);

  std::map<int, Outcome> solo;
  e.submit(request(prompt(8, 4), 10, solo, 0));
  e.run_until_idle();
  ASSERT_GE(solo[0].ids.size(), 5u);
  EngineRequest s = request(prompt(8, 4), 10, out, 1);
  s.stop_token_ids = {solo[0].ids[4]};
  e.submit(std::move(s));
  e.run_until_idle();
  EXPECT_EQ(out[1].finish.reason, FinishReason::Stop);
  EXPECT_EQ(out[1].finish.completion_tokens, 5);  // the stop token counts, is not emitted
  EXPECT_EQ(out[1].ids.size(), 4u);

  e.submit(request(prompt(8, 5), 10, out, 2));
  e.stop();  // never started: alive requests end with abort
  EXPECT_EQ(out[2].finish.reason, FinishReason::Abort);
  EXPECT_EQ(e.blocks_used(), 0);
}

TEST_F(EngineTest, CheckRejectsWhatCannotBeServed) {
  Engine e(*m_.model, config(8));
  EngineRequest r;
  EXPECT_NE(e.check(r), std::nullopt);  // empty prompt
  r.prompt = {1, 2, 3};
  r.max_tokens = 0;
  EXPECT_NE(e.check(r), std::nullopt);
  r.max_tokens = 510;  // 513 > max_model_len 512
  EXPECT_NE(e.check(r)->find("maximum context length is 512"), std::string::npos);
  r.max_tokens = 200;  // 13 blocks > 8
  EXPECT_NE(e.check(r)->find("KV blocks"), std::string::npos);
  r.max_tokens = 10;
  EXPECT_EQ(e.check(r), std::nullopt);
  r.prompt = {1, -4};
  EXPECT_NE(e.check(r)->find("outside the vocabulary"), std::string::npos);
  EXPECT_THROW(e.submit(r), UserError);
  EXPECT_EQ(e.num_alive(), 0);
}

}  // namespace
}  // namespace tessera
