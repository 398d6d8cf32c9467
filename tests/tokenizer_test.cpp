// The tokenizer against Hugging Face's own encodings of real tokenizers
// (../shared/testdata/tokenizers/*/encode.jsonl), plus API and error behaviour.
#include "runtime/tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "runtime/error.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using json = nlohmann::json;

std::string tok_dir(const std::string& name) {
  return test::testdata_dir() + "/tokenizers/" + name;
}

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream f(path);
  std::vector<json> out;
  for (std::string line; std::getline(f, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

class GoldenEncode : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenEncode, MatchesEveryCase) {
  TESSERA_REQUIRE_TESTDATA();
  Tokenizer tok = Tokenizer::from_dir(tok_dir(GetParam()));
  auto cases = read_jsonl(tok_dir(GetParam()) + "/encode.jsonl");
  ASSERT_GT(cases.size(), 50u);
  int failures = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const json& c = cases[i];
    std::string text = c["text"];
    bool add = c["add_special_tokens"];
    auto want = c["ids"].get<std::vector<int32_t>>();
    auto got = tok.encode(text, add);
    EXPECT_EQ(got, want) << "case " << i << " text=" << json(text).dump() << " add=" << add;
    EXPECT_EQ(tok.decode(want, false), c["decoded"].get<std::string>()) << "case " << i;
    EXPECT_EQ(tok.decode(want, true), c["decoded_skip_special"].get<std::string>()) << "case " << i;
    if (got != want && ++failures > 10) FAIL() << "too many failures";
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, GoldenEncode,
                         ::testing::Values("gpt2", "llama2", "qwen2.5", "tinystories"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& ch : n) {
                             if (ch == '.') ch = '_';
                           }
                           return n;
                         });

TEST(Tokenizer, ConfigTokens) {
  TESSERA_REQUIRE_TESTDATA();
  Tokenizer llama = Tokenizer::from_dir(tok_dir("llama2"));
  EXPECT_EQ(llama.bos_token(), "<s>");
  EXPECT_EQ(llama.bos_id(), 1);
  EXPECT_EQ(llama.eos_id(), 2);
  EXPECT_EQ(llama.vocab_size(), 32000);
  EXPECT_TRUE(llama.is_special(1));
  EXPECT_FALSE(llama.is_special(15043));
  EXPECT_EQ(llama.id_to_token(15043), "\xE2\x96\x81Hello");
  EXPECT_EQ(llama.token_to_id("\xE2\x96\x81Hello"), 15043);
  EXPECT_EQ(llama.token_to_id("no such token"), std::nullopt);

  Tokenizer qwen = Tokenizer::from_dir(tok_dir("qwen2.5"));
  EXPECT_EQ(qwen.vocab_size(), 151665);
  EXPECT_EQ(qwen.bos_id(), std::nullopt);
  EXPECT_EQ(qwen.bos_token(), "");
  EXPECT_EQ(qwen.eos_token(), "<|im_end|>");
  EXPECT_EQ(qwen.eos_id(), 151645);
  EXPECT_TRUE(qwen.is_special(151644));

  Tokenizer ts = Tokenizer::from_dir(tok_dir("tinystories"));
  EXPECT_EQ(ts.bos_id(), 1);
  EXPECT_EQ(ts.eos_token(), "<|end_story|>");
  EXPECT_EQ(ts.eos_id(), 2);
}

TEST(Tokenizer, StoryGolden) {
  TESSERA_REQUIRE_TESTDATA();
  json story = json::parse(test::read_file(test::testdata_dir() +
                                           "/goldens/TinyStories-656K.story.json"));
  Tokenizer tok = Tokenizer::from_dir(test::testdata_dir() + "/models/TinyStories-656K");
  auto prompt_ids = story["prompt_ids"].get<std::vector<int32_t>>();
  auto greedy = story["greedy_ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(tok.encode(story["prompt"].get<std::string>(), true), prompt_ids);
  EXPECT_EQ(tok.decode(greedy, true), story["continuation_text"].get<std::string>());
  std::vector<int32_t> all = prompt_ids;
  all.insert(all.end(), greedy.begin(), greedy.end());
  EXPECT_EQ(tok.decode(all, true), story["full_text"].get<std::string>());
}

TEST(Tokenizer, PerplexityTextIds) {
  TESSERA_REQUIRE_TESTDATA();
  json ppl = json::parse(test::read_file(test::testdata_dir() +
                                         "/perplexity/TinyStories-656K.ppl.json"));
  std::string text = test::read_file(test::testdata_dir() + "/perplexity/tinystories-text.txt");
  Tokenizer tok = Tokenizer::from_dir(test::testdata_dir() + "/models/TinyStories-656K");
  EXPECT_EQ(tok.encode(text, true), ppl["ids"].get<std::vector<int32_t>>());
}

TEST(Tokenizer, InvalidUtf8IsReplacedLikeHuggingFace) {
  TESSERA_REQUIRE_TESTDATA();
  Tokenizer tok = Tokenizer::from_dir(tok_dir("gpt2"));
  // A lone continuation byte, a truncated 3-byte sequence and an overlong encoding: each
  // maximal ill-formed subpart becomes one U+FFFD, then the text is encoded normally.
  EXPECT_EQ(tok.encode("a\x80z", false), tok.encode("a\xEF\xBF\xBDz", false));
  EXPECT_EQ(tok.encode("x\xE4\xB8y", false), tok.encode("x\xEF\xBF\xBDy", false));
  EXPECT_EQ(tok.encode("\xC0\xAF!", false), tok.encode("\xEF\xBF\xBD\xEF\xBF\xBD!", false));
  EXPECT_EQ(tok.decode(tok.encode("ok \xFF", false), false), "ok \xEF\xBF\xBD");
}

TEST(Tokenizer, DecodeOutOfRangeIdIsUserError) {
  TESSERA_REQUIRE_TESTDATA();
  Tokenizer tok = Tokenizer::from_dir(tok_dir("gpt2"));
  EXPECT_THROW(tok.decode({50257}, false), UserError);
  EXPECT_THROW(tok.decode({-1}, true), UserError);
  EXPECT_THROW(tok.id_to_token(1 << 30), UserError);
  EXPECT_EQ(tok.decode({50256}, false), "<|endoftext|>");
}

}  // namespace
}  // namespace tessera
