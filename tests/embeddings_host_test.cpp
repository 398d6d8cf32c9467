// --embeddings host: the embedding table in pinned host memory on a GPU (read by the lookup
// over PCIe), not on the card. The plan moves its bytes off the card (numbers computed here
// by hand from runtime/memory_plan.h), offers it when it alone makes a model fit, refuses a
// tied model with a stored lm_head (plan, loader and CLI), and the CPU backend's forward pass
// is unchanged by it. On a GPU, tests/cuda_quant_test.cpp compares the logits of both
// placements.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/memory_plan.h"
#include "runtime/weights.h"
#include "tests/cli_util.h"
#include "tests/model_test_util.h"
#include "tests/qwen7b_plan_numbers.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

using namespace qwen7b;

TEST(EmbeddingsHost, PlanOfTheInt4SevenBOnT4) {
  TESSERA_REQUIRE_TESTDATA();
  PlanRequest r = qwen7b_on(*known_gpu("t4"));
  r.weights = WeightChoice::INT4;
  r.lm_head_int8 = true;
  r.embeddings_host = true;
  const Plan p = make_plan(r);
  const WeightBytes& w = p.ranks.at(0).weights;
  EXPECT_EQ(w.embeddings, 0);
  EXPECT_EQ(w.embeddings_in_host, kTable16);  // fp16, as it would be on the card
  EXPECT_EQ(w.lm_head, kInt8LmHead);
  EXPECT_EQ(w.total(), kInt8LmHead + L * kInt4Layer + H * 4);
  EXPECT_EQ(w.total(), 4064477184);
  const int64_t blocks =
      (kT4Usable - w.total() - kWorkspace - kReserveTp1 - kDequantScratch) / kKvBlock16;
  EXPECT_EQ(blocks, 10352);  // 9164 with the table on the card: 19,008 more tokens
  EXPECT_EQ(p.kv_blocks, blocks);
  EXPECT_EQ(p.max_concurrent_at_max_len, 5);  // of 32768 tokens (2048 blocks each)
  const nlohmann::ordered_json j = plan_json(p, "qwen");
  EXPECT_EQ(j["embeddings"], "host");
  EXPECT_EQ(j["weights_bytes"]["embeddings"], 0);
  EXPECT_EQ(j["weights_bytes"]["embeddings_in_host"], kTable16);
  EXPECT_EQ(j["weights_bytes_per_rank"], 4064477184);
  const std::string table = plan_table(p, "qwen");
  EXPECT_NE(table.find("weights int4 (lm_head int8, embeddings in host memory)"),
            std::string::npos) << table;
  EXPECT_NE(table.find("(in pinned host memory: 1039.5 MiB)"), std::string::npos) << table;
}

TEST(EmbeddingsHost, TensorParallelRanksEachKeepTheirRows) {
  TESSERA_REQUIRE_TESTDATA();
  PlanRequest r = qwen7b_on(*known_gpu("t4"));
  r.tp = 2;
  r.embeddings_host = true;  // untied: no int8 lm_head needed
  const Plan p = make_plan(r);
  for (const RankPlan& rp : p.ranks) {
    EXPECT_EQ(rp.weights.embeddings, 0);
    EXPECT_EQ(rp.weights.embeddings_in_host, V / 2 * H * 2);
    EXPECT_EQ(rp.weights.lm_head, V / 2 * H * 2);  // stored lm_head stays on the card
  }
}

TEST(EmbeddingsHost, IsAnOptionWhenItAloneMakesTheModelFit) {
  TESSERA_REQUIRE_TESTDATA();
  // bf16 7B at 4096 tokens (256 blocks) on a card 200 MiB short.
  const int64_t weights = 2 * kTable16 + L * (kProjParams * 2 + kNormsBiases) + H * 4;
  const int64_t kv = 256 * kKvBlock16;
  PlanRequest r = qwen7b_on(
      PlanDevice{"custom", weights + kWorkspace + kReserveTp1 + kv - 200 * MiB, true, true});
  r.gpu_memory_utilization = 1.0;
  r.max_model_len = 4096;
  const Plan p = make_plan(r);
  ASSERT_FALSE(p.fits);
  int found = 0;
  for (const PlanOption& o : p.options) {
    if (o.change != "--embeddings host") continue;
    ++found;
    EXPECT_TRUE(o.fits);
    EXPECT_EQ(o.max_model_len, 4096);
    EXPECT_EQ(o.weights_bytes_per_rank, weights - kTable16);
    EXPECT_EQ(o.kv_blocks, (kv - 200 * MiB + kTable16) / kKvBlock16);  // no scratch needed
  }
  EXPECT_EQ(found, 1);
  // The CPU backend has nothing to move: the option is not offered, the flag only noted.
  PlanRequest cpu = r;
  cpu.device = PlanDevice{"host", r.device.total_bytes, false, false};
  for (const PlanOption& o : make_plan(cpu).options)
    EXPECT_EQ(o.change.find("--embeddings"), std::string::npos) << o.change;
  cpu.embeddings_host = true;
  const Plan on_cpu = make_plan(cpu);
  EXPECT_EQ(on_cpu.ranks.at(0).weights.embeddings, V * H * 2);  // bf16 as stored, on the host
  EXPECT_EQ(on_cpu.ranks[0].weights.embeddings_in_host, 0);
  ASSERT_FALSE(on_cpu.notes.empty());
  EXPECT_NE(on_cpu.notes.back().find("--embeddings host"), std::string::npos);
}

TEST(EmbeddingsHost, TiedModelNeedsAnInt8LmHead) {
  TESSERA_REQUIRE_TESTDATA();
  PlanRequest r;
  r.model = load_model_config(testdata_dir() + "/configs/qwen2.5-0.5b-instruct.json");
  ASSERT_TRUE(r.model.tie_word_embeddings);
  r.device = *known_gpu("t4");
  r.embeddings_host = true;
  try {
    make_plan(r);
    ADD_FAILURE() << "a tied model's table must stay on the card for a stored lm_head";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("--lm-head int8"), std::string::npos) << e.what();
  }
  r.lm_head_int8 = true;
  const Plan p = make_plan(r);
  const int64_t H05 = r.model.hidden_size, V05 = r.model.vocab_size;
  EXPECT_EQ(p.ranks.at(0).weights.embeddings, 0);
  EXPECT_EQ(p.ranks[0].weights.embeddings_in_host, V05 * H05 * 2);
  EXPECT_EQ(p.ranks[0].weights.lm_head, V05 * H05 + V05 * 4);  // the int8 copy on the card

  // Options for a tied model never move the table alone (the lm_head would read it), even
  // on a card 100 MiB short where moving its 259.7 MiB alone would fit.
  PlanRequest small = r;
  small.lm_head_int8 = false;
  small.embeddings_host = false;
  small.max_model_len = 4096;
  small.gpu_memory_utilization = 1.0;
  const RankPlan big = make_plan(small).ranks.at(0);  // T4: the sizes of the parts
  const int64_t kv = 256 * 16 * 12288;  // 4096 tokens: 24 layers x 2 kv heads x 64 x 2 x 2
  small.device = PlanDevice{"custom",
                            big.weights.total() + big.workspace + big.reserve.total() + kv -
                                100 * MiB,
                            true, true};
  const Plan short_plan = make_plan(small);
  ASSERT_FALSE(short_plan.fits);
  ASSERT_FALSE(short_plan.options.empty());  // int8 weights, for one
  for (const PlanOption& o : short_plan.options) {
    if (o.change.find("--embeddings host") == std::string::npos) continue;
    EXPECT_NE(o.change.find("--lm-head int8"), std::string::npos) << o.change;
  }

  const std::string dir = testdata_dir() + "/models/TinyStories-656K";  // tied
  const ModelConfig cfg = load_model_config(dir);
  auto src = open_checkpoint_source(dir);
  auto backend = make_cpu_backend(1);
  auto comm = make_single_comm();
  EXPECT_THROW(load_model_weights(*src, cfg, *backend, comm->world(), WeightFormat::Dense,
                                  WeightFormat::Dense, EmbeddingPlacement::Host),
               UserError);
}

// On the CPU every weight is in host memory already: the forward pass must not change.
TEST(EmbeddingsHost, CpuLogitsAreUnchanged) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string dir = testdata_dir() + "/models/tiny-llama";  // untied
  const ModelConfig cfg = load_model_config(dir);
  auto src = open_checkpoint_source(dir);
  std::unique_ptr<Backend> backend = make_cpu_backend(0);
  std::unique_ptr<Comm> comm = make_single_comm();
  ModelWeights host = load_model_weights(*src, cfg, *backend, comm->world(), WeightFormat::Dense,
                                         WeightFormat::Dense, EmbeddingPlacement::Host);
  ModelWeights device = load_model_weights(*src, cfg, *backend, comm->world());
  EXPECT_EQ(host.bytes, device.bytes);
  EXPECT_EQ(host.embed.device, Device::CPU);
  Model a(cfg, std::move(host), *backend, *comm), b(cfg, std::move(device), *backend, *comm);
  const std::vector<int32_t> prompt = {1, 7, 100, 3, 250, 9};
  EXPECT_EQ(prefill_all_logits(a, prompt), prefill_all_logits(b, prompt));
}

TEST(EmbeddingsHost, CommandLineAndConfigKey) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string model = testdata_dir() + "/models/TinyStories-656K";
  const std::vector<std::string> gen = {"generate", "--model", model, "--prompt-ids", "1,80,147",
                                        "--max-tokens", "8", "--ignore-eos", "--json",
                                        "--lm-head", "int8"};
  CliRun base = run_tessera(gen);
  ASSERT_EQ(base.code, 0) << base.err;
  std::vector<std::string> host = gen;
  host.insert(host.end(), {"--embeddings", "host"});
  CliRun r = run_tessera(host);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(last_line(r.out))["ids"],
            nlohmann::json::parse(last_line(base.out))["ids"]);
  // Tied with a stored lm_head: one line naming the fix, exit 2.
  r = run_tessera({"generate", "--model", model, "--prompt-ids", "1", "--embeddings", "host"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("add --lm-head int8"), std::string::npos) << r.err;
  r = run_tessera({"generate", "--model", model, "--prompt-ids", "1", "--embeddings", "gpu"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--embeddings"), std::string::npos) << r.err;

  const std::string cfg = make_temp_dir("embhost") + "/c.json";
  std::ofstream(cfg) << R"({"gpu": "t4", "weights": "int4", "lm-head": "int8",
                            "embeddings": "host"})";
  const std::string qwen = testdata_dir() + "/configs/qwen2.5-7b-instruct.json";
  r = run_tessera({"plan", "--model-config", qwen, "--config", cfg, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(last_line(r.out));
  EXPECT_EQ(j["embeddings"], "host");
  EXPECT_EQ(j["kv_blocks"], 10352);
  r = run_tessera({"plan", "--model-config", qwen, "--config", cfg, "--embeddings", "device",
                   "--json"});  // the flag wins
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(last_line(r.out));
  EXPECT_EQ(j["embeddings"], "device");
  EXPECT_EQ(j["kv_blocks"], 9164);
}

}  // namespace
}  // namespace tessera::test
