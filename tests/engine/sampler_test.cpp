#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <vector>

namespace velo {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

SamplingParams plain(float temperature) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 42;
  return p;
}

std::vector<float> logits_from_probs(const std::vector<double>& probs, size_t n_vocab) {
  std::vector<float> l(n_vocab, -kInf);
  for (size_t i = 0; i < probs.size(); ++i) l[i] = static_cast<float>(std::log(probs[i]));
  return l;
}

// Draws `n` tokens and returns each token's frequency.
std::map<int32_t, double> frequencies(Sampler& s, const std::vector<float>& logits, int n) {
  std::map<int32_t, double> f;
  for (int i = 0; i < n; ++i) {
    auto t = s.sample(logits);
    EXPECT_TRUE(t.ok());
    f[*t] += 1.0 / n;
  }
  return f;
}

// |observed - expected| within 5 standard deviations of a binomial proportion.
void expect_near_prob(double observed, double expected, int n) {
  double sd = std::sqrt(expected * (1 - expected) / n);
  EXPECT_NEAR(observed, expected, 5 * sd + 1e-9);
}

TEST(SamplingParams, DefaultsAreValid) { EXPECT_TRUE(SamplingParams{}.validate().ok()); }

TEST(SamplingParams, InvalidValuesNameTheFieldAndValue) {
  auto msg = [](auto mutate) {
    SamplingParams p;
    mutate(p);
    auto st = p.validate();
    return st.ok() ? std::string("ok") : st.message();
  };
  EXPECT_EQ(msg([](SamplingParams& p) { p.temperature = -1; }), "temperature must be >= 0, got -1");
  EXPECT_EQ(msg([](SamplingParams& p) { p.temperature = NAN; }), "temperature must be >= 0, got nan");
  EXPECT_EQ(msg([](SamplingParams& p) { p.top_k = -1; }), "top_k must be >= 0 (0 disables it), got -1");
  EXPECT_EQ(msg([](SamplingParams& p) { p.top_p = 0; }), "top_p must be in (0, 1], got 0");
  EXPECT_EQ(msg([](SamplingParams& p) { p.top_p = 1.5; }), "top_p must be in (0, 1], got 1.5");
  EXPECT_EQ(msg([](SamplingParams& p) { p.min_p = -0.25; }), "min_p must be in [0, 1], got -0.25");
  EXPECT_EQ(msg([](SamplingParams& p) { p.repeat_penalty = 0; }), "repeat_penalty must be > 0 (1 disables it), got 0");
  EXPECT_NE(msg([](SamplingParams& p) { p.repeat_last_n = -2; }).find("repeat_last_n"), std::string::npos);
  EXPECT_EQ(msg([](SamplingParams& p) { p.frequency_penalty = 3; }), "frequency_penalty must be in [-2, 2], got 3");
  EXPECT_EQ(msg([](SamplingParams& p) { p.presence_penalty = -2.5; }), "presence_penalty must be in [-2, 2], got -2.5");
  EXPECT_EQ(msg([](SamplingParams& p) { p.max_tokens = -2; }), "max_tokens must be >= 0 or -1 (no limit), got -2");
  EXPECT_EQ(msg([](SamplingParams& p) { p.top_logprobs = 21; }), "top_logprobs must be in [0, 20], got 21");
  EXPECT_EQ(msg([](SamplingParams& p) { p.logit_bias[5] = 101; }), "logit_bias for token 5 must be in [-100, 100], got 101");
  EXPECT_EQ(msg([](SamplingParams& p) { p.logit_bias[-3] = 1; }), "logit_bias token id must be >= 0, got -3");
  EXPECT_EQ(msg([](SamplingParams& p) { p.stop = {""}; }), "stop strings must not be empty");
  EXPECT_NE(msg([](SamplingParams& p) { p.stop.assign(17, "x"); }).find("at most 16"), std::string::npos);
  EXPECT_NE(msg([](SamplingParams& p) { p.stop = {std::string(300, 'x')}; }).find("256 bytes"), std::string::npos);
  // Edges that are allowed.
  EXPECT_EQ(msg([](SamplingParams& p) { p.temperature = 0; p.top_p = 1; p.min_p = 1; p.top_k = 0; p.max_tokens = 0; }), "ok");
  SamplingParams p;
  p.logit_bias[100] = 1;
  EXPECT_TRUE(p.validate(101).ok());
  EXPECT_EQ(p.validate(100).message(), "logit_bias token id 100 is outside the vocabulary (100 tokens)");
}

TEST(Sampler, GreedyTakesArgmaxAndLowestIdOnTies) {
  Sampler s(plain(0), 6);
  std::vector<float> l = {0.1f, 3.0f, -1.0f, 3.0f, 2.9f, 0.0f};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(*s.sample(l), 1);
}

TEST(Sampler, TopKOneIsGreedyAtAnyTemperature) {
  SamplingParams p = plain(5.0f);
  p.top_k = 1;
  Sampler s(p, 1000);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (int i = 0; i < 50; ++i) {
    std::vector<float> l(1000);
    for (auto& x : l) x = nd(rng);
    int32_t want = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
    EXPECT_EQ(*s.sample(l), want);
  }
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferent) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  std::vector<std::vector<float>> rows(64, std::vector<float>(500));
  for (auto& r : rows)
    for (auto& x : r) x = nd(rng);
  auto draw_all = [&](uint64_t seed) {
    SamplingParams p = plain(1.0f);
    p.seed = seed;
    Sampler s(p, 500);
    std::vector<int32_t> out;
    for (const auto& r : rows) out.push_back(*s.sample(r));
    return out;
  };
  EXPECT_EQ(draw_all(7), draw_all(7));
  EXPECT_NE(draw_all(7), draw_all(8));
}

TEST(Sampler, PureSoftmaxDistribution) {
  const std::vector<double> probs = {0.5, 0.25, 0.15, 0.1};
  Sampler s(plain(1.0f), 50);
  const int n = 40000;
  auto f = frequencies(s, logits_from_probs(probs, 50), n);
  for (size_t i = 0; i < probs.size(); ++i) expect_near_prob(f[static_cast<int32_t>(i)], probs[i], n);
  EXPECT_EQ(f.size(), probs.size());  // -inf tokens never drawn
}

TEST(Sampler, TemperatureSharpens) {
  // logits {1, 0} at T = 0.5: p0 = 1 / (1 + e^-2).
  std::vector<float> l = {1.0f, 0.0f};
  Sampler s(plain(0.5f), 2);
  const int n = 40000;
  auto f = frequencies(s, l, n);
  expect_near_prob(f[0], 1.0 / (1.0 + std::exp(-2.0)), n);
}

TEST(Sampler, TopKRenormalizes) {
  const std::vector<double> probs = {0.4, 0.3, 0.2, 0.1};
  SamplingParams p = plain(1.0f);
  p.top_k = 2;
  Sampler s(p, 4);
  const int n = 40000;
  auto f = frequencies(s, logits_from_probs(probs, 4), n);
  EXPECT_EQ(f.size(), 2u);
  expect_near_prob(f[0], 0.4 / 0.7, n);
}

TEST(Sampler, TopPKeepsSmallestPrefixReachingP) {
  const std::vector<double> probs = {0.5, 0.3, 0.15, 0.05};
  SamplingParams p = plain(1.0f);
  p.top_p = 0.7f;  // 0.5 < 0.7 <= 0.8: keeps tokens 0 and 1
  Sampler s(p, 4);
  const int n = 40000;
  auto f = frequencies(s, logits_from_probs(probs, 4), n);
  EXPECT_EQ(f.size(), 2u);
  expect_near_prob(f[0], 0.5 / 0.8, n);
}

TEST(Sampler, TopPOnLargeFlatVocabularySortsLazilyButCorrectly) {
  // 1000 equal logits, others -inf: top_p 0.5 keeps exactly 500 (lowest ids on ties),
  // which takes several growing sort blocks.
  std::vector<float> l(5000, -kInf);
  for (int i = 0; i < 1000; ++i) l[i * 5] = 0.0f;
  SamplingParams p = plain(1.0f);
  p.top_p = 0.5f;
  Sampler s(p, 5000);
  std::map<int32_t, double> f = frequencies(s, l, 4000);
  for (const auto& [tok, fr] : f) {
    EXPECT_EQ(tok % 5, 0);
    EXPECT_LT(tok, 2500);  // the first 500 of the live tokens
  }
  EXPECT_GT(f.size(), 400u);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  const std::vector<double> probs = {0.6, 0.3, 0.07, 0.03};
  SamplingParams p = plain(1.0f);
  p.min_p = 0.1f;  // cut at 0.06: keeps 0, 1, 2
  Sampler s(p, 4);
  const int n = 40000;
  auto f = frequencies(s, logits_from_probs(probs, 4), n);
  EXPECT_EQ(f.size(), 3u);
  expect_near_prob(f[2], 0.07 / 0.97, n);
}

TEST(Sampler, ChainOrderTopKThenTopPThenMinP) {
  // top_k 3 -> {0.4, 0.3, 0.2}; top_p 0.6 over the renormalized (0.444, 0.333, 0.222)
  // keeps {0, 1}; min_p 0.8 of 0.4 = 0.32 drops token 1: only 0 remains.
  const std::vector<double> probs = {0.4, 0.3, 0.2, 0.1};
  SamplingParams p = plain(1.0f);
  p.top_k = 3;
  p.top_p = 0.6f;
  p.min_p = 0.8f;
  Sampler s(p, 4);
  auto f = frequencies(s, logits_from_probs(probs, 4), 2000);
  EXPECT_EQ(f.size(), 1u);
  EXPECT_EQ(f.begin()->first, 0);
}

// Reference log-softmax in double.
std::vector<double> log_softmax(const std::vector<float>& l) {
  double mx = *std::max_element(l.begin(), l.end());
  double sum = 0;
  for (float x : l) sum += std::exp(x - mx);
  std::vector<double> out;
  for (float x : l) out.push_back(x - mx - std::log(sum));
  return out;
}

TEST(Sampler, LogprobsAreLogSoftmaxAfterPenaltiesBeforeTruncation) {
  std::vector<float> l = {2.0f, 1.0f, -1.0f, 0.5f, 0.0f, -3.0f};
  SamplingParams p = plain(0);
  p.top_k = 1;  // truncation must not change the reported logprobs
  p.top_logprobs = 3;
  p.repeat_penalty = 2.0f;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  p.logit_bias[5] = 4.0f;
  Sampler s(p, 6);
  s.accept(std::vector<int32_t>{0, 2, 2});
  TokenLogprob lp;
  auto t = s.sample(l, &lp);
  ASSERT_TRUE(t.ok());
  // Expected logits: 0: 2/2 - 0.5 - 0.25 = 0.25; 2: -1*2 - 1.0 - 0.25 = -3.25; 5: -3 + 4 = 1.
  std::vector<float> want = {0.25f, 1.0f, -3.25f, 0.5f, 0.0f, 1.0f};
  auto ref = log_softmax(want);
  EXPECT_EQ(*t, 1);  // 1 and 5 tie at 1.0: lowest id
  EXPECT_EQ(lp.token, 1);
  EXPECT_NEAR(lp.logprob, ref[1], 1e-5);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].first, 1);
  EXPECT_EQ(lp.top[1].first, 5);
  EXPECT_EQ(lp.top[2].first, 3);
  for (const auto& [tok, v] : lp.top) EXPECT_NEAR(v, ref[tok], 1e-5);
}

TEST(Sampler, RepeatWindowForgetsOldTokens) {
  std::vector<float> l = {2.0f, 1.5f, 0.0f, 0.0f};
  SamplingParams p = plain(0);
  p.repeat_penalty = 2.0f;
  p.repeat_last_n = 2;
  Sampler s(p, 4);
  s.accept(0);
  EXPECT_EQ(*s.sample(l), 1);  // 2/2 = 1 < 1.5
  s.accept(std::vector<int32_t>{2, 3});  // 0 leaves the window
  EXPECT_EQ(*s.sample(l), 0);
  s.accept(0);
  EXPECT_EQ(*s.sample(l), 1);
  s.reset_history();
  EXPECT_EQ(*s.sample(l), 0);
}

TEST(Sampler, WholeHistoryWindow) {
  std::vector<float> l = {2.0f, 1.5f, 0.0f};
  SamplingParams p = plain(0);
  p.frequency_penalty = 0.2f;
  p.repeat_last_n = -1;
  Sampler s(p, 3);
  s.accept(0);
  for (int i = 0; i < 500; ++i) s.accept(2);
  EXPECT_EQ(*s.sample(l), 0);  // 2 - 0.2 = 1.8 > 1.5
  s.accept(0);
  s.accept(0);
  EXPECT_EQ(*s.sample(l), 1);  // 2 - 0.6 = 1.4
}

TEST(Sampler, LogitBiasAndIgnoreEos) {
  std::vector<float> l = {0.0f, 5.0f, 1.0f, 0.5f};
  SamplingParams p = plain(0);
  p.logit_bias[3] = 100;
  EXPECT_EQ(*Sampler(p, 4).sample(l), 3);
  p.logit_bias.clear();
  p.logit_bias[1] = -100;
  EXPECT_EQ(*Sampler(p, 4).sample(l), 2);
  // Token 1 is end-of-generation: masked only with ignore_eos.
  p.logit_bias.clear();
  std::vector<int32_t> eog = {1};
  EXPECT_EQ(*Sampler(p, 4, eog).sample(l), 1);
  p.ignore_eos = true;
  EXPECT_EQ(*Sampler(p, 4, eog).sample(l), 2);
  p.temperature = 2.0f;
  Sampler hot(p, 4, eog);
  for (int i = 0; i < 500; ++i) EXPECT_NE(*hot.sample(l), 1);
}

TEST(Sampler, BadLogitsAreErrors) {
  Sampler s(plain(1.0f), 3);
  EXPECT_EQ(s.sample(std::vector<float>{0, NAN, 1}).message(), "the model produced NaN logits");
  EXPECT_EQ(s.sample(std::vector<float>{-kInf, -kInf, -kInf}).message(),
            "no token can be sampled: every logit is -inf");
  EXPECT_FALSE(s.sample(std::vector<float>{0, 1}).ok());
}

TEST(Sampler, LargeVocabularyDefaultsStayInTopK) {
  // 262k vocabulary (gemma 3): the default chain draws from the true top 40.
  const int32_t V = 262144;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0, 3);
  std::vector<float> l(V);
  for (auto& x : l) x = nd(rng);
  std::vector<int32_t> idx(V);
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + 40, idx.end(), [&](int a, int b) { return l[a] > l[b]; });
  std::vector<bool> in_top(V, false);
  for (int i = 0; i < 40; ++i) in_top[idx[i]] = true;
  SamplingParams p;  // defaults: top_k 40, top_p 0.95, min_p 0.05, T 0.8
  p.seed = 1;
  p.top_logprobs = 5;
  Sampler s(p, V);
  TokenLogprob lp;
  auto t0 = std::chrono::steady_clock::now();
  const int n = 50;
  for (int i = 0; i < n; ++i) {
    auto t = s.sample(l, &lp);
    ASSERT_TRUE(t.ok());
    EXPECT_TRUE(in_top[*t]);
    EXPECT_EQ(lp.top[0].first, idx[0]);
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / n;
  std::printf("262k-vocab sample with logprobs: %.2f ms\n", ms);
  // Without top-k the full-vocabulary path (lazy top-p sort) also works.
  p.top_k = 0;
  Sampler s2(p, V);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(s2.sample(l).ok());
}

}  // namespace
}  // namespace velo
