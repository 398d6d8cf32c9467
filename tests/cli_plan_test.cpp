// `tessera plan` and `--config FILE` through the real binary: the table and the JSON for
// Qwen2.5-7B on a T4, every preset in configs/ fits its model, command-line flags override
// a preset, and bad input exits 2 with one line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/cli_util.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace tessera::test {
namespace {

using json = nlohmann::json;

std::string qwen7b() { return testdata_dir() + "/configs/qwen2.5-7b-instruct.json"; }
std::string preset(const std::string& name) {
  return std::string(TESSERA_SOURCE_DIR) + "/configs/" + name;
}

json plan_json(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"plan", "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  const CliRun r = run_tessera(args);
  EXPECT_EQ(r.code, 0) << r.err;
  json j;
  EXPECT_NO_THROW(j = json::parse(last_line(r.out))) << r.out << r.err;
  return j;
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = make_temp_dir("plan") + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// One line on stderr, exit 2, mentioning `needle`.
void expect_user_error(const std::vector<std::string>& args, const std::string& needle) {
  const CliRun r = run_tessera(args);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(CliPlan, SevenBOnT4TextTable) {
  TESSERA_REQUIRE_TESTDATA();
  CliRun r = run_tessera({"plan", "--model-config", qwen7b(), "--gpu", "t4"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("weights fp16"), std::string::npos) << r.out;  // bf16 on a T4
  EXPECT_NE(r.out.find("does not fit"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--weights int4: max-model-len 32768"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("57344"), std::string::npos) << r.out;  // KV bytes per token
  r = run_tessera({"plan", "--model-config", qwen7b(), "--gpu", "t4", "--weights", "int4"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("fits: max-model-len 32768"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("8571"), std::string::npos) << r.out;  // KV blocks (memory_plan_test)
}

TEST(CliPlan, JsonFields) {
  TESSERA_REQUIRE_TESTDATA();
  const json j = plan_json({"--model-config", qwen7b(), "--gpu", "t4", "--weights", "int4"});
  for (const char* k : {"fits", "max_model_len", "max_concurrent_at_max_len", "kv_blocks",
                        "weights_bytes_per_rank", "options", "weights_bytes", "ranks"})
    EXPECT_TRUE(j.contains(k)) << k << " missing from " << j.dump();
  EXPECT_TRUE(j["fits"].get<bool>());
  EXPECT_EQ(j["max_model_len"], 32768);
  const int64_t blocks = j["kv_blocks"];
  EXPECT_GT(blocks * 16, 100000);
  EXPECT_EQ(j["max_concurrent_at_max_len"], blocks / 2048);
  EXPECT_EQ(j["kv_bytes_per_token"], 57344);
  const json& w = j["weights_bytes"];
  EXPECT_EQ(w["embeddings"], int64_t(152064) * 3584 * 2);  // fp16 table
  EXPECT_EQ(w["embeddings"].get<int64_t>() + w["layers"].get<int64_t>() +
                w["lm_head"].get<int64_t>(),
            j["weights_bytes_per_rank"].get<int64_t>());
  ASSERT_EQ(j["ranks"].size(), 1u);

  // bf16 does not fit; every option names a change and fits on its own numbers.
  const json b = plan_json({"--model-config", qwen7b(), "--gpu", "t4"});
  EXPECT_FALSE(b["fits"].get<bool>());
  EXPECT_EQ(b["weights"], "fp16");
  bool int4 = false;
  for (const json& o : b["options"]) {
    EXPECT_TRUE(o["fits"].get<bool>()) << o.dump();
    EXPECT_GE(o["kv_blocks"].get<int64_t>(), o["max_model_len"].get<int64_t>() / 16);
    int4 |= o["change"] == "--weights int4";
  }
  EXPECT_TRUE(int4) << b["options"].dump();
}

TEST(CliPlan, AutoModesPrintTheDecision) {
  TESSERA_REQUIRE_TESTDATA();
  const CliRun r = run_tessera({"plan", "--model-config", qwen7b(), "--gpu", "t4", "--weights",
                                "auto", "--max-model-len", "auto"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("--weights auto:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("chose int8"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--max-model-len auto: 32768"), std::string::npos) << r.out;
}

TEST(CliPlan, TensorParallelRanksShareOneTable) {
  TESSERA_REQUIRE_TESTDATA();
  const CliRun r =
      run_tessera({"plan", "--model-config", qwen7b(), "--gpu", "t4", "--tp", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("ranks 0-1 (alike"), std::string::npos) << r.out;
  const json j = plan_json({"--model-config", qwen7b(), "--gpu", "t4", "--tp", "2"});
  ASSERT_EQ(j["ranks"].size(), 2u);
  EXPECT_EQ(j["ranks"][1]["vocab_rows"], 152064 / 2);
  EXPECT_EQ(j["kv_bytes_per_token"], 2 * 28 * 2 * 128 * 2);
}

// Every preset in configs/ is planned with the model it is for, and fits.
TEST(CliPlan, EveryPresetFits) {
  TESSERA_REQUIRE_TESTDATA();
  const std::map<std::string, std::string> model_of = {
      {"t4-7b-int4.json", "qwen2.5-7b-instruct.json"},
      {"t4x2-7b-fp16.json", "qwen2.5-7b-instruct.json"},
      {"a100-80g-x4-72b-bf16.json", "qwen2.5-72b-instruct.json"},
      {"cpu-dev.json", "qwen2.5-0.5b-instruct.json"},
  };
  int seen = 0;
  for (const auto& e : fs::directory_iterator(std::string(TESSERA_SOURCE_DIR) + "/configs")) {
    const std::string name = e.path().filename().string();
    ASSERT_TRUE(model_of.count(name)) << name << ": add it to this test's preset -> model map";
    const json j = plan_json({"--config", e.path().string(), "--model-config",
                              testdata_dir() + "/configs/" + model_of.at(name)});
    EXPECT_TRUE(j["fits"].get<bool>()) << name << ": " << j.dump();
    EXPECT_GE(j["max_concurrent_at_max_len"].get<int64_t>(), 1) << name;
    ++seen;
  }
  EXPECT_EQ(seen, int(model_of.size()));
  // The presets' own settings arrived: t4x2 plans two T4 ranks in fp16, the 72B four.
  json j = plan_json({"--config", preset("t4x2-7b-fp16.json"), "--model-config", qwen7b()});
  EXPECT_EQ(j["tp"], 2);
  EXPECT_EQ(j["weights"], "fp16");
  EXPECT_EQ(j["gpu"]["name"], "t4");
  j = plan_json({"--config", preset("a100-80g-x4-72b-bf16.json"), "--model-config",
                 testdata_dir() + "/configs/qwen2.5-72b-instruct.json"});
  EXPECT_EQ(j["tp"], 4);
  EXPECT_EQ(j["weights"], "bf16");
  EXPECT_EQ(j["max_num_batched_tokens"], 4096);
}

// Presets are shared: every command that takes --config accepts every preset's values (CLI11
// validates the options before it handles --help).
TEST(CliConfig, EveryPresetParsesForEveryCommand) {
  for (const auto& e : fs::directory_iterator(std::string(TESSERA_SOURCE_DIR) + "/configs"))
    for (const char* cmd : {"serve", "generate", "bench", "plan"}) {
      const CliRun r = run_tessera({cmd, "--config", e.path().string(), "--help"});
      EXPECT_EQ(r.code, 0) << cmd << " --config " << e.path() << ": " << r.err;
    }
}

TEST(CliConfig, CommandLineOverridesThePreset) {
  TESSERA_REQUIRE_TESTDATA();
  // The preset says int4 and tp 1; the command line says fp16 and tp 2.
  json j = plan_json({"--config", preset("t4-7b-int4.json"), "--model-config", qwen7b(),
                      "--weights", "fp16", "--tp=2"});
  EXPECT_EQ(j["weights"], "fp16");
  EXPECT_EQ(j["tp"], 2);
  EXPECT_EQ(j["max_num_seqs"], 16);  // still from the preset
  j = plan_json({"--model-config", qwen7b(), "--gpu", "a10g", "--config",
                 preset("t4-7b-int4.json")});
  EXPECT_EQ(j["gpu"]["name"], "a10g");  // the flag before --config wins too
  EXPECT_EQ(j["weights"], "int4");
}

TEST(CliConfig, GenerateTakesItsKeysAndSkipsOthers) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string cfg = write_temp("gen.json", R"({"description": "test",
      "max-tokens": 3, "temperature": 0, "ignore-eos": true, "json": true, "no-echo": false,
      "gpu": "t4", "max-num-seqs": 4})");
  const std::string model = testdata_dir() + "/models/TinyStories-656K";
  CliRun r = run_tessera({"generate", "--config", cfg, "--model", model, "--prompt-ids", "1,2"});
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(last_line(r.out));
  EXPECT_EQ(j["ids"].size(), 3u);
  EXPECT_NE(r.err.find("not used by generate: gpu, max-num-seqs"), std::string::npos) << r.err;
  r = run_tessera({"generate", "--model", model, "--prompt-ids", "1,2", "--max-tokens", "5",
                   "--config=" + cfg});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(last_line(r.out))["ids"].size(), 5u);
}

TEST(CliConfig, BadPresetsExit2) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string unknown = write_temp("unknown.json", R"({"gpu": "t4", "gpu-count": 2})");
  expect_user_error({"plan", "--config", unknown, "--model-config", qwen7b()}, "\"gpu-count\"");
  expect_user_error({"plan", "--config", unknown, "--model-config", qwen7b()}, unknown);
  expect_user_error({"plan", "--config", write_temp("bad.json", "{\"gpu\": "), "--model-config",
                     qwen7b()}, "invalid JSON");
  expect_user_error({"plan", "--config", "/nonexistent/preset.json", "--model-config", qwen7b()},
                    "/nonexistent/preset.json");
  expect_user_error({"plan", "--config", write_temp("list.json", "[1, 2]"), "--model-config",
                     qwen7b()}, "JSON object");
  expect_user_error({"plan", "--config", write_temp("flag.json", R"({"json": "yes"})"),
                     "--model-config", qwen7b()}, "true or false");
}

TEST(CliPlan, BadInputExits2) {
  TESSERA_REQUIRE_TESTDATA();
  expect_user_error({"plan", "--model-config", qwen7b(), "--gpu", "t5"}, "a100-80g");
  expect_user_error({"plan", "--model-config", qwen7b(), "--gpu", "t4", "--tp", "3"},
                    "valid tp sizes: 1, 2, 4");
  expect_user_error({"plan", "--model-config", qwen7b(), "--gpu", "t4",
                     "--gpu-memory-utilization", "1.5"}, "--gpu-memory-utilization");
  expect_user_error({"plan", "--model-config", qwen7b(), "--gpu", "t4",
                     "--gpu-memory-utilization", "0"}, "--gpu-memory-utilization");
  expect_user_error({"plan", "--gpu", "t4"}, "--model");
  expect_user_error({"plan", "--model-config", "/nonexistent/config.json", "--gpu", "t4"},
                    "/nonexistent/config.json");
  expect_user_error({"plan", "--model-config", qwen7b(), "--gpu", "t4", "--weights", "int3"},
                    "int3");
  expect_user_error({"plan", "--model-config", qwen7b(), "--gpu", "t4", "--max-model-len",
                     "99999"}, "max_position_embeddings");
}

}  // namespace
}  // namespace tessera::test
