// StopMatcher: stop strings inside one delta and across several, held-back text released
// when it turns out not to be a stop, overlapping stops, flush, nothing after a stop, and a
// randomized check against a direct reference (emit as early as possible, and emits + flush
// reassemble the text up to the first stop).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "runtime/stop_matcher.h"

namespace tessera::test {
namespace {

struct FeedLog {
  std::vector<std::string> emits;
  std::string all;
  bool stopped = false;
  int stop_index = -1;
};

FeedLog feed_all(StopMatcher& m, const std::vector<std::string>& deltas) {
  FeedLog r;
  for (const std::string& d : deltas) {
    auto res = m.feed(d);
    r.emits.push_back(res.emit);
    r.all += res.emit;
    if (res.stopped) {
      EXPECT_FALSE(r.stopped && !res.emit.empty()) << "text emitted after the stop";
      if (!r.stopped) r.stop_index = res.stop_index;
      r.stopped = true;
    }
  }
  return r;
}

// Where the text first contains a stop string (npos: nowhere).
size_t first_stop(const std::string& text, const std::vector<std::string>& stops) {
  size_t best = std::string::npos;
  for (const auto& s : stops)
    if (!s.empty()) best = std::min(best, text.find(s));
  return best;
}

// The longest suffix of `text` that is a proper prefix of some stop string.
size_t longest_held(const std::string& text, const std::vector<std::string>& stops) {
  size_t best = 0;
  for (const auto& s : stops)
    for (size_t len = 1; len < s.size() && len <= text.size(); ++len)
      if (text.compare(text.size() - len, len, s, 0, len) == 0) best = std::max(best, len);
  return best;
}

}  // namespace

TEST(StopMatcher, StopInsideOneDelta) {
  StopMatcher m({"END"});
  auto r = m.feed("hello END world");
  EXPECT_EQ(r.emit, "hello ");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.stop_index, 0);
  EXPECT_TRUE(m.stopped());
}

TEST(StopMatcher, StopAcrossTwoDeltas) {
  StopMatcher m({"END"});
  const FeedLog r = feed_all(m, {"abc E", "ND tail"});
  EXPECT_EQ(r.emits, (std::vector<std::string>{"abc ", ""}));
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, StopAcrossThreeDeltas) {
  StopMatcher m({"<|end|>"});
  const FeedLog r = feed_all(m, {"x<|", "en", "d|>y"});
  EXPECT_EQ(r.emits, (std::vector<std::string>{"x", "", ""}));
  EXPECT_TRUE(r.stopped);
}

TEST(StopMatcher, HeldPrefixThatIsNotAStopIsEmittedLater) {
  StopMatcher m({"END"});
  const FeedLog r = feed_all(m, {"an E", "N", "x", "E"});
  EXPECT_EQ(r.emits, (std::vector<std::string>{"an ", "", "ENx", ""}));
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(m.flush(), "E");
}

TEST(StopMatcher, HoldsBackOnlyTheLongestPossibleStopPrefix) {
  StopMatcher m({"aab"});
  auto r = m.feed("xaaa");  // "aa" could still start "aab"; the first "xa" cannot
  EXPECT_EQ(r.emit, "xa");
  r = m.feed("b!");
  EXPECT_EQ(r.emit, "");
  EXPECT_TRUE(r.stopped);
  StopMatcher n({"abc"});
  EXPECT_EQ(n.feed("zzab").emit, "zz");
  EXPECT_EQ(n.feed("xy").emit, "abxy");  // nothing held when no suffix can start a stop
}

TEST(StopMatcher, MultipleStopsWithOverlappingPrefixes) {
  // After "zzabc" both "abc" (of "abcd") and "bc" (of "bcq") could continue; the longer is held.
  StopMatcher m({"abcd", "bcq"});
  const FeedLog r = feed_all(m, {"zza", "b", "c", "q", "more"});
  EXPECT_EQ(r.emits, (std::vector<std::string>{"zz", "", "", "a", ""}));
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.stop_index, 1);
  // Two stops complete in the same delta: the one that starts first wins.
  StopMatcher e({"world", "o w"});
  auto res = e.feed("hello world");
  EXPECT_EQ(res.emit, "hell");
  EXPECT_EQ(res.stop_index, 1);
  // A stop that is a prefix of another: the shorter one ends the text as soon as it appears.
  StopMatcher p({"ab", "abc"});
  res = p.feed("xab");
  EXPECT_TRUE(res.stopped);
  EXPECT_EQ(res.emit, "x");
  EXPECT_EQ(res.stop_index, 0);
}

TEST(StopMatcher, EmptyStopsAreIgnoredAndIndicesKept) {
  StopMatcher none({"", ""});
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.feed("anything").emit, "anything");
  StopMatcher m({"", "X"});
  auto r = m.feed("abXcd");
  EXPECT_EQ(r.emit, "ab");
  EXPECT_EQ(r.stop_index, 1);
}

TEST(StopMatcher, FlushReturnsHeldText) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.feed("foo EN").emit, "foo ");
  EXPECT_EQ(m.flush(), "EN");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, NothingAfterStopIsEverEmitted) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.feed("a ST").emit, "a ");
  auto r = m.feed("OP b");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emit, "");
  for (const char* more : {"c", "STOP", "", "dd"}) {
    r = m.feed(more);
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(r.emit, "");
  }
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, Utf8StopAndText) {
  StopMatcher m({"。", "再见"});
  const FeedLog r = feed_all(m, {"你", "好", "再", "会。", "再见"});
  EXPECT_EQ(r.all, "你好再会");
  EXPECT_EQ(r.emits[2], "");  // "再" could start "再见"
  EXPECT_EQ(r.stop_index, 0);
}

TEST(StopMatcher, ConcatenatedEmitsAndFlushEqualTheTextWithoutAStop) {
  StopMatcher m({"world!", "<|im_end|>"});
  const std::vector<std::string> deltas = {"hello <", "|im", " wor", "ld"};
  const FeedLog r = feed_all(m, deltas);
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.all + m.flush(), "hello <|im world");
  StopMatcher empty({});
  EXPECT_EQ(feed_all(empty, deltas).all + empty.flush(), "hello <|im world");
}

// Random texts over a small alphabet (so stops and near-misses are common), cut into random
// deltas: after every feed the emitted text is the text so far minus exactly the longest
// suffix that could start a stop; at the end emits (+ flush) are the text up to the first stop.
TEST(StopMatcher, RandomizedAgainstReference) {
  std::mt19937 rng(2024);
  const std::string alphabet = "abc ";
  const std::vector<std::vector<std::string>> stop_sets = {
      {"abc"}, {"aa", "ab"}, {"abca", "bcab", "c c"}, {"aaaa"}, {"a b", "", "ba"}};
  int stopped_runs = 0, clean_runs = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    const auto& stops = stop_sets[size_t(iter) % stop_sets.size()];
    std::string text;
    const int len = int(rng() % 30);
    for (int i = 0; i < len; ++i) text += alphabet[rng() % alphabet.size()];
    const size_t stop_at = first_stop(text, stops);
    StopMatcher m(stops);
    std::string so_far, emitted;
    bool stopped = false;
    for (size_t pos = 0; pos < text.size();) {
      const size_t n = std::min(text.size() - pos, size_t(1 + rng() % 4));
      so_far += text.substr(pos, n);
      pos += n;
      const auto r = m.feed(text.substr(pos - n, n));
      if (stopped) {
        ASSERT_TRUE(r.stopped);
        ASSERT_EQ(r.emit, "");
        continue;
      }
      emitted += r.emit;
      if (r.stopped) {
        stopped = true;
        ASSERT_NE(stop_at, std::string::npos) << text;
        ASSERT_LE(stop_at, so_far.size()) << text;
        ASSERT_EQ(emitted, text.substr(0, stop_at)) << text;
      } else {
        ASSERT_EQ(first_stop(so_far, stops), std::string::npos) << "missed a stop in " << so_far;
        ASSERT_EQ(emitted, so_far.substr(0, so_far.size() - longest_held(so_far, stops)))
            << "text '" << so_far << "'";
      }
    }
    if (stopped) {
      ++stopped_runs;
      EXPECT_EQ(m.flush(), "");
    } else {
      ++clean_runs;
      ASSERT_EQ(stop_at, std::string::npos) << text;
      ASSERT_EQ(emitted + m.flush(), text);
    }
  }
  EXPECT_GT(stopped_runs, 300);  // both outcomes are exercised
  EXPECT_GT(clean_runs, 300);
}

}  // namespace tessera::test
