// The Engine on real models (velo-code-draft-12m, velo-code-40m): continuous
// batching, preemption and prefix reuse must not change a single greedy token.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>

#include "engine/engine.h"
#include "engine/engine_core.h"
#include "test_models.h"

namespace velo {
namespace {

constexpr const char* kDraft = "velo-code-draft-12m.Q8_0.gguf";
constexpr const char* kModel40m = "velo-code-40m.Q8_0.gguf";

const char* kPrompts[16] = {
    "def fibonacci(n):\n",
    "import os\nimport sys\n\ndef main():\n",
    "class Stack:\n    def __init__(self):\n",
    "# Sort a list of numbers\ndef sort_numbers(xs):\n",
    "for i in range(10):\n",
    "def is_prime(n):\n    if n < 2:\n",
    "#include <stdio.h>\n\nint main(void) {\n",
    "function add(a, b) {\n",
    "SELECT name, age FROM users WHERE",
    "def read_file(path):\n    with open(path) as f:\n",
    "x = [1, 2, 3]\ny = ",
    "public class Hello {\n    public static void main(String[] args) {\n",
    "def factorial(n):\n    \"\"\"Return n!\"\"\"\n",
    "while True:\n    line = input()\n",
    "# A binary search\ndef bsearch(a, x):\n    lo, hi = 0, len(a)\n",
    "let mut v = Vec::new();\n",
};

struct Out {
  std::vector<int32_t> tokens;
  std::string text;
  FinishReason reason = FinishReason::None;
  int32_t cached_tokens = 0;
  bool finished = false;
};

struct Sink {
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, Out> outs;
  Engine::Callback cb() {
    return [this](const RequestOutput& o) {
      std::lock_guard lk(mu);
      Out& x = outs[o.id];
      x.tokens.insert(x.tokens.end(), o.tokens.begin(), o.tokens.end());
      x.text += o.text;
      x.reason = o.finish_reason;
      x.cached_tokens = o.cached_tokens;
      x.finished = o.finished;
      cv.notify_all();
    };
  }
  bool wait(uint64_t id) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, std::chrono::seconds(120), [&] { return outs[id].finished; });
  }
};

std::unique_ptr<ModelRunner> load(const char* name, int32_t max_seqs, int32_t num_blocks = 0) {
  RunnerOptions ro;
  ro.threads = 2;
  ro.ctx_size = 256;
  ro.max_seqs = max_seqs;
  ro.kv_block_size = 16;
  ro.num_kv_blocks = num_blocks;
  ro.max_batch_tokens = 256;
  auto r = ModelRunner::load(test::model_path(name), ro);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.message());
  return r.ok() ? std::move(r).value() : nullptr;
}

SamplingParams greedy(int32_t n) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = n;
  p.ignore_eos = true;  // every request generates exactly n tokens
  return p;
}

std::vector<GenerationRequest> requests(const ModelRunner& runner, int32_t n_tokens) {
  std::vector<GenerationRequest> out;
  for (const char* p : kPrompts) out.push_back({runner.tokenizer().encode(p, true), greedy(n_tokens)});
  return out;
}

// Runs `reqs` on one EngineCore, all submitted at once; returns outputs in order.
std::vector<Out> run_together(ModelRunner& runner, const std::vector<GenerationRequest>& reqs,
                              const EngineOptions& eo, EngineStats* stats = nullptr) {
  EngineCore core(runner, eo);
  Sink sink;
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_TRUE(core.check(reqs[i]));
    core.add(i, reqs[i], sink.cb(), EngineCore::Clock::now());
  }
  while (!core.idle()) core.step();
  if (stats) *stats = core.stats();
  std::vector<Out> out;
  for (size_t i = 0; i < reqs.size(); ++i) out.push_back(sink.outs[i]);
  return out;
}

// Each request on an engine of its own, one after the other.
std::vector<Out> run_alone(ModelRunner& runner, const std::vector<GenerationRequest>& reqs) {
  std::vector<Out> out;
  for (const auto& r : reqs) out.push_back(run_together(runner, {r}, EngineOptions{})[0]);
  return out;
}

void expect_same(const std::vector<Out>& a, const std::vector<Out>& b, size_t n_tokens) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].tokens.size(), n_tokens) << "request " << i;
    EXPECT_EQ(a[i].tokens, b[i].tokens) << "request " << i << ": " << kPrompts[i];
    EXPECT_EQ(a[i].text, b[i].text) << "request " << i;
  }
}

TEST(EngineModel, SixteenConcurrentGreedyRequestsMatchRunningAlone) {
  auto runner = load(kDraft, 16);
  ASSERT_TRUE(runner);
  auto reqs = requests(*runner, 16);
  const auto t0 = std::chrono::steady_clock::now();
  auto alone = run_alone(*runner, reqs);
  const auto t1 = std::chrono::steady_clock::now();
  EngineOptions eo;
  eo.max_running = 16;
  eo.max_step_tokens = 64;  // chunked prefill mixed with decodes
  EngineStats st;
  auto together = run_together(*runner, reqs, eo, &st);
  const auto t2 = std::chrono::steady_clock::now();
  expect_same(together, alone, 16);
  // Not a degenerate model: different prompts continue differently.
  std::set<std::vector<int32_t>> distinct;
  for (const auto& o : together) distinct.insert(o.tokens);
  EXPECT_GE(distinct.size(), 12u);
  if (std::getenv("VELO_TEST_VERBOSE")) {
    for (size_t i = 0; i < 3; ++i) std::printf("[%s] -> [%s]\n", kPrompts[i], together[i].text.c_str());
    const double a = std::chrono::duration<double>(t1 - t0).count(), b = std::chrono::duration<double>(t2 - t1).count();
    std::printf("16 x 16 tokens: one at a time %.3f s (%.1f tok/s), batched %.3f s (%.1f tok/s)\n", a, 256 / a, b,
                256 / b);
  }
  EXPECT_EQ(st.preemptions_total, 0u);
  EXPECT_EQ(st.generation_tokens_total, 16u * 16u);
}

TEST(EngineModel, PreemptionWithATooSmallKvPoolKeepsOutputsIdentical) {
  auto runner = load(kDraft, 16, 24);  // 24 blocks x 16 tokens; the 16 requests need ~48
  ASSERT_TRUE(runner);
  auto reqs = requests(*runner, 24);
  auto alone = run_alone(*runner, reqs);
  EngineOptions eo;
  eo.max_running = 16;
  eo.max_step_tokens = 128;
  EngineStats st;
  auto together = run_together(*runner, reqs, eo, &st);
  EXPECT_GT(st.preemptions_total, 0u);
  expect_same(together, alone, 24);
  EXPECT_DOUBLE_EQ(st.kv_usage, 0.0);
}

TEST(EngineModel, FortyMillionModelBatchedMatchesAlone) {
  auto runner = load(kModel40m, 8);
  ASSERT_TRUE(runner);
  auto all = requests(*runner, 8);
  std::vector<GenerationRequest> reqs(all.begin(), all.begin() + 8);
  auto alone = run_alone(*runner, reqs);
  EngineOptions eo;
  eo.max_running = 8;
  eo.max_step_tokens = 32;
  auto together = run_together(*runner, reqs, eo);
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(together[i].tokens, alone[i].tokens) << kPrompts[i];
}

TEST(EngineModel, SharedPrefixIsServedFromTheCache) {
  auto runner = load(kDraft, 4);
  ASSERT_TRUE(runner);
  const std::string system =
      "# Utilities for working with lists of numbers.\n# Every function takes a list and returns a new one.\n"
      "# None of them modify their argument.\n\n";
  GenerationRequest a{runner->tokenizer().encode(system + "def double(xs):\n", true), greedy(12)};
  GenerationRequest b{runner->tokenizer().encode(system + "def negate(xs):\n", true), greedy(12)};
  size_t common = 0;
  while (common < a.prompt.size() && common < b.prompt.size() && a.prompt[common] == b.prompt[common]) ++common;
  const int32_t expect_cached = static_cast<int32_t>(common / 16 * 16);
  ASSERT_GE(expect_cached, 16) << "the shared prefix must cover a full block";

  EngineCore core(*runner, EngineOptions{});
  Sink sink;
  core.add(1, a, sink.cb(), EngineCore::Clock::now());
  while (!core.idle()) core.step();
  core.add(2, b, sink.cb(), EngineCore::Clock::now());
  while (!core.idle()) core.step();
  EXPECT_EQ(sink.outs[1].cached_tokens, 0);
  EXPECT_EQ(sink.outs[2].cached_tokens, expect_cached);
  EXPECT_EQ(core.stats().prefix_hits_total, static_cast<uint64_t>(expect_cached));
  // Reusing the cached blocks gives the same tokens as computing them.
  auto b_alone = run_alone(*runner, {b});
  EXPECT_EQ(sink.outs[2].tokens, b_alone[0].tokens);
}

TEST(EngineModel, SamePromptSubmittedTogetherIsComputedOnce) {
  auto runner = load(kDraft, 4);
  ASSERT_TRUE(runner);
  std::string text;
  for (int i = 0; i < 6; ++i) text += kPrompts[i];
  GenerationRequest req{runner->tokenizer().encode(text, true), greedy(10)};
  const int32_t n = static_cast<int32_t>(req.prompt.size());
  ASSERT_GE(n, 48);
  auto alone = run_alone(*runner, {req});
  EngineOptions eo;
  eo.max_running = 4;
  eo.max_step_tokens = 32;
  EngineStats st;
  auto together = run_together(*runner, {req, req, req, req}, eo, &st);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(together[i].tokens, alone[0].tokens) << i;
    EXPECT_EQ(together[i].cached_tokens, i == 0 ? 0 : (n - 1) / 16 * 16) << i;
  }
  EXPECT_EQ(st.prefix_hits_total, 3u * static_cast<uint64_t>((n - 1) / 16 * 16));
}

TEST(EngineModel, CancelFreesBlocks) {
  auto runner = load(kDraft, 2);
  ASSERT_TRUE(runner);
  const std::vector<int32_t> prompt = runner->tokenizer().encode(kPrompts[0], true);
  auto engine = Engine::create(std::move(runner), EngineOptions{});
  ASSERT_TRUE(engine.ok()) << engine.message();
  Sink sink;
  std::atomic<bool> cancelled{false};
  uint64_t id = 0;
  std::mutex id_mu;
  auto cb = sink.cb();
  std::unique_lock lk(id_mu);
  auto r = (*engine)->submit({prompt, greedy(200)}, [&, cb](const RequestOutput& o) {
    cb(o);
    // Cancel from the callback after the first tokens (like a client hanging up).
    if (!o.finished && !cancelled.exchange(true)) {
      std::lock_guard g(id_mu);
      (*engine)->cancel(id);
    }
  });
  ASSERT_TRUE(r.ok());
  id = *r;
  lk.unlock();
  ASSERT_TRUE(sink.wait(id));
  EXPECT_EQ(sink.outs[id].reason, FinishReason::Cancelled);
  EXPECT_LT(sink.outs[id].tokens.size(), 200u);
  for (int i = 0; i < 200 && (*engine)->stats().kv_usage > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_DOUBLE_EQ((*engine)->stats().kv_usage, 0.0);
  (*engine)->shutdown(std::chrono::milliseconds(0));
}

}  // namespace
}  // namespace velo
