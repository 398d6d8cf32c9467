// `tessera bench` through the real binary on a tiny config with dummy weights: the JSON has a
// prefill row per requested length (tokens/s, TFLOP/s) and a decode row per batch, all with
// positive numbers; --depth decodes from a cached context; bad row lists are one-line errors
// (exit 2); --precision's modes.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/cli_util.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

using json = nlohmann::json;

// 2 layers, hidden 64, GQA 4/2, vocab 256: runs in milliseconds.
std::string tiny_config() {
  const std::string path = make_temp_dir("bench") + "/config.json";
  std::ofstream(path) << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
    "max_position_embeddings": 256, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
    "tie_word_embeddings": false, "hidden_act": "silu", "torch_dtype": "float32"})";
  return path;
}

TEST(CliBench, JsonHasPrefillAndDecodeRows) {
  const CliRun r = run_tessera({"bench", "--load-format", "dummy", "--model-config",
                                tiny_config(), "--threads", "1", "-p", "16", "--prefill",
                                "32,512", "--batches", "1,4", "-n", "4", "-r", "1", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  json j;
  ASSERT_NO_THROW(j = json::parse(last_line(r.out))) << r.out;

  ASSERT_EQ(j["prefill"].size(), 3u) << j.dump();  // -p 16 and --prefill 32,512
  EXPECT_EQ(j["prefill"][0]["tokens"], 16);
  EXPECT_EQ(j["prefill"][1]["tokens"], 32);
  for (int i = 0; i < 2; ++i) {
    const json& row = j["prefill"][i];
    EXPECT_GT(row["tokens_per_s"].get<double>(), 0) << row.dump();
    EXPECT_GT(row["tflop_s"].get<double>(), 0) << row.dump();
    EXPECT_GT(row["flops"].get<double>(), 0) << row.dump();
  }
  EXPECT_EQ(j["prefill"][2]["tokens"], 512);  // beyond max_position_embeddings (256)
  EXPECT_TRUE(j["prefill"][2].contains("skipped")) << j["prefill"][2].dump();

  ASSERT_EQ(j["decode"].size(), 2u) << j.dump();
  EXPECT_EQ(j["decode"][0]["batch"], 1);
  EXPECT_EQ(j["decode"][1]["batch"], 4);
  for (const json& row : j["decode"]) {
    EXPECT_GT(row["tokens_per_s"].get<double>(), 0) << row.dump();
    EXPECT_EQ(row["steps"], 4);
    EXPECT_FALSE(row["cuda_graphs"].get<bool>());  // the CPU does not capture
  }
  EXPECT_GT(j["decode"][0]["roofline_fraction"].get<double>(), 0);
  // The pp/tg summary fields kept from before.
  EXPECT_EQ(j["prefill_tokens"], 16);
  EXPECT_GT(j["prefill_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["decode_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["decode_roofline_fraction"].get<double>(), 0);
  EXPECT_EQ(j["bandwidth_source"], "host");
}

// --depth: every decode row starts from that many cached tokens (its KV blocks say so), and
// the roofline counts the K/V bytes a batch-1 step reads: 2 layers x 2 kv heads x head_dim 16
// x (K and V) per context token, F32 (4 bytes each) or I8 (1 byte + a 4-byte scale per row).
TEST(CliBench, DepthStartsFromACachedContextAndCountsItsKvBytes) {
  const std::string cfg = tiny_config();
  for (const auto& [kv, per_token] : {std::pair<const char*, int64_t>{"fp32", 2 * 2 * 2 * 16 * 4},
                                      {"int8", 2 * 2 * 2 * (16 + 4)}}) {
    const CliRun r = run_tessera({"bench", "--load-format", "dummy", "--model-config", cfg,
                                  "--threads", "1", "-p", "0", "--prefill", "", "--batches",
                                  "1,3", "-n", "5", "-d", "100", "-r", "1", "--kv-cache", kv,
                                  "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    json j;
    ASSERT_NO_THROW(j = json::parse(last_line(r.out))) << r.out;
    EXPECT_EQ(j["depth"], 100);
    EXPECT_EQ(j["kv_bytes_per_context_token"], per_token) << kv;
    // Batch 1's steps attend to 101..105 tokens: 103 on average.
    EXPECT_DOUBLE_EQ(j["decode_kv_bytes_per_step"].get<double>(), 103.0 * double(per_token));
    ASSERT_EQ(j["decode"].size(), 2u) << j.dump();
    for (const json& row : j["decode"]) {
      EXPECT_EQ(row["depth"], 100);
      // 106 tokens per sequence (100 cached, 5 steps, the step's new token) in 16-token blocks.
      EXPECT_EQ(row["kv_blocks"], row["batch"].get<int64_t>() * 7) << row.dump();
      EXPECT_GT(row["tokens_per_s"].get<double>(), 0) << row.dump();
    }
  }
  const CliRun human = run_tessera({"bench", "--load-format", "dummy", "--model-config", cfg,
                                    "--threads", "1", "-p", "0", "--prefill", "", "--batches",
                                    "1", "-n", "2", "-d", "20", "-r", "1"});
  ASSERT_EQ(human.code, 0) << human.err;
  EXPECT_NE(human.out.find("decode tg2 @ d20"), std::string::npos) << human.out;
  // max_position_embeddings 256: a context of 250 + 6 steps does not fit.
  const CliRun bad = run_tessera({"bench", "--load-format", "dummy", "--model-config", cfg,
                                  "-d", "250", "-n", "6"});
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("--depth 250 + -n 6"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("max_position_embeddings (256)"), std::string::npos) << bad.err;
}

TEST(CliBench, HumanTableAndBadLists) {
  const std::string cfg = tiny_config();
  CliRun r = run_tessera({"bench", "--load-format", "dummy", "--model-config", cfg,
                          "--threads", "1", "-p", "8", "--prefill", "", "--batches", "2",
                          "-n", "2", "-r", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("pp8"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("batch 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("batch 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("roofline"), std::string::npos) << r.out;
  for (const char* bad : {"1,x", "0", "two"}) {
    r = run_tessera({"bench", "--load-format", "dummy", "--model-config", cfg, "--batches",
                     bad});
    EXPECT_EQ(r.code, 2) << bad << ": " << r.err;
    EXPECT_NE(r.err.find("--batches"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

// --precision: auto (the default) names its rule in the JSON's device; exact and fast theirs;
// anything else is a usage error (exit 2) that lists the choices.
TEST(CliBench, PrecisionDefaultsToAuto) {
  const std::string cfg = tiny_config();
  const std::vector<std::string> base = {"bench", "--load-format", "dummy", "--model-config",
                                         cfg, "--threads", "1", "-p", "0", "-n", "1", "-r",
                                         "1", "--weights", "int8", "--json"};
  const struct { const char* flag; const char* device; } cases[] = {
      {nullptr, "cpu (int8 activations for int8/int4 weights)"},
      {"auto", "cpu (int8 activations for int8/int4 weights)"},
      {"exact", "cpu"},
      {"fast", "cpu (fast: bf16 / int8 activations)"}};
  for (const auto& c : cases) {
    std::vector<std::string> args = base;
    if (c.flag) args.insert(args.end(), {"--precision", c.flag});
    const CliRun r = run_tessera(args);
    ASSERT_EQ(r.code, 0) << r.err;
    json j;
    ASSERT_NO_THROW(j = json::parse(last_line(r.out))) << r.out;
    EXPECT_EQ(j["device"], c.device) << (c.flag ? c.flag : "(default)");
  }
  std::vector<std::string> args = base;
  args.insert(args.end(), {"--precision", "int8"});
  const CliRun bad = run_tessera(args);
  EXPECT_EQ(bad.code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--precision"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("auto"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace tessera::test
