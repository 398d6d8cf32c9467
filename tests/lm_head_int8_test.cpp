// --lm-head int8: lm_head quantized per output row at load (runtime/quant.h's int8 RTN).
// The plan counts it (numbers computed here by hand from the formulas in
// runtime/memory_plan.h), the loader makes it (a tied model keeps its table and adds the int8
// copy), the logits equal those of a dense lm_head holding the dequantized values, and the
// CLI takes the flag and its config key.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/memory_plan.h"
#include "runtime/quant.h"
#include "runtime/weights.h"
#include "tests/cli_util.h"
#include "tests/model_test_util.h"
#include "tests/qwen7b_plan_numbers.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

using namespace qwen7b;

TEST(LmHeadInt8, PlanOfTheInt4SevenBOnT4) {
  TESSERA_REQUIRE_TESTDATA();
  PlanRequest r = qwen7b_on(*known_gpu("t4"));
  r.weights = WeightChoice::INT4;
  r.lm_head_int8 = true;
  const Plan p = make_plan(r);
  const WeightBytes& w = p.ranks.at(0).weights;
  EXPECT_EQ(w.embeddings, V * H * 2);  // the lookup table stays fp16
  EXPECT_EQ(w.lm_head, kInt8LmHead);
  EXPECT_EQ(w.total(), V * H * 2 + kInt8LmHead + L * kInt4Layer + H * 4);
  EXPECT_EQ(w.total(), 5154471936);
  EXPECT_EQ(p.ranks[0].reserve.dequant_scratch, kDequantScratch);
  const int64_t blocks = (14495514624 - w.total() - kWorkspace - kReserveTp1 - kDequantScratch) /
                         (16 * 57344);
  EXPECT_EQ(blocks, 9164);  // 8571 with a fp16 lm_head: ~9,500 more tokens of KV cache
  EXPECT_EQ(p.kv_blocks, blocks);
  EXPECT_EQ(p.max_concurrent_at_max_len, 4);
  const nlohmann::ordered_json j = plan_json(p, "qwen");
  EXPECT_EQ(j["lm_head"], "int8");
  EXPECT_EQ(j["weights_bytes"]["lm_head"], kInt8LmHead);
  const std::string table = plan_table(p, "qwen");
  EXPECT_NE(table.find("weights int4 (lm_head int8)"), std::string::npos) << table;
  EXPECT_NE(table.find("(int8, F32 row scales)"), std::string::npos) << table;
}

TEST(LmHeadInt8, DenseWeightsGetTheLmHeadScratch) {
  TESSERA_REQUIRE_TESTDATA();
  PlanRequest r = qwen7b_on(*known_gpu("a100-40g"));
  EXPECT_EQ(make_plan(r).ranks.at(0).reserve.dequant_scratch, 0);
  r.lm_head_int8 = true;
  const Plan p = make_plan(r);
  EXPECT_EQ(p.weights, WeightChoice::BF16);
  EXPECT_EQ(p.ranks.at(0).reserve.dequant_scratch, kDequantScratch);  // bf16: 2 bytes too
  EXPECT_EQ(p.ranks[0].weights.lm_head, kInt8LmHead);
}

TEST(LmHeadInt8, TiedModelCountsTheTableAndTheCopy) {
  TESSERA_REQUIRE_TESTDATA();
  PlanRequest r;
  r.model = load_model_config(testdata_dir() + "/models/TinyStories-656K");  // tied, H 128
  ASSERT_TRUE(r.model.tie_word_embeddings);
  r.model.vocab_size = 2047;  // split unevenly over 2 ranks: 1024 and 1023 rows
  r.device = *known_gpu("l4");
  r.tp = 2;
  r.lm_head_int8 = true;
  const Plan p = make_plan(r);
  ASSERT_EQ(p.ranks.size(), 2u);
  EXPECT_EQ(p.ranks[0].weights.embeddings, 1024 * 128 * 2);  // F32 stored: bf16 on an L4
  EXPECT_EQ(p.ranks[0].weights.lm_head, 1024 * 128 + 1024 * 4);
  EXPECT_EQ(p.ranks[1].weights.lm_head, 1023 * 128 + 1023 * 4);
  EXPECT_NE(plan_table(p, "tiny").find("int8 copy of the tied embedding table"),
            std::string::npos);
}

TEST(LmHeadInt8, IsAnOptionWhenItAloneMakesTheModelFit) {
  TESSERA_REQUIRE_TESTDATA();
  // bf16 7B at 4096 tokens (256 blocks of 16 x 57344 bytes) on a card 200 MiB short.
  const int64_t weights = 2 * V * H * 2 + L * (kProjParams * 2 + kNormsBiases) + H * 4;
  const int64_t kv = 256 * 16 * 57344;
  PlanRequest r = qwen7b_on(
      PlanDevice{"custom", weights + kWorkspace + kReserveTp1 + kv - 200 * MiB, true, true});
  r.gpu_memory_utilization = 1.0;
  r.max_model_len = 4096;
  const Plan p = make_plan(r);
  EXPECT_FALSE(p.fits);
  bool found = false;
  for (const PlanOption& o : p.options) {
    if (o.change != "--lm-head int8") continue;
    found = true;
    EXPECT_TRUE(o.fits);
    EXPECT_EQ(o.max_model_len, 4096);
    EXPECT_EQ(o.weights_bytes_per_rank, weights - V * H * 2 + kInt8LmHead);
    // 200 MiB short; int8 saves V * H - 4V bytes and the scratch costs kDequantScratch.
    EXPECT_EQ(o.kv_blocks, (kv - 200 * MiB + V * H * 2 - kInt8LmHead - kDequantScratch) / (16 * 57344));
  }
  EXPECT_TRUE(found);
}

// The logits of an int8 lm_head equal those of a dense F32 lm_head holding its dequantized
// values (the fused kernel computes sum(q x) s, the reference sum((q s) x)).
void expect_int8_lm_head_equals_dequantized(const std::string& name) {
  const std::string dir = testdata_dir() + "/models/" + name;
  const ModelConfig cfg = load_model_config(dir);
  auto src = open_checkpoint_source(dir);
  std::unique_ptr<Backend> backend = make_cpu_backend(0);
  std::unique_ptr<Comm> comm = make_single_comm();
  ModelWeights q8 = load_model_weights(*src, cfg, *backend, comm->world(), WeightFormat::Dense,
                                       WeightFormat::Int8);
  ModelWeights dense = load_model_weights(*src, cfg, *backend, comm->world());
  ASSERT_EQ(q8.lm_head.format, WeightFormat::Int8);
  const int64_t V = cfg.vocab_size, H = cfg.hidden_size;
  EXPECT_EQ(q8.lm_head.scales.numel(), V);
  // Bytes: the int8 codes and scales replace a dense lm_head, or join a tied table.
  const int64_t dense_head = cfg.tie_word_embeddings ? 0 : dense.lm_head.weight.nbytes();
  EXPECT_EQ(int64_t(q8.bytes), int64_t(dense.bytes) - dense_head + V * H + V * 4);
  EXPECT_EQ(q8.embed.dtype, dense.embed.dtype);  // the lookup table is as stored

  const std::vector<float> deq = dequantize_weight(q8.lm_head);
  Tensor head = host_tensor(DType::F32, {V, H});
  std::copy(deq.begin(), deq.end(), head.ptr<float>());
  dense.lm_head = LinearWeight{};
  dense.lm_head.weight = head;
  Model a(cfg, std::move(q8), *backend, *comm), b(cfg, std::move(dense), *backend, *comm);
  const std::vector<int32_t> prompt = {1, 7, 100, 3, 250, 9, 42, 11, 5, 300, 17};
  const auto la = prefill_all_logits(a, prompt), lb = prefill_all_logits(b, prompt);
  ASSERT_EQ(la.size(), lb.size());
  for (size_t p = 0; p < la.size(); ++p) {
    float worst = 0;
    for (size_t i = 0; i < la[p].size(); ++i) worst = std::max(worst, std::fabs(la[p][i] - lb[p][i]));
    EXPECT_LE(worst, 1e-5f * max_abs(lb[p])) << name << " position " << p;
  }
  std::vector<int32_t> ida, idb;
  greedy_decode(a, prompt, 12, &ida);
  greedy_decode(b, prompt, 12, &idb);
  EXPECT_EQ(ida, idb) << name;
}

TEST(LmHeadInt8, LogitsEqualTheDequantizedHeadUntiedAndTied) {
  TESSERA_REQUIRE_TESTDATA();
  expect_int8_lm_head_equals_dequantized("tiny-llama");        // untied
  expect_int8_lm_head_equals_dequantized("TinyStories-656K");  // tied: an int8 copy
}

TEST(LmHeadInt8, Int4LmHeadIsRefused) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string dir = testdata_dir() + "/models/tiny-llama";
  const ModelConfig cfg = load_model_config(dir);
  auto src = open_checkpoint_source(dir);
  auto backend = make_cpu_backend(1);
  auto comm = make_single_comm();
  EXPECT_THROW(load_model_weights(*src, cfg, *backend, comm->world(), WeightFormat::Dense,
                                  WeightFormat::Int4),
               UserError);
}

TEST(LmHeadInt8, CommandLineAndConfigKey) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string model = testdata_dir() + "/models/TinyStories-656K";
  CliRun r = run_tessera({"generate", "--model", model, "--prompt-ids", "1,80,147",
                          "--max-tokens", "8", "--ignore-eos", "--lm-head", "int8", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(last_line(r.out))["ids"].size(), 8u) << r.out;
  r = run_tessera({"generate", "--model", model, "--prompt-ids", "1", "--lm-head", "int4"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--lm-head"), std::string::npos) << r.err;
  const std::string cfg = make_temp_dir("lmhead") + "/c.json";
  std::ofstream(cfg) << R"({"gpu": "t4", "weights": "int4", "lm-head": "int8"})";
  r = run_tessera({"plan", "--model-config", testdata_dir() + "/configs/qwen2.5-7b-instruct.json",
                   "--config", cfg, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(last_line(r.out));
  EXPECT_EQ(j["lm_head"], "int8");
  EXPECT_EQ(j["kv_blocks"], 9164);
  r = run_tessera({"plan", "--model-config", testdata_dir() + "/configs/qwen2.5-7b-instruct.json",
                   "--config", cfg, "--lm-head", "stored", "--json"});  // the flag wins
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(last_line(r.out))["kv_blocks"], 8571);
}

}  // namespace
}  // namespace tessera::test
