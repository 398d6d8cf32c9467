// Components the JavaScript reference lacks or implements differently from the Rust
// `tokenizers` crate, checked against hand-derived expectations that follow HF's documented
// semantics; plus load errors.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <functional>

#include "runtime/error.h"
#include "runtime/tokenizer.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using json = nlohmann::json;

// A tokenizer over single characters `alphabet` plus the given merges (each merge result is a
// token), with the pre-tokenizer under test. Ids: alphabet in order, then merge results.
json char_bpe(const std::vector<std::string>& alphabet,
              const std::vector<std::pair<std::string, std::string>>& merges, json pre) {
  json vocab = json::object(), m = json::array();
  for (auto& c : alphabet) vocab[c] = static_cast<int>(vocab.size());
  for (auto& [a, b] : merges) {
    vocab[a + b] = static_cast<int>(vocab.size());
    m.push_back(json::array({a, b}));
  }
  return {{"added_tokens", json::array()}, {"normalizer", nullptr}, {"pre_tokenizer", pre},
          {"post_processor", nullptr}, {"decoder", {{"type", "Fuse"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}}}};
}

std::vector<std::string> tokens(const Tokenizer& t, const std::string& text) {
  std::vector<std::string> out;
  for (int32_t id : t.encode(text, false)) out.push_back(t.id_to_token(id));
  return out;
}
using V = std::vector<std::string>;

// HF docs (SplitDelimiterBehavior): splitting "the-final--countdown" on "-" gives
// Removed: the|final|countdown; Isolated: the|-|final|-|-|countdown;
// MergedWithPrevious: the-|final-|-|countdown; MergedWithNext: the|-final|-|-countdown;
// Contiguous: the|-|final|--|countdown. Merges across "-" make the pieces visible in the ids.
TEST(SplitBehavior, AllFiveMatchHfDocumentation) {
  std::vector<std::string> abc = {"t", "h", "e", "-", "x"};
  std::vector<std::pair<std::string, std::string>> merges = {
      {"e", "-"}, {"-", "x"}, {"-", "-"}, {"t", "h"}, {"th", "e"}};
  auto make = [&](const std::string& behavior, bool invert = false) {
    json pre = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior},
                {"invert", invert}};
    return Tokenizer::from_json(char_bpe(abc, merges, pre).dump(), "");
  };
  const std::string text = "the-x--x";
  EXPECT_EQ(tokens(make("Removed"), text), (V{"the", "x", "x"}));
  EXPECT_EQ(tokens(make("Isolated"), text), (V{"the", "-", "x", "-", "-", "x"}));
  // Pieces the-|x-|-|x: "the-" merges e+- first (rank 0), so "the" cannot form.
  EXPECT_EQ(tokens(make("MergedWithPrevious"), text), (V{"th", "e-", "x", "-", "-", "x"}));
  EXPECT_EQ(tokens(make("MergedWithNext"), text), (V{"the", "-x", "-", "-x"}));
  EXPECT_EQ(tokens(make("Contiguous"), text), (V{"the", "-", "x", "--", "x"}));
  // invert: the pattern's matches become the kept content. Isolated keeps every piece either
  // way; Removed then drops what the pattern did not match.
  EXPECT_EQ(tokens(make("Isolated", true), text), (V{"the", "-", "x", "-", "-", "x"}));
  EXPECT_EQ(tokens(make("Removed", true), text), (V{"-", "-", "-"}));
  // Inverted, the letters are the delimiters: the|-x|-|-x.
  EXPECT_EQ(tokens(make("MergedWithPrevious", true), text), (V{"the", "-x", "-", "-x"}));
}

TEST(Metaspace, SplitTrueSplitsBeforeEachReplacement) {
  // HF's Metaspace with split=true splits on the replacement char with MergedWithNext, so a
  // merge spanning two words ("a" "▁") never applies; with split=false it does.
  std::string r = "\xE2\x96\x81";
  auto make = [&](bool split, const std::string& scheme) {
    json pre = {{"type", "Metaspace"}, {"replacement", r}, {"prepend_scheme", scheme},
                {"split", split}};
    return Tokenizer::from_json(char_bpe({r, "a", "b"}, {{"a", r}, {r, "b"}}, pre).dump(), "");
  };
  EXPECT_EQ(tokens(make(true, "always"), "a b"), (V{r, "a", r + "b"}));
  EXPECT_EQ(tokens(make(false, "always"), "a b"), (V{r, "a" + r, "b"}));
  EXPECT_EQ(tokens(make(false, "never"), "a b"), (V{"a" + r, "b"}));
  EXPECT_EQ(tokens(make(true, "first"), "a b"), (V{r, "a", r + "b"}));
}

TEST(AddedTokens, SingleWordMatchesOnlyAsAWholeWord) {
  // HF AddedToken.single_word: "the token will never match inside of a word".
  json tj = char_bpe({"a", "b", " ", "x"}, {}, nullptr);
  tj["added_tokens"] = json::array({{{"id", 10}, {"content", "ab"}, {"special", false},
                                     {"single_word", true}, {"normalized", false}}});
  Tokenizer t = Tokenizer::from_json(tj.dump(), "");
  EXPECT_EQ(t.encode("ab", false), (std::vector<int32_t>{10}));
  EXPECT_EQ(t.encode("x ab x", false), (std::vector<int32_t>{3, 2, 10, 2, 3}));
  EXPECT_EQ(t.encode("xab", false), (std::vector<int32_t>{3, 0, 1}));
  EXPECT_EQ(t.encode("abx", false), (std::vector<int32_t>{0, 1, 3}));
}

TEST(Bpe, ContinuingSubwordPrefixAndEndOfWordSuffix) {
  // Rust BPE: every char but the first carries continuing_subword_prefix, the last carries
  // end_of_word_suffix; a merge drops the right part's prefix.
  json tj = char_bpe({"a", "##b", "##c</w>", "b"}, {}, nullptr);
  tj["model"]["continuing_subword_prefix"] = "##";
  tj["model"]["end_of_word_suffix"] = "</w>";
  tj["model"]["vocab"]["a##b"] = 99;  // never used: the merge result is "ab"
  tj["model"]["vocab"]["ab"] = 4;
  tj["model"]["vocab"]["##c"] = 5;
  tj["model"]["merges"] = json::array({json::array({"a", "##b"})});
  Tokenizer t = Tokenizer::from_json(tj.dump(), "");
  EXPECT_EQ(tokens(t, "abc"), (V{"ab", "##c</w>"}));
}

TEST(Decoders, StripStopAndNoDecoder) {
  json tj = char_bpe({"x", " "}, {}, nullptr);
  tj["decoder"] = {{"type", "Sequence"},
                   {"decoders", json::array({{{"type", "Fuse"}},
                                             {{"type", "Strip"}, {"content", " "},
                                              {"start", 0}, {"stop", 2}}})}};
  Tokenizer t = Tokenizer::from_json(tj.dump(), "{\"clean_up_tokenization_spaces\": false}");
  EXPECT_EQ(t.decode({1, 0, 1, 1, 1}, false), " x ");
  tj["decoder"] = nullptr;  // HF joins tokens with spaces when there is no decoder
  Tokenizer plain = Tokenizer::from_json(tj.dump(), "{\"clean_up_tokenization_spaces\": false}");
  EXPECT_EQ(plain.decode({0, 0}, false), "x x");
}

TEST(Config, AddBosEosWithoutPostProcessor) {
  json tj = char_bpe({"<s>", "</s>", "a"}, {}, nullptr);
  tj["added_tokens"] = json::array(
      {{{"id", 0}, {"content", "<s>"}, {"special", true}}, {{"id", 1}, {"content", "</s>"}, {"special", true}}});
  Tokenizer t = Tokenizer::from_json(
      tj.dump(), R"({"add_bos_token": true, "add_eos_token": true, "bos_token": {"content": "<s>"},
                    "eos_token": "</s>"})");
  EXPECT_EQ(t.encode("aa", true), (std::vector<int32_t>{0, 2, 2, 1}));
  EXPECT_EQ(t.encode("aa", false), (std::vector<int32_t>{2, 2}));
  EXPECT_EQ(t.bos_id(), 0);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.decode({0, 2, 1}, true), "a");
}

TEST(Decode, CleanUpTokenizationSpacesAlsoWhenStreaming) {
  // transformers' clean_up_tokenization (default on when tokenizer_config.json does not turn it
  // off): " ." -> ".", " n't" -> "n't", " 's" -> "'s", ...
  json tj = char_bpe({"a", " ", ".", "'", "s", "n", "t", ","}, {}, nullptr);
  Tokenizer t = Tokenizer::from_json(tj.dump(), "");
  ASSERT_TRUE(t.clean_up_tokenization_spaces());
  std::vector<int32_t> ids = t.encode("a . a n't a 's a , a ' a", false);
  EXPECT_EQ(t.decode(ids, false), "a. an't a's a, a'a");
  for (size_t cut = 0; cut <= ids.size(); ++cut) {
    std::vector<int32_t> part(ids.begin(), ids.begin() + cut);
    IncrementalDecoder dec(t, false);
    std::string s;
    for (int32_t id : part) s += dec.push(id);
    s += dec.flush();
    EXPECT_EQ(s, t.decode(part, false)) << cut;
  }
}

void expect_user_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no UserError; wanted one mentioning " << needle;
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(LoadErrors, UnsupportedComponentsAreNamed) {
  json base = char_bpe({"a"}, {}, nullptr);
  auto with = [&](const char* key, json v) {
    json j = base;
    j[key] = v;
    return j.dump();
  };
  expect_user_error([&] { Tokenizer::from_json(with("pre_tokenizer", {{"type", "UnicodeScripts"}}), ""); },
                    "tokenizer.json: unsupported pre_tokenizer type \"UnicodeScripts\"");
  expect_user_error([&] { Tokenizer::from_json(with("normalizer", {{"type", "BertNormalizer"}}), ""); },
                    "unsupported normalizer type \"BertNormalizer\"");
  expect_user_error([&] { Tokenizer::from_json(with("decoder", {{"type", "WordPiece"}}), ""); },
                    "unsupported decoder type \"WordPiece\"");
  expect_user_error([&] { Tokenizer::from_json(with("post_processor", {{"type", "BertProcessing"}}), ""); },
                    "unsupported post_processor type \"BertProcessing\"");
  expect_user_error([&] { Tokenizer::from_json(with("model", {{"type", "Unigram"}, {"vocab", json::array()}}), ""); },
                    "unsupported model type \"Unigram\"");
  json nested = {{"type", "Sequence"}, {"pretokenizers", json::array({{{"type", "Whitespace"}}})}};
  expect_user_error([&] { Tokenizer::from_json(with("pre_tokenizer", nested), ""); },
                    "unsupported pre_tokenizer type \"Whitespace\"");
  expect_user_error([&] { Tokenizer::from_json(with("pre_tokenizer", {{"type", "Split"},
                         {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}}), ""); },
                    "invalid regex");
}

TEST(LoadErrors, MissingAndInvalidFiles) {
  std::string dir = test::make_temp_dir("tok");
  expect_user_error([&] { Tokenizer::from_dir(dir); }, dir + "/tokenizer.json");
  expect_user_error([&] { Tokenizer::from_json("{not json", ""); }, "tokenizer.json: invalid JSON");
  expect_user_error([&] { Tokenizer::from_json(char_bpe({"a"}, {}, nullptr).dump(), "[1,"); },
                    "tokenizer_config.json: invalid JSON");
  expect_user_error([&] { Tokenizer::from_json("{}", ""); }, "tokenizer.json");
  {
    std::ofstream(dir + "/tokenizer.json") << "{\"model\": 3";
  }
  expect_user_error([&] { Tokenizer::from_dir(dir); }, dir + "/tokenizer.json: invalid JSON");
}

}  // namespace
}  // namespace tessera
