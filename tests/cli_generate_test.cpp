// `tessera generate` through the real binary: the TinyStories story golden with --json,
// eos ending generation, seeded sampling, dummy weights, and a few more malformed inputs
// (exit 2, one stderr line naming the culprit).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/cli_util.h"
#include "tests/safetensors_writer.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace tessera::test {
namespace {

using json = nlohmann::json;

std::string story_model() { return testdata_dir() + "/models/TinyStories-656K"; }

json story_golden() {
  return json::parse(read_file(testdata_dir() + "/goldens/TinyStories-656K.story.json"));
}

std::string join_ids(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) {
    if (!s.empty()) s += ',';
    s += std::to_string(id);
  }
  return s;
}

json last_json(const CliRun& r) {
  try {
    return json::parse(last_line(r.out));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "last stdout line is not JSON: " << last_line(r.out) << "\nstderr: " << r.err;
    return json::object();
  }
}

void expect_one_line_error(const CliRun& r, const std::vector<std::string>& mentions) {
  EXPECT_EQ(r.code, 2) << "stderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
  EXPECT_EQ(r.out, "");
  for (const auto& m : mentions) EXPECT_NE(r.err.find(m), std::string::npos) << r.err;
}

}  // namespace

TEST(CliGenerate, StoryGoldenWithJson) {
  TESSERA_REQUIRE_TESTDATA();
  const json g = story_golden();
  const auto prompt = g["prompt_ids"].get<std::vector<int>>();
  const auto want = g["greedy_ids"].get<std::vector<int>>();
  const CliRun r = run_tessera({"generate", "--model", story_model(), "--prompt-ids",
                                join_ids(prompt), "--max-tokens", "40", "--temperature", "0",
                                "--ignore-eos", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = last_json(r);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["ids"].get<std::vector<int>>(), want);
  EXPECT_EQ(j["prompt_ids"].get<std::vector<int>>(), prompt);
  ASSERT_TRUE(j.contains("text"));
  EXPECT_TRUE(j["text"].is_string());
  for (const char* k : {"prefill_tokens_per_s", "decode_tokens_per_s"}) {
    ASSERT_TRUE(j.contains(k) && j[k].is_number()) << k << " in " << j.dump();
    EXPECT_GT(j[k].get<double>(), 0.0) << k;
  }
  // The model has a tokenizer: the text is the golden continuation.
  if (g.contains("continuation_text")) {
    EXPECT_EQ(j["text"].get<std::string>(), g["continuation_text"].get<std::string>());
  }
}

TEST(CliGenerate, EosEndsGenerationUnlessIgnored) {
  TESSERA_REQUIRE_TESTDATA();
  const json g = story_golden();
  const auto prompt = g["prompt_ids"].get<std::vector<int>>();
  const auto golden = g["greedy_ids"].get<std::vector<int>>();
  ASSERT_EQ(std::count(golden.begin(), golden.end(), 2), 0);
  const int max_tokens = 300;
  const CliRun r = run_tessera({"generate", "--model", story_model(), "--prompt-ids",
                                join_ids(prompt), "--max-tokens", std::to_string(max_tokens),
                                "--temperature", "0", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto ids = last_json(r)["ids"].get<std::vector<int>>();
  ASSERT_GE(ids.size(), golden.size());
  // Greedy: the first 40 are the golden ones (no eos among them).
  EXPECT_TRUE(std::equal(golden.begin(), golden.end(), ids.begin()));
  EXPECT_TRUE(ids.back() == 2 || int(ids.size()) == max_tokens) << "size " << ids.size();
  for (size_t i = 0; i + 1 < ids.size(); ++i) ASSERT_NE(ids[i], 2) << "generated past eos at " << i;
  if (ids.back() == 2 && int(ids.size()) < max_tokens) {
    // With --ignore-eos the same greedy path goes on past the eos.
    const CliRun r2 = run_tessera({"generate", "--model", story_model(), "--prompt-ids",
                                   join_ids(prompt), "--max-tokens",
                                   std::to_string(ids.size() + 5), "--temperature", "0",
                                   "--ignore-eos", "--json"});
    ASSERT_EQ(r2.code, 0) << r2.err;
    const auto ids2 = last_json(r2)["ids"].get<std::vector<int>>();
    EXPECT_EQ(ids2.size(), ids.size() + 5);
    EXPECT_TRUE(std::equal(ids.begin(), ids.end(), ids2.begin()));
  }
}

TEST(CliGenerate, SeededSamplingIsReproducible) {
  TESSERA_REQUIRE_TESTDATA();
  auto sample = [](const std::string& seed) {
    const CliRun r = run_tessera({"generate", "--model", story_model(), "--prompt-ids", "1,80,147",
                                  "--max-tokens", "24", "--temperature", "1.0", "--top-k", "40",
                                  "--seed", seed, "--ignore-eos", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    return last_json(r)["ids"].get<std::vector<int>>();
  };
  const auto a = sample("7"), b = sample("7"), c = sample("8");
  EXPECT_EQ(a.size(), 24u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c) << "different seeds gave the same 24 sampled tokens";
}

// Dummy weights (--load-format dummy) are covered by CliErrors.DummyWeightsRunAndEosStops.

TEST(CliGenerate, MoreMalformedInputs) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string m = story_model();
  auto gen = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"generate", "--model", m};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_tessera(args);
  };
  expect_one_line_error(gen({"--prompt-ids", "1,x"}), {"\"x\""});
  expect_one_line_error(gen({"--prompt-ids", "1,,2"}), {"--prompt-ids"});
  expect_one_line_error(gen({"--prompt-ids", "99999999999999999999"}), {"99999999999999999999"});
  expect_one_line_error(gen({"--prompt-ids", "2048"}), {"2048"});  // vocab is 0..2047
  expect_one_line_error(gen({"--prompt-ids", "1", "--max-tokens", "-5"}), {"max-tokens"});
  expect_one_line_error(gen({"--prompt-ids", "1", "--max-tokens", "3x"}), {"max-tokens"});
  expect_one_line_error(gen({"--prompt-ids", "1", "--no-such-flag"}), {"--no-such-flag"});
  expect_one_line_error(gen({"--prompt-ids", "1", "--temperature", "-1"}), {"temperature"});
  expect_one_line_error(gen({"--prompt-ids", "1", "--top-p", "0"}), {"top-p"});
  expect_one_line_error(gen({"--prompt-ids", "1", "--top-k", "-2"}), {"top-k"});
  // Exactly max_position_embeddings (512) prompt tokens leave no room to generate; 513 is over.
  std::string long_prompt = "1";
  for (int i = 1; i < 513; ++i) long_prompt += ",5";
  expect_one_line_error(gen({"--prompt-ids", long_prompt}), {"max_position_embeddings"});
}

TEST(CliGenerate, CheckpointErrorsNameFileAndTensor) {
  TESSERA_REQUIRE_TESTDATA();
  // A directory whose model.safetensors has a tensor with an unknown dtype and one whose
  // byte length disagrees with its shape: each error names the file and the tensor.
  const std::string dir = make_temp_dir("cligen");
  fs::copy_file(story_model() + "/config.json", dir + "/config.json");
  write_safetensors(dir + "/model.safetensors",
                    {{"lm_head.weight", "F32", {2048, 128}, std::string(4 * 10, '\0')}});
  expect_one_line_error(
      run_tessera({"generate", "--model", dir, "--prompt-ids", "1", "--max-tokens", "1"}),
      {"model.safetensors", "lm_head.weight"});
  write_safetensors(dir + "/model.safetensors",
                    {{"model.embed_tokens.weight", "Q4", {2, 2}, std::string(8, '\0')}});
  expect_one_line_error(
      run_tessera({"generate", "--model", dir, "--prompt-ids", "1", "--max-tokens", "1"}),
      {"model.safetensors", "model.embed_tokens.weight", "Q4"});
  // Only 4 bytes: not even the header length.
  std::ofstream(dir + "/model.safetensors", std::ios::binary | std::ios::trunc) << "abcd";
  expect_one_line_error(
      run_tessera({"generate", "--model", dir, "--prompt-ids", "1", "--max-tokens", "1"}),
      {"model.safetensors"});
}

// BUG (launcher/cli_generate.cpp, the --temperature and --top-p options): CLI::Range does
// not reject NaN (every comparison with NaN is false), so "--temperature nan" runs and
// sample_cpu turns every probability into NaN and always returns the least likely
// candidate; "--top-p nan" silently means 1. Enable once the options also require a finite
// value (e.g. a validator that rejects !std::isfinite, or a require() in run_generate).
TEST(CliGenerate, NonFiniteSamplingFlagsAreRejected) {
  TESSERA_REQUIRE_TESTDATA();
  for (const char* flag : {"--temperature", "--top-p"})
    for (const char* v : {"nan", "-nan"}) {
      const CliRun r = run_tessera({"generate", "--model", story_model(), "--prompt-ids", "1",
                                    "--max-tokens", "2", flag, v});
      expect_one_line_error(r, {flag});
    }
}

// BUG (minor; launcher/cli_generate.cpp parse_ids): std::getline drops a trailing empty
// item, so "--prompt-ids 1,2," is accepted as [1, 2] while "1,,2" is rejected. Enable once
// parse_ids rejects an empty last item (e.g. require(s.empty() || s.back() != ',')).
TEST(CliGenerate, TrailingCommaInPromptIdsIsRejected) {
  TESSERA_REQUIRE_TESTDATA();
  expect_one_line_error(run_tessera({"generate", "--model", story_model(), "--prompt-ids", "1,2,",
                                     "--max-tokens", "1"}),
                        {"--prompt-ids"});
}

}  // namespace tessera::test
