// Small tokenizers covering the components the real tokenizers do not use, checked against
// outputs of Hugging Face's JavaScript implementation (scripts/make-tokenizer-fixtures.mjs).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "runtime/tokenizer.h"
#include "runtime/tokenizer_unicode.h"

namespace tessera {
namespace {

using json = nlohmann::json;

std::string fixture_dir(const std::string& name) {
  return std::string(TESSERA_SOURCE_DIR) + "/tests/fixtures/tokenizers/" + name;
}

class Fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(Fixture, MatchesHuggingFace) {
  Tokenizer tok = Tokenizer::from_dir(fixture_dir(GetParam()));
  std::ifstream f(fixture_dir(GetParam()) + "/cases.jsonl");
  ASSERT_TRUE(f) << "missing cases.jsonl";
  int n = 0;
  for (std::string line; std::getline(f, line); ++n) {
    json c = json::parse(line);
    std::string text = c["text"];
    auto want = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok.encode(text, c["add_special_tokens"]), want)
        << "case " << n << " " << json(text).dump() << " add=" << c["add_special_tokens"];
    EXPECT_EQ(tok.decode(want, false), c["decoded"].get<std::string>()) << "case " << n;
    EXPECT_EQ(tok.decode(want, true), c["decoded_skip_special"].get<std::string>()) << "case " << n;
    // Streaming gives the same text.
    IncrementalDecoder dec(tok, false);
    std::string streamed;
    for (int32_t id : want) streamed += dec.push(id);
    streamed += dec.flush();
    EXPECT_EQ(streamed, tok.decode(want, false)) << "case " << n;
    EXPECT_TRUE(tok::is_valid_utf8(streamed));
  }
  EXPECT_GT(n, 5);
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, Fixture,
                         ::testing::Values("pairs_digits_lowercase", "metaspace_unk_added",
                                           "prepend_bytefallback_ignore_merges",
                                           "nfd_split_invert_bytelevel"));

}  // namespace
}  // namespace tessera
