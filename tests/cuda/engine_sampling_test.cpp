// The engine sampling on the GPU (ModelRunner::execute_sample): against the
// same GPU forward pass with sampling forced onto the CPU Sampler
// (RunnerOptions::sampling = Cpu), and against the CPU device for greedy.
// Both runs see the same logits bits (same kernels, same plans), and each
// request's Sampler hands the device the very draw it would have used, so
// every token must be equal; the only allowed difference would be a draw
// landing within double rounding of a cumulative boundary (see
// sampling_test.cpp: none expected). Skips without a GPU.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "backend/cuda/devices.h"
#include "engine/engine_core.h"
#include "engine/model_runner.h"
#include "test_models.h"

namespace velo {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (cuda::list_devices().empty()) GTEST_SKIP() << "no CUDA GPU"

constexpr const char* kModel = "velo-code-40m.Q8_0.gguf";

// With gpu_exact, max_batch_tokens <= 8 keeps every step on the kernels that follow the
// CPU's float order bit for bit (cuda matvec_q32.cu, paged_attention_exact.cu); larger
// steps run the tensor-core GEMMs, close to the CPU but not its bits.
std::unique_ptr<ModelRunner> load(Device d, Sampling s, int32_t max_batch_tokens = 256) {
  RunnerOptions o;
  o.gpu_exact = max_batch_tokens <= 8;
  o.device = d;
  o.sampling = s;
  o.threads = 4;
  o.max_seqs = 8;
  o.ctx_size = 512;
  o.max_batch_tokens = max_batch_tokens;
  auto r = ModelRunner::load(test::model_path(kModel), o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.message());
  return r.ok() ? std::move(r).value() : nullptr;
}

struct Out {
  std::vector<int32_t> tokens;
  std::vector<TokenLogprob> logprobs;
  FinishReason reason = FinishReason::None;
  std::string error;
};

struct EngineRun {
  std::map<uint64_t, Out> outs;
  uint64_t device_steps = 0, steps = 0;
};

// Submits every request at once (ids 1..n) and steps the core until all finish.
EngineRun run_engine(ModelRunner& runner, const std::vector<std::string>& prompts, const std::vector<SamplingParams>& ps) {
  EngineOptions eo;
  eo.max_running = 8;
  eo.max_step_tokens = 256;
  EngineCore core(runner, eo);
  EngineRun run;
  for (size_t i = 0; i < ps.size(); ++i) {
    GenerationRequest req;
    req.prompt = runner.tokenizer().encode(prompts[i % prompts.size()], true);
    req.params = ps[i];
    EXPECT_TRUE(core.check(req).ok());
    const uint64_t id = i + 1;
    core.add(id, std::move(req), [&run](const RequestOutput& o) {
      Out& x = run.outs[o.id];
      x.tokens.insert(x.tokens.end(), o.tokens.begin(), o.tokens.end());
      x.logprobs.insert(x.logprobs.end(), o.logprobs.begin(), o.logprobs.end());
      if (o.finished) {
        x.reason = o.finish_reason;
        x.error = o.error;
      }
    }, EngineCore::Clock::now());
  }
  while (core.step()) ++run.steps;
  run.device_steps = core.device_sampled_steps();
  return run;
}

const std::vector<std::string> kPrompts = {
    "def fibonacci(n):\n",
    "import os\nimport sys\n\ndef main():\n",
    "class Stack:\n    def __init__(self):\n",
    "# Sort a list of numbers\ndef sort_numbers(xs):\n",
    "for i in range(10):\n",
    "def is_prime(n):\n    if n < 2:\n",
};

SamplingParams seeded(uint64_t seed, int32_t max_tokens) {
  SamplingParams p;
  p.seed = seed;
  p.max_tokens = max_tokens;
  return p;
}

// Several concurrent requests, each a different part of the chain.
std::vector<SamplingParams> mixed_params() {
  std::vector<SamplingParams> ps;
  ps.push_back(seeded(11, 48));  // defaults: T 0.8, top-k 40, top-p 0.95, min-p 0.05
  SamplingParams p = seeded(22, 48);
  p.temperature = 1.2f, p.top_k = 0, p.top_p = 0.9f, p.min_p = 0.0f;  // top-p over the whole vocabulary
  ps.push_back(p);
  p = seeded(33, 48);
  p.temperature = 1.0f, p.top_k = 0, p.top_p = 1.0f, p.min_p = 0.0f;  // a draw from the full softmax
  ps.push_back(p);
  p = seeded(44, 48);
  p.repeat_penalty = 1.3f, p.repeat_last_n = 16, p.frequency_penalty = 0.5f, p.presence_penalty = 0.3f;
  ps.push_back(p);
  p = seeded(55, 48);
  p.temperature = 0.6f, p.top_k = 5, p.min_p = 0.1f, p.repeat_penalty = 1.1f, p.repeat_last_n = -1;
  ps.push_back(p);
  p = seeded(66, 48);
  p.temperature = 0.0f, p.repeat_penalty = 1.5f, p.presence_penalty = 1.0f;  // greedy with penalties
  ps.push_back(p);
  return ps;
}

void expect_same_tokens(const EngineRun& a, const EngineRun& b, size_t n) {
  ASSERT_EQ(a.outs.size(), n);
  ASSERT_EQ(b.outs.size(), n);
  for (uint64_t id = 1; id <= n; ++id) {
    const Out& x = a.outs.at(id);
    const Out& y = b.outs.at(id);
    EXPECT_TRUE(x.error.empty()) << "request " << id << ": " << x.error;
    EXPECT_FALSE(x.tokens.empty()) << "request " << id;
    EXPECT_EQ(x.tokens, y.tokens) << "request " << id;
    EXPECT_EQ(x.reason, y.reason) << "request " << id;
  }
}

// (1) Seeded temperature / top-k / top-p / min-p / penalties: the GPU sampler
// gives each request the tokens the CPU Sampler gives on the same GPU logits.
TEST(EngineGpuSampling, MatchesCpuSamplingOnTheSameForward) {
  SKIP_WITHOUT_GPU();
  auto dev = load(Device::Cuda, Sampling::Auto);
  auto host = load(Device::Cuda, Sampling::Cpu);
  ASSERT_TRUE(dev && host);
  ASSERT_GE(dev->max_sample_penalty_tokens(), 0) << dev->device();
  EXPECT_EQ(host->max_sample_penalty_tokens(), -1);
  const auto ps = mixed_params();
  const EngineRun a = run_engine(*dev, kPrompts, ps);
  const EngineRun b = run_engine(*host, kPrompts, ps);
  std::printf("  %s: %llu steps, %llu sampled on the GPU\n", dev->device().c_str(),
              static_cast<unsigned long long>(a.steps), static_cast<unsigned long long>(a.device_steps));
  EXPECT_EQ(a.device_steps, a.steps);  // every step had a token to sample and nothing the GPU lacks
  EXPECT_EQ(b.device_steps, 0u);
  expect_same_tokens(a, b, ps.size());
}

// (2) Greedy through the engine, sampled on the GPU, equals the CPU device.
TEST(EngineGpuSampling, GreedyMatchesCpuDevice) {
  SKIP_WITHOUT_GPU();
  auto dev = load(Device::Cuda, Sampling::Auto, 8);
  auto host = load(Device::Cuda, Sampling::Cpu, 8);
  auto cpu = load(Device::Cpu, Sampling::Auto, 8);
  ASSERT_TRUE(dev && host && cpu);
  EXPECT_EQ(cpu->max_sample_penalty_tokens(), -1);
  std::vector<SamplingParams> ps;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    SamplingParams p = seeded(100 + i, 32);
    p.temperature = 0.0f;
    ps.push_back(p);
  }
  const EngineRun a = run_engine(*dev, kPrompts, ps);
  const EngineRun h = run_engine(*host, kPrompts, ps);
  const EngineRun b = run_engine(*cpu, kPrompts, ps);
  EXPECT_GT(a.device_steps, 0u);
  EXPECT_EQ(b.device_steps, 0u);
  {
    SCOPED_TRACE("GPU sampling vs CPU sampling, both on the GPU forward pass (the sampler alone)");
    expect_same_tokens(a, h, ps.size());
  }
  {
    SCOPED_TRACE("GPU vs the CPU device (also needs the forward passes' argmax to agree)");
    expect_same_tokens(a, b, ps.size());
  }
}

// (3) Requests the GPU sampler cannot serve (logprobs, logit bias, ignore_eos
// masking) send their steps down the CPU path; the other requests' draws stay
// in sync, so all tokens equal the all-CPU-sampling run, and logprobs arrive.
TEST(EngineGpuSampling, FallsBackForLogprobsAndLogitBias) {
  SKIP_WITHOUT_GPU();
  auto dev = load(Device::Cuda, Sampling::Auto);
  auto host = load(Device::Cuda, Sampling::Cpu);
  ASSERT_TRUE(dev && host);
  auto ps = mixed_params();
  SamplingParams lp = seeded(77, 6);  // short: the steps after it finishes go to the GPU again
  lp.logprobs = true;
  lp.top_logprobs = 3;
  ps.push_back(lp);
  SamplingParams bias = seeded(88, 10);
  const auto boost = dev->tokenizer().encode("return", false);
  ASSERT_FALSE(boost.empty());
  bias.logit_bias[boost[0]] = 5.0f;
  ps.push_back(bias);
  SamplingParams no_eos = seeded(99, 4);
  no_eos.ignore_eos = true;
  ps.push_back(no_eos);
  const EngineRun a = run_engine(*dev, kPrompts, ps);
  const EngineRun b = run_engine(*host, kPrompts, ps);
  std::printf("  %llu steps, %llu sampled on the GPU\n", static_cast<unsigned long long>(a.steps),
              static_cast<unsigned long long>(a.device_steps));
  EXPECT_GT(a.device_steps, 0u);          // once the three above finished
  EXPECT_GE(a.steps - a.device_steps, 4u);  // while they ran (prompt step and their decode steps)
  expect_same_tokens(a, b, ps.size());
  const Out& l = a.outs.at(ps.size() - 2);  // the logprobs request
  ASSERT_EQ(l.logprobs.size(), l.tokens.size());
  for (const auto& e : l.logprobs) EXPECT_EQ(e.top.size(), 3u);
  const Out& lb = b.outs.at(ps.size() - 2);
  ASSERT_EQ(lb.logprobs.size(), l.logprobs.size());
  for (size_t i = 0; i < l.logprobs.size(); ++i) EXPECT_EQ(l.logprobs[i].logprob, lb.logprobs[i].logprob);
}

// Partial offload (the head on the CPU): no device sampling, nothing changes.
TEST(EngineGpuSampling, PartialOffloadSamplesOnTheCpu) {
  SKIP_WITHOUT_GPU();
  RunnerOptions o;
  o.device = Device::Cuda;
  o.gpu_layers = 3;
  o.max_seqs = 4;
  o.ctx_size = 256;
  auto r = ModelRunner::load(test::model_path(kModel), o);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ((*r)->max_sample_penalty_tokens(), -1);
  const EngineRun a = run_engine(**r, kPrompts, {seeded(5, 8), seeded(6, 8)});
  EXPECT_EQ(a.device_steps, 0u);
  EXPECT_EQ(a.outs.size(), 2u);
}

}  // namespace
}  // namespace velo
