// Sampling on the device, CPU side: what a Sampler hands the device
// (Sampler::device_args: settings, penalty window, the step's draw) and how
// EngineCore uses ModelRunner::execute_sample, with a fake "device" that runs
// the CPU Sampler's chain from those arguments. The engine must give every
// request the same tokens whichever path each step takes, and fall back to the
// logits path for steps the device sampler cannot serve.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>

#include "engine/engine_core.h"
#include "engine_fake_runner.h"
#include "engine/sampler.h"

namespace velo {
namespace {

using test::FakeRunner;
using test::FakeRunnerOptions;
using test::FakeTokenizer;

constexpr int32_t kV = FakeTokenizer::kVocab;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

double first_uniform(uint64_t seed) {
  std::mt19937_64 rng(seed);
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

std::vector<float> random_logits(uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::uniform_real_distribution<float> d(-4.0f, 4.0f);
  std::vector<float> l(kV);
  for (auto& x : l) x = d(rng);
  return l;
}

TEST(SamplerDeviceArgs, CarriesSettingsAndTheFirstDraw) {
  SamplingParams p;
  p.seed = 1234;
  p.temperature = 0.7f, p.top_k = 12, p.top_p = 0.9f, p.min_p = 0.02f;
  p.repeat_penalty = 1.2f, p.frequency_penalty = 0.25f, p.presence_penalty = 0.5f;
  Sampler s(p, kV);
  std::vector<int32_t> toks, counts;
  const SampleArgs a = s.device_args(toks, counts);
  EXPECT_EQ(a.temperature, 0.7f);
  EXPECT_EQ(a.top_k, 12);
  EXPECT_EQ(a.top_p, 0.9f);
  EXPECT_EQ(a.min_p, 0.02f);
  EXPECT_EQ(a.repeat_penalty, 1.2f);
  EXPECT_EQ(a.frequency_penalty, 0.25f);
  EXPECT_EQ(a.presence_penalty, 0.5f);
  EXPECT_EQ(a.u, first_uniform(1234));  // the u sample() would have drawn
  EXPECT_EQ(a.n_penalty_tokens, 0);
  EXPECT_TRUE(toks.empty());
}

TEST(SamplerDeviceArgs, TakesExactlyTheDrawsSampleWould) {
  SamplingParams p;
  p.seed = 99;
  const auto l1 = random_logits(1), l2 = random_logits(2), l3 = random_logits(3);
  // a: CPU, CPU, CPU. b: CPU, device, CPU. The third token must agree.
  Sampler a(p, kV), b(p, kV);
  std::vector<int32_t> toks, counts;
  ASSERT_EQ(*a.sample(l1), *b.sample(l1));
  (void)*a.sample(l2);
  (void)b.device_args(toks, counts);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(*a.sample(l3), *b.sample(l3)) << i;
  // Greedy never draws: u stays 0 and the RNG is untouched (it is never used).
  p.temperature = 0.0f;
  Sampler g(p, kV);
  EXPECT_EQ(g.device_args(toks, counts).u, 0.0);
}

TEST(SamplerDeviceArgs, PenaltyWindowAsDistinctPairs) {
  SamplingParams p;
  p.repeat_penalty = 1.1f;
  p.repeat_last_n = 3;
  Sampler s(p, kV);
  s.accept(std::vector<int32_t>{5, 5, 7, 9, 7});  // window: 7 9 7
  std::vector<int32_t> toks = {42}, counts = {1};  // another sequence's pairs come first
  EXPECT_EQ(s.num_penalty_tokens(), 2);
  const SampleArgs a = s.device_args(toks, counts);
  EXPECT_EQ(a.penalty_offset, 1);
  EXPECT_EQ(a.n_penalty_tokens, 2);
  std::map<int32_t, int32_t> got;
  for (size_t i = 1; i < toks.size(); ++i) got[toks[i]] = counts[i];
  EXPECT_EQ(got, (std::map<int32_t, int32_t>{{7, 2}, {9, 1}}));

  p.repeat_last_n = -1;  // the whole history
  Sampler all(p, kV);
  all.accept(std::vector<int32_t>{5, 5, 7, 9, 7});
  toks.clear(), counts.clear();
  (void)all.device_args(toks, counts);
  got.clear();
  for (size_t i = 0; i < toks.size(); ++i) got[toks[i]] = counts[i];
  EXPECT_EQ(got, (std::map<int32_t, int32_t>{{5, 2}, {7, 2}, {9, 1}}));

  p.repeat_penalty = 1.0f;  // no penalty: no window
  Sampler none(p, kV);
  none.accept(5);
  EXPECT_EQ(none.num_penalty_tokens(), 0);
}

TEST(SamplerDeviceArgs, CompatibleOnlyWithoutBiasMaskOrLogprobs) {
  const std::vector<int32_t> eog = {2};
  SamplingParams p;
  EXPECT_TRUE(Sampler(p, kV, eog).device_compatible());
  SamplingParams q = p;
  q.logit_bias[4] = 1.0f;
  EXPECT_FALSE(Sampler(q, kV, eog).device_compatible());
  q = p;
  q.logprobs = true;
  EXPECT_FALSE(Sampler(q, kV, eog).device_compatible());
  q = p;
  q.top_logprobs = 2;
  EXPECT_FALSE(Sampler(q, kV, eog).device_compatible());
  q = p;
  q.ignore_eos = true;
  EXPECT_FALSE(Sampler(q, kV, eog).device_compatible());
  EXPECT_TRUE(Sampler(q, kV, {}).device_compatible());  // nothing to mask
}

// The CPU Sampler's chain (sampler.cpp), run from a SampleArgs as a device
// would: penalties -> argmax -> top-k -> top-p -> min-p -> temperature -> draw.
int32_t reference_sample(std::span<const float> in, const SampleArgs& a, const int32_t* pt, const int32_t* pc) {
  std::vector<float> l(in.begin(), in.end());
  for (float x : l)
    if (std::isnan(x)) return static_cast<int32_t>(SampleFailure::NaN);
  for (int32_t j = 0; j < a.n_penalty_tokens; ++j) {
    const int32_t t = pt[a.penalty_offset + j];
    float x = l[t];
    if (a.repeat_penalty != 1.0f) x = x <= 0 ? x * a.repeat_penalty : x / a.repeat_penalty;
    x -= static_cast<float>(pc[a.penalty_offset + j]) * a.frequency_penalty + a.presence_penalty;
    l[t] = x;
  }
  const int32_t V = static_cast<int32_t>(l.size());
  int32_t best = 0;
  for (int32_t i = 1; i < V; ++i)
    if (l[i] > l[best]) best = i;
  if (l[best] == kNegInf) return static_cast<int32_t>(SampleFailure::NoToken);
  if (a.temperature <= 0) return best;
  struct C {
    int32_t id;
    float logit;
  };
  auto better = [](const C& x, const C& y) { return x.logit > y.logit || (x.logit == y.logit && x.id < y.id); };
  std::vector<C> c;
  for (int32_t i = 0; i < V; ++i)
    if (a.top_k > 0 || l[i] != kNegInf) c.push_back({i, l[i]});
  if (a.top_k > 0) {
    std::sort(c.begin(), c.end(), better);
    c.resize(std::min<size_t>(c.size(), static_cast<size_t>(a.top_k)));
  }
  size_t n = c.size();
  if (a.top_p < 1.0f) {
    float m = kNegInf;
    for (const C& x : c) m = std::max(m, x.logit);
    double sum = 0;
    for (const C& x : c) sum += std::exp(static_cast<double>(x.logit - m));
    const double target = static_cast<double>(a.top_p) * sum;
    std::sort(c.begin(), c.end(), better);
    double cum = 0;
    for (size_t i = 0; i < n; ++i) {
      cum += std::exp(static_cast<double>(c[i].logit - m));
      if (cum >= target) {
        n = i + 1;
        break;
      }
    }
  }
  if (a.min_p > 0.0f && n > 1) {
    const float cut = l[best] + std::log(a.min_p);
    size_t k = 0;
    for (size_t i = 0; i < n; ++i)
      if (c[i].logit >= cut) c[k++] = c[i];
    n = k;
  }
  float m = kNegInf;
  for (size_t i = 0; i < n; ++i) m = std::max(m, c[i].logit);
  const double inv_t = 1.0 / a.temperature;
  std::vector<float> w(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += w[i] = static_cast<float>(std::exp((c[i].logit - m) * inv_t));
  const double target = a.u * sum;
  double cum = 0;
  int32_t last = c[0].id;
  for (size_t i = 0; i < n; ++i) {
    if (w[i] <= 0) continue;
    cum += w[i];
    last = c[i].id;
    if (cum > target) return last;
  }
  return last;
}

// FakeRunner plus a "device" sampler: logits from the fake forward pass, the
// chain above from the engine's arguments.
class DeviceFake final : public ModelRunner {
 public:
  DeviceFake(FakeRunnerOptions o, int32_t max_pen) : inner_(o), max_pen_(max_pen) {}
  const ModelConfig& config() const override { return inner_.config(); }
  const Tokenizer& tokenizer() const override { return inner_.tokenizer(); }
  const ChatTemplate& chat_template() const override { return inner_.chat_template(); }
  int32_t n_vocab() const override { return inner_.n_vocab(); }
  int32_t ctx_size() const override { return inner_.ctx_size(); }
  int32_t block_size() const override { return inner_.block_size(); }
  int32_t num_kv_blocks() const override { return inner_.num_kv_blocks(); }
  int32_t max_batch_tokens() const override { return inner_.max_batch_tokens(); }
  Result<std::span<const float>> execute(const StepPlan& plan) override { return inner_.execute(plan); }
  void copy_block(int32_t src, int32_t dst) override { inner_.copy_block(src, dst); }
  int32_t max_sample_penalty_tokens() const override { return max_pen_; }
  Status execute_sample(const StepPlan& plan, const SampleBatch& b, std::span<int32_t> tokens) override {
    VELO_ASSIGN_OR_RETURN(auto logits, inner_.execute(plan));
    size_t n = 0;
    for (const auto& s : plan.seqs) n += s.need_logits;
    if (b.seqs.size() != n || tokens.size() != n) return make_error("fake device: wrong batch size");
    if (b.penalty_tokens.size() > static_cast<size_t>(max_pen_)) return make_error("fake device: too many penalties");
    for (size_t i = 0; i < n; ++i) {
      ++rows;
      tokens[i] = fail_next ? static_cast<int32_t>(SampleFailure::NoToken)
                            : reference_sample(logits.subspan(i * kV, kV), b.seqs[i], b.penalty_tokens.data(),
                                               b.penalty_counts.data());
      fail_next = false;
    }
    return {};
  }
  int rows = 0;
  bool fail_next = false;

 private:
  FakeRunner inner_;
  int32_t max_pen_;
};

struct Collected {
  std::map<uint64_t, std::vector<int32_t>> tokens;
  std::map<uint64_t, size_t> logprobs;
  std::map<uint64_t, std::string> errors;
};

struct Result2 {
  Collected c;
  uint64_t steps = 0, device_steps = 0;
};

Result2 run(ModelRunner& r, const std::vector<SamplingParams>& ps) {
  EngineOptions eo;
  eo.max_running = 8;
  EngineCore core(r, eo);
  Result2 out;
  const char* prompts[] = {"hello world", "the quick brown fox", "a", "lorem ipsum dolor", "xyz"};
  for (size_t i = 0; i < ps.size(); ++i) {
    GenerationRequest req;
    req.prompt = r.tokenizer().encode(prompts[i % 5], true);
    req.params = ps[i];
    EXPECT_TRUE(core.check(req).ok());
    core.add(i + 1, std::move(req), [&out](const RequestOutput& o) {
      auto& t = out.c.tokens[o.id];
      t.insert(t.end(), o.tokens.begin(), o.tokens.end());
      out.c.logprobs[o.id] += o.logprobs.size();
      if (!o.error.empty()) out.c.errors[o.id] = o.error;
    }, EngineCore::Clock::now());
  }
  while (core.step()) ++out.steps;
  out.device_steps = core.device_sampled_steps();
  return out;
}

std::vector<SamplingParams> mixed() {
  std::vector<SamplingParams> ps;
  SamplingParams p;
  p.max_tokens = 30;
  p.seed = 1;
  ps.push_back(p);  // defaults: T 0.8, top-k 40, top-p 0.95, min-p 0.05
  p.seed = 2, p.top_k = 0, p.top_p = 0.8f, p.temperature = 1.3f;
  ps.push_back(p);
  p.seed = 3, p.top_p = 1.0f, p.min_p = 0.0f;
  ps.push_back(p);
  p.seed = 4, p.top_k = 8, p.repeat_penalty = 1.4f, p.frequency_penalty = 0.3f, p.presence_penalty = 0.2f;
  ps.push_back(p);
  p.seed = 5, p.temperature = 0.0f, p.repeat_last_n = -1;
  ps.push_back(p);
  return ps;
}

FakeRunnerOptions fake_opts() {
  FakeRunnerOptions o;
  o.eog_after = 28;  // some requests end on </s>
  return o;
}

TEST(EngineDeviceSampling, SameTokensAsTheCpuPath) {
  FakeRunner cpu(fake_opts());
  DeviceFake dev(fake_opts(), 1 << 16);
  const auto ps = mixed();
  const Result2 a = run(cpu, ps), b = run(dev, ps);
  EXPECT_EQ(a.device_steps, 0u);
  EXPECT_EQ(b.device_steps, b.steps);
  EXPECT_GT(dev.rows, 0);
  EXPECT_EQ(a.c.tokens, b.c.tokens);
  EXPECT_TRUE(b.c.errors.empty());
}

TEST(EngineDeviceSampling, LogprobsAndBiasStepsFallBackAndStayInSync) {
  FakeRunner cpu(fake_opts());
  DeviceFake dev(fake_opts(), 1 << 16);
  auto ps = mixed();
  SamplingParams lp;
  lp.seed = 7, lp.max_tokens = 5, lp.top_logprobs = 2;
  ps.push_back(lp);
  SamplingParams bias;
  bias.seed = 8, bias.max_tokens = 8;
  bias.logit_bias[5] = 3.0f;
  ps.push_back(bias);
  const Result2 a = run(cpu, ps), b = run(dev, ps);
  EXPECT_GT(b.device_steps, 0u);
  EXPECT_GE(b.steps - b.device_steps, 8u);  // every step while the bias request ran
  EXPECT_EQ(a.c.tokens, b.c.tokens);
  EXPECT_EQ(b.c.logprobs.at(6), b.c.tokens.at(6).size());
}

TEST(EngineDeviceSampling, PenaltyWindowsBeyondCapacityFallBack) {
  FakeRunner cpu(fake_opts());
  DeviceFake dev(fake_opts(), 12);  // the request's window soon holds more distinct tokens
  SamplingParams p;
  p.seed = 9, p.max_tokens = 25, p.repeat_penalty = 1.3f;
  const Result2 a = run(cpu, {p}), b = run(dev, {p});
  EXPECT_GT(b.device_steps, 0u);
  EXPECT_LT(b.device_steps, b.steps);
  EXPECT_EQ(a.c.tokens, b.c.tokens);
}

TEST(EngineDeviceSampling, AFailedRowFinishesOnlyItsRequest) {
  DeviceFake dev(fake_opts(), 1 << 16);
  dev.fail_next = true;  // the first row of the first step: request 1
  SamplingParams p;
  p.seed = 10, p.max_tokens = 6;
  const Result2 b = run(dev, {p, p});
  ASSERT_EQ(b.c.errors.size(), 1u);
  EXPECT_NE(b.c.errors.at(1).find("every logit is -inf"), std::string::npos) << b.c.errors.at(1);
  EXPECT_EQ(b.c.tokens.at(2).size(), 6u);
}

}  // namespace
}  // namespace velo
