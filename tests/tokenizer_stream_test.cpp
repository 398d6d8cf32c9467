// IncrementalDecoder: streamed pieces are valid UTF-8 and concatenate to decode(ids).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "runtime/error.h"
#include "runtime/tokenizer.h"
#include "runtime/tokenizer_unicode.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using json = nlohmann::json;

std::string tok_dir(const std::string& name) {
  return test::testdata_dir() + "/tokenizers/" + name;
}

// Streams `ids` one at a time and checks the contract of IncrementalDecoder.
void check_stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip,
                  const std::string& what) {
  IncrementalDecoder dec(tok, skip);
  std::string all;
  for (int32_t id : ids) {
    std::string piece = dec.push(id);
    EXPECT_TRUE(tok::is_valid_utf8(piece)) << what << ": partial UTF-8 piece " << json(piece).dump();
    all += piece;
  }
  std::string tail = dec.flush();
  EXPECT_TRUE(tok::is_valid_utf8(tail)) << what;
  all += tail;
  EXPECT_EQ(all, tok.decode(ids, skip)) << what;
}

class Stream : public ::testing::TestWithParam<std::string> {};

// Every case of encode.jsonl: CJK, emoji (byte-fallback / byte-level pieces), leading spaces,
// special tokens, with and without skip_special_tokens.
TEST_P(Stream, EveryGoldenCaseStreamsToTheFullDecode) {
  TESSERA_REQUIRE_TESTDATA();
  Tokenizer tok = Tokenizer::from_dir(tok_dir(GetParam()));
  std::ifstream f(tok_dir(GetParam()) + "/encode.jsonl");
  int n = 0;
  for (std::string line; std::getline(f, line); ++n) {
    json c = json::parse(line);
    auto ids = c["ids"].get<std::vector<int32_t>>();
    check_stream(tok, ids, false, GetParam() + " case " + std::to_string(n));
    check_stream(tok, ids, true, GetParam() + " case " + std::to_string(n) + " (skip special)");
  }
  EXPECT_GT(n, 50);
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, Stream,
                         ::testing::Values("gpt2", "llama2", "qwen2.5", "tinystories"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& ch : n) {
                             if (ch == '.') ch = '_';
                           }
                           return n;
                         });

TEST(StreamDetail, EmojiBytesAreHeldUntilComplete) {
  TESSERA_REQUIRE_TESTDATA();
  Tokenizer tok = Tokenizer::from_dir(tok_dir("llama2"));
  // "👍" is four byte-fallback tokens in Llama-2: nothing may come out before the last one.
  auto ids = tok.encode("\xF0\x9F\x91\x8D", false);
  ASSERT_GE(ids.size(), 4u);
  IncrementalDecoder dec(tok, true);
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string p = dec.push(ids[i]);
    if (i + 1 < ids.size()) {
      EXPECT_EQ(p, "") << i;
    }
    out += p;
  }
  out += dec.flush();
  EXPECT_EQ(out, tok.decode(ids, true));
}

TEST(StreamDetail, SentencePieceLeadingSpaceMatchesDecode) {
  TESSERA_REQUIRE_TESTDATA();
  Tokenizer tok = Tokenizer::from_dir(tok_dir("llama2"));
  auto ids = tok.encode("Hello world, once more", false);  // "▁Hello" first: its space goes
  IncrementalDecoder dec(tok, false, tok.encode("Say:", true));
  std::string out = dec.push(ids[0]);
  EXPECT_EQ(out, "Hello");
  for (size_t i = 1; i < ids.size(); ++i) out += dec.push(ids[i]);
  out += dec.flush();
  EXPECT_EQ(out, "Hello world, once more");
}

TEST(StreamDetail, StoryGreedyIds) {
  TESSERA_REQUIRE_TESTDATA();
  json story = json::parse(test::read_file(test::testdata_dir() +
                                           "/goldens/TinyStories-656K.story.json"));
  Tokenizer tok = Tokenizer::from_dir(test::testdata_dir() + "/models/TinyStories-656K");
  check_stream(tok, story["greedy_ids"].get<std::vector<int32_t>>(), true, "story");
}

TEST(StreamDetail, OutOfRangeIdIsUserError) {
  TESSERA_REQUIRE_TESTDATA();
  Tokenizer tok = Tokenizer::from_dir(tok_dir("gpt2"));
  IncrementalDecoder dec(tok, false);
  EXPECT_THROW(dec.push(50257), UserError);
  EXPECT_THROW(dec.push(-5), UserError);
}

}  // namespace
}  // namespace tessera
