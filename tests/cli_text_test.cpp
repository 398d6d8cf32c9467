// The CLI's text paths, through the real binary: the README's main job prints the golden
// TinyStories continuation, tokenize matches the golden ids, chat goes through the template.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/cli_util.h"
#include "tests/test_util.h"

namespace tessera::test {

TEST(CliText, MainJobPrintsTheGoldenStory) {
  TESSERA_REQUIRE_TESTDATA();
  const auto g = nlohmann::json::parse(read_file(testdata_dir() + "/goldens/TinyStories-656K.story.json"));
  const std::string prompt = g["prompt"];
  CliRun r = run_tessera({"generate", "--model", std::string(TESSERA_SOURCE_DIR) + "/examples/TinyStories-656K",
                       "--prompt", prompt, "--max-tokens", "40", "--temperature", "0",
                       "--ignore-eos"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, g["full_text"].get<std::string>() + "\n");
  r = run_tessera({"generate", "--model", std::string(TESSERA_SOURCE_DIR) + "/examples/TinyStories-656K",
                   "--prompt", prompt, "--max-tokens", "40", "--temperature", "0", "--ignore-eos",
                   "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(last_line(r.out));
  EXPECT_EQ(j["prompt_ids"], g["prompt_ids"]);
  EXPECT_EQ(j["ids"], g["greedy_ids"]);
  EXPECT_EQ(j["text"], g["continuation_text"]);
}

TEST(CliText, TokenizeMatchesGoldenEncodings) {
  TESSERA_REQUIRE_TESTDATA();
  for (const char* name : {"gpt2", "llama2", "qwen2.5"}) {
    const std::string dir = testdata_dir() + "/tokenizers/" + name;
    std::ifstream f(dir + "/encode.jsonl");
    std::string line;
    int checked = 0;
    while (std::getline(f, line) && checked < 3) {
      const auto c = nlohmann::json::parse(line);
      std::vector<std::string> args = {"tokenize", "--model", dir, "--json", c["text"]};
      if (!c["add_special_tokens"].get<bool>()) args.push_back("--no-special-tokens");
      const std::string text = c["text"];
      if (text.empty() || text[0] == '-') continue;  // not a positional argument
      CliRun r = run_tessera(args);
      ASSERT_EQ(r.code, 0) << r.err;
      EXPECT_EQ(nlohmann::json::parse(last_line(r.out))["ids"], c["ids"]) << name << ": " << text;
      ++checked;
    }
    EXPECT_GT(checked, 0) << name;
  }
}

TEST(CliText, ChatUsesTheTemplateAndMissingTemplateIsAnError) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string qwen = testdata_dir() + "/models/tiny-qwen2-tok";
  CliRun r = run_tessera({"generate", "--model", qwen, "--chat", "--prompt", "Hello!", "--max-tokens",
                       "3", "--temperature", "0", "--ignore-eos", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  // The golden rendering of [{"user": "Hello!"}] with a generation prompt, as ids.
  std::ifstream f(testdata_dir() + "/tokenizers/qwen2.5/chat_template.jsonl");
  std::string line;
  nlohmann::json want;
  while (std::getline(f, line)) {
    auto c = nlohmann::json::parse(line);
    if (c["name"] == "user_only") want = c["ids"];
  }
  ASSERT_FALSE(want.is_null());
  const auto j = nlohmann::json::parse(last_line(r.out));
  EXPECT_EQ(j["prompt_ids"], want);
  EXPECT_EQ(j["ids"].size(), 3u);
  // TinyStories has a tokenizer but no chat template.
  r = run_tessera({"generate", "--model", testdata_dir() + "/models/TinyStories-656K", "--chat",
                   "--prompt", "Hi", "--max-tokens", "3"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("chat_template"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(CliText, PromptWithoutTokenizerIsAClearError) {
  TESSERA_REQUIRE_TESTDATA();
  CliRun r = run_tessera({"generate", "--model", testdata_dir() + "/models/tiny-qwen2", "--prompt",
                       "hello"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("tokenizer.json"), std::string::npos) << r.err;
}

}  // namespace tessera::test
