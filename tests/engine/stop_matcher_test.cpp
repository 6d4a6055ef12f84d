#include "engine/stop_matcher.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace velo {
namespace {

// Feeds `pieces`, then flushes when no stop matched; returns all emitted text.
std::string run(const std::vector<std::string>& stops, const std::vector<std::string>& pieces,
                bool* stopped = nullptr) {
  StopMatcher m(stops);
  std::string out;
  bool hit = false;
  for (const auto& p : pieces) hit = m.push(p, out);
  if (!hit) m.flush(out);
  if (stopped) *stopped = hit;
  return out;
}

TEST(StopMatcher, NoStopsPassesEverythingThrough) {
  StopMatcher m;
  std::string out;
  EXPECT_FALSE(m.push("abc", out));
  EXPECT_EQ(out, "abc");
  EXPECT_EQ(m.held(), 0u);
}

TEST(StopMatcher, StopSplitAcrossPieces) {
  bool stopped = false;
  EXPECT_EQ(run({"world"}, {"Hello", " wor", "ld!", " more"}, &stopped), "Hello ");
  EXPECT_TRUE(stopped);
}

TEST(StopMatcher, HoldsBackOnlyWhatCouldStartAStop) {
  StopMatcher m(std::vector<std::string>{"abc"});
  std::string out;
  EXPECT_FALSE(m.push("xa", out));
  EXPECT_EQ(out, "x");  // "a" may start "abc"
  EXPECT_FALSE(m.push("b", out));
  EXPECT_EQ(out, "x");
  EXPECT_FALSE(m.push("d", out));
  EXPECT_EQ(out, "xabd");  // diverged: released
  EXPECT_EQ(m.held(), 0u);
}

TEST(StopMatcher, OverlappingSelfPrefix) {
  // "aab" inside "aaab": the held "aa" must slide, not reset.
  bool stopped = false;
  EXPECT_EQ(run({"aab"}, {"a", "a", "a", "b", "c"}, &stopped), "a");
  EXPECT_TRUE(stopped);
}

TEST(StopMatcher, FirstEndingMatchWins) {
  StopMatcher m(std::vector<std::string>{"bcde", "cd"});
  std::string out;
  for (char c : std::string("abcdef"))
    if (m.push(std::string(1, c), out)) break;
  EXPECT_EQ(out, "ab");
  EXPECT_EQ(m.matched(), 1);
  // Same text in one piece: same answer.
  EXPECT_EQ(run({"bcde", "cd"}, {"abcdef"}), "ab");
}

TEST(StopMatcher, EqualEndPrefersLongerMatch) {
  StopMatcher m(std::vector<std::string>{"de", "bcde"});
  std::string out;
  EXPECT_TRUE(m.push("abcdef", out));
  EXPECT_EQ(out, "a");
  EXPECT_EQ(m.matched(), 1);
}

TEST(StopMatcher, NothingAfterStop) {
  StopMatcher m(std::vector<std::string>{"\n\n"});
  std::string out;
  EXPECT_TRUE(m.push("one\n\ntwo", out));
  EXPECT_EQ(out, "one");
  EXPECT_TRUE(m.push("three", out));
  m.flush(out);
  EXPECT_EQ(out, "one");
  EXPECT_TRUE(m.stopped());
}

TEST(StopMatcher, FlushReleasesAnUnfinishedPrefix) {
  bool stopped = true;
  EXPECT_EQ(run({"END"}, {"the E", "N"}, &stopped), "the EN");
  EXPECT_FALSE(stopped);
}

TEST(StopMatcher, Unicode) {
  EXPECT_EQ(run({"世界"}, {"你", "好", "世", "界", "!"}), "你好");
  EXPECT_EQ(run({"é!"}, {"caf", "é", "!"}), "caf");
  EXPECT_EQ(run({"é!"}, {"caf", "é", "s"}), "cafés");
  // A stop string starting with a continuation byte never splits a character on release.
  StopMatcher m(std::vector<std::string>{"\xA9x"});
  std::string out;
  m.push("caf\xC3\xA9", out);  // "café": the trailing 0xA9 could start the stop
  EXPECT_EQ(out, "caf");
  m.push("s", out);
  EXPECT_EQ(out, "caf\xC3\xA9s");
}

TEST(StopMatcher, ResetStartsOver) {
  StopMatcher m(std::vector<std::string>{"x"});
  std::string out;
  EXPECT_TRUE(m.push("axb", out));
  m.reset(std::vector<std::string>{"y"});
  out.clear();
  EXPECT_FALSE(m.push("axb", out));
  EXPECT_EQ(out, "axb");
  EXPECT_EQ(m.matched(), -1);
}

// Property: for random text, stops and splits, the emitted text is exactly
// the text before the first-ending stop match (or everything), every
// intermediate output is a prefix of that, and no stop string ever appears in it.
TEST(StopMatcher, RandomSplitsMatchReference) {
  std::mt19937 rng(1234);
  const std::string alphabet = "ab\xC3\xA9 ";
  for (int iter = 0; iter < 3000; ++iter) {
    std::string text;
    int n = 1 + rng() % 40;
    for (int i = 0; i < n; ++i) text += alphabet[rng() % alphabet.size()];
    std::vector<std::string> stops;
    int ns = 1 + rng() % 3;
    for (int s = 0; s < ns; ++s) {
      std::string st;
      int len = 1 + rng() % 4;
      for (int i = 0; i < len; ++i) st += alphabet[rng() % alphabet.size()];
      stops.push_back(st);
    }
    // Reference: the first end position where some stop ends; the longest there.
    std::string want = text;
    for (size_t e = 1; e <= text.size() && want == text; ++e) {
      size_t start = std::string::npos;
      for (const auto& s : stops)
        if (s.size() <= e && text.compare(e - s.size(), s.size(), s) == 0) start = std::min(start, e - s.size());
      if (start != std::string::npos) want = text.substr(0, start);
    }
    StopMatcher m(stops);
    std::string out;
    size_t pos = 0;
    bool hit = false;
    while (pos < text.size() && !hit) {
      size_t len = 1 + rng() % 5;
      hit = m.push(std::string_view(text).substr(pos, len), out);
      pos += len;
      ASSERT_EQ(want.compare(0, out.size(), out), 0) << "emitted text is not a prefix of the answer";
    }
    if (!hit) m.flush(out);
    ASSERT_EQ(out, want) << "text=" << text;
    for (const auto& s : stops) ASSERT_EQ(out.find(s), std::string::npos);
  }
}

}  // namespace
}  // namespace velo
