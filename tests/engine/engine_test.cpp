// Engine and EngineCore with a deterministic fake ModelRunner (no model):
// batching, preemption, prefix reuse, stops, limits, cancellation, errors and
// the thread-safe API. Real-model tests are in engine_model_test.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "engine/engine.h"
#include "engine/engine_core.h"
#include "engine_fake_runner.h"

namespace velo {
namespace {

using test::FakeRunner;
using test::FakeRunnerOptions;
using test::FakeTokenizer;

struct Collected {
  std::vector<int32_t> tokens;
  std::string text;
  std::vector<TokenLogprob> logprobs;
  bool finished = false;
  FinishReason reason = FinishReason::None;
  std::string error;
  int32_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
  int callbacks_after_finish = 0;
  double queue_s = -1, prompt_s = -1, decode_s = -1;
};

// Gathers callbacks (from any thread).
struct Sink {
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, Collected> by_id;

  Engine::Callback cb() {
    return [this](const RequestOutput& o) {
      std::lock_guard lk(mu);
      Collected& c = by_id[o.id];
      if (c.finished) ++c.callbacks_after_finish;
      c.tokens.insert(c.tokens.end(), o.tokens.begin(), o.tokens.end());
      c.text += o.text;
      c.logprobs.insert(c.logprobs.end(), o.logprobs.begin(), o.logprobs.end());
      c.finished = o.finished;
      c.reason = o.finish_reason;
      c.error = o.error;
      c.prompt_tokens = o.prompt_tokens;
      c.cached_tokens = o.cached_tokens;
      c.completion_tokens = o.completion_tokens;
      c.queue_s = o.queue_seconds;
      c.prompt_s = o.prompt_seconds;
      c.decode_s = o.decode_seconds;
      cv.notify_all();
    };
  }
  bool wait_finished(uint64_t id, std::chrono::milliseconds t = std::chrono::seconds(20)) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, t, [&] { return by_id.count(id) && by_id[id].finished; });
  }
  Collected get(uint64_t id) {
    std::lock_guard lk(mu);
    return by_id[id];
  }
};

std::vector<int32_t> random_prompt(std::mt19937& rng, int32_t n) {
  std::vector<int32_t> p{1};
  for (int32_t i = 1; i < n; ++i) p.push_back(3 + static_cast<int32_t>(rng() % 66));
  return p;
}

SamplingParams greedy(int32_t max_tokens) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = max_tokens;
  return p;
}

void drain(EngineCore& core, int max_steps = 100000) {
  for (int i = 0; i < max_steps && !core.idle(); ++i) core.step();
  ASSERT_TRUE(core.idle());
}

// The output of one request on an engine of its own.
Collected run_alone(const std::vector<int32_t>& prompt, const SamplingParams& params, FakeRunnerOptions ro = {}) {
  FakeRunner runner(ro);
  EngineOptions eo;
  EngineCore core(runner, eo);
  Sink sink;
  GenerationRequest req{prompt, params};
  EXPECT_TRUE(core.check(req));
  core.add(1, req, sink.cb(), EngineCore::Clock::now());
  drain(core);
  return sink.get(1);
}

TEST(EngineCore, ConcurrentRequestsMatchRunningAlone) {
  std::mt19937 rng(1);
  FakeRunnerOptions ro;
  FakeRunner runner(ro);
  EngineOptions eo;
  eo.max_running = 16;
  eo.max_step_tokens = 64;
  EngineCore core(runner, eo);
  Sink sink;
  std::vector<GenerationRequest> reqs;
  for (uint64_t i = 0; i < 16; ++i) {
    SamplingParams p = greedy(12 + static_cast<int32_t>(i));
    if (i % 2) {  // seeded sampling must not depend on the batch either
      p.temperature = 0.9f;
      p.seed = 1000 + i;
    }
    reqs.push_back({random_prompt(rng, 5 + static_cast<int32_t>(rng() % 60)), p});
    core.add(i + 1, reqs.back(), sink.cb(), EngineCore::Clock::now());
  }
  drain(core);
  EXPECT_GT(runner.max_seen_seqs, 8);
  EXPECT_LE(runner.max_seen_tokens, 64);
  for (uint64_t i = 0; i < 16; ++i) {
    Collected c = sink.get(i + 1), alone = run_alone(reqs[i].prompt, reqs[i].params);
    EXPECT_EQ(c.tokens, alone.tokens) << "request " << i;
    EXPECT_EQ(c.tokens.size(), static_cast<size_t>(reqs[i].params.max_tokens));
    EXPECT_EQ(c.reason, FinishReason::Length);
    EXPECT_EQ(c.text, runner.tokenizer().decode(c.tokens, false));
    EXPECT_EQ(c.prompt_tokens, static_cast<int32_t>(reqs[i].prompt.size()));
    EXPECT_EQ(c.completion_tokens, static_cast<int32_t>(c.tokens.size()));
    EXPECT_EQ(c.callbacks_after_finish, 0);
    EXPECT_GE(c.queue_s, 0);
    EXPECT_GE(c.prompt_s, 0);
    EXPECT_GE(c.decode_s, 0);
  }
  EngineStats st = core.stats();
  EXPECT_EQ(st.requests_finished_total, 16u);
  EXPECT_EQ(st.running, 0);
  EXPECT_DOUBLE_EQ(st.kv_usage, 0.0);
}

TEST(EngineCore, PreemptionKeepsOutputsIdentical) {
  std::mt19937 rng(2);
  FakeRunnerOptions ro;
  ro.num_blocks = 40;  // 160 token slots for 16 requests of ~50 tokens each
  FakeRunner runner(ro);
  EngineOptions eo;
  eo.max_running = 16;
  eo.max_step_tokens = 128;
  EngineCore core(runner, eo);
  Sink sink;
  std::vector<GenerationRequest> reqs;
  for (uint64_t i = 0; i < 16; ++i) {
    SamplingParams p = greedy(24);
    if (i % 3 == 0) {
      p.temperature = 1.0f;
      p.seed = 77 + i;
    }
    reqs.push_back({random_prompt(rng, 10 + static_cast<int32_t>(rng() % 30)), p});
    core.add(i + 1, reqs.back(), sink.cb(), EngineCore::Clock::now());
  }
  drain(core);
  EXPECT_GT(core.stats().preemptions_total, 0u);
  for (uint64_t i = 0; i < 16; ++i) {
    EXPECT_EQ(sink.get(i + 1).tokens, run_alone(reqs[i].prompt, reqs[i].params).tokens) << "request " << i;
  }
  EXPECT_DOUBLE_EQ(core.stats().kv_usage, 0.0);
}

TEST(EngineCore, SharedPrefixIsCountedAsCachedTokens) {
  std::mt19937 rng(3);
  FakeRunner runner({});
  EngineCore core(runner, {});
  Sink sink;
  auto system = random_prompt(rng, 37);  // 9 full blocks of 4
  auto a = system, b = system;
  a.push_back(10);
  b.push_back(11);
  b.push_back(12);
  core.add(1, {a, greedy(4)}, sink.cb(), EngineCore::Clock::now());
  drain(core);
  core.add(2, {b, greedy(4)}, sink.cb(), EngineCore::Clock::now());
  drain(core);
  EXPECT_EQ(sink.get(1).cached_tokens, 0);
  EXPECT_EQ(sink.get(2).cached_tokens, 36);
  EXPECT_EQ(sink.get(2).tokens, run_alone(b, greedy(4)).tokens);
  EngineStats st = core.stats();
  EXPECT_EQ(st.prefix_hits_total, 36u);
  EXPECT_EQ(st.prefix_queries_total, a.size() + b.size());
}

TEST(EngineCore, StopStringEndsTheTextBeforeIt) {
  std::mt19937 rng(4);
  auto prompt = random_prompt(rng, 9);
  Collected full = run_alone(prompt, greedy(40));
  ASSERT_EQ(full.text.size(), 40u);
  const std::string stop = full.text.substr(17, 3);
  const size_t at = full.text.find(stop);
  SamplingParams p = greedy(40);
  p.stop = {"never-there", stop};
  Collected c = run_alone(prompt, p);
  EXPECT_EQ(c.reason, FinishReason::Stop);
  EXPECT_EQ(c.text, full.text.substr(0, at));
  // The tokens up to the one completing the stop string were generated.
  EXPECT_EQ(c.tokens.size(), at + stop.size());
}

TEST(EngineCore, EndOfGenerationStopsUnlessIgnored) {
  std::mt19937 rng(5);
  auto prompt = random_prompt(rng, 10);
  FakeRunnerOptions ro;
  ro.eog_after = 15;  // the 6th generated token would be </s>
  Collected c = run_alone(prompt, greedy(50), ro);
  EXPECT_EQ(c.reason, FinishReason::Stop);
  EXPECT_EQ(c.tokens.size(), 5u);  // </s> itself is not emitted
  EXPECT_EQ(c.completion_tokens, 5);
  SamplingParams p = greedy(20);
  p.ignore_eos = true;
  Collected d = run_alone(prompt, p, ro);
  EXPECT_EQ(d.reason, FinishReason::Length);
  EXPECT_EQ(d.tokens.size(), 20u);
  for (int32_t t : d.tokens) EXPECT_NE(t, 2);
}

TEST(EngineCore, ContextFullEndsWithLength) {
  std::mt19937 rng(6);
  FakeRunnerOptions ro;
  ro.ctx_size = 32;
  auto prompt = random_prompt(rng, 20);
  Collected c = run_alone(prompt, greedy(-1), ro);
  EXPECT_EQ(c.reason, FinishReason::Length);
  EXPECT_EQ(c.tokens.size(), 12u);  // prompt + output == context
  // A KV pool smaller than the context bounds a sequence the same way.
  ro.ctx_size = 256;
  ro.num_blocks = 7;
  Collected d = run_alone(prompt, greedy(-1), ro);
  EXPECT_EQ(d.reason, FinishReason::Length);
  EXPECT_EQ(d.tokens.size(), 8u);
}

TEST(EngineCore, MaxTokensZeroFinishesAtOnce) {
  Collected c = run_alone({1, 5, 6}, greedy(0));
  EXPECT_TRUE(c.finished);
  EXPECT_EQ(c.reason, FinishReason::Length);
  EXPECT_TRUE(c.tokens.empty());
  EXPECT_EQ(c.prompt_tokens, 3);
}

TEST(EngineCore, LogprobsAreReportedPerToken) {
  SamplingParams p = greedy(6);
  p.logprobs = true;
  p.top_logprobs = 3;
  Collected c = run_alone({1, 7, 8, 9}, p);
  ASSERT_EQ(c.logprobs.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(c.logprobs[i].token, c.tokens[i]);
    EXPECT_LE(c.logprobs[i].logprob, 0.0f);
    ASSERT_EQ(c.logprobs[i].top.size(), 3u);
    EXPECT_EQ(c.logprobs[i].top[0].first, c.tokens[i]);  // greedy picks the top one
  }
}

TEST(EngineCore, CancelFreesBlocksAtOnce) {
  FakeRunner runner({});
  EngineCore core(runner, {});
  Sink sink;
  core.add(1, {std::vector<int32_t>(30, 5), greedy(100)}, sink.cb(), EngineCore::Clock::now());
  core.add(2, {std::vector<int32_t>(10, 6), greedy(100)}, sink.cb(), EngineCore::Clock::now());
  for (int i = 0; i < 3; ++i) core.step();
  EXPECT_GT(core.stats().kv_usage, 0.0);
  core.cancel(1);
  core.cancel(2);
  EXPECT_DOUBLE_EQ(core.stats().kv_usage, 0.0);
  EXPECT_TRUE(core.idle());
  EXPECT_EQ(sink.get(1).reason, FinishReason::Cancelled);
  EXPECT_EQ(sink.get(2).reason, FinishReason::Cancelled);
  EXPECT_FALSE(sink.get(1).tokens.empty());
  core.cancel(1);  // unknown now: nothing happens
  EXPECT_EQ(sink.get(1).callbacks_after_finish, 0);
}

TEST(EngineCore, ForwardFailureEndsTheStepsRequestsWithError) {
  FakeRunnerOptions ro;
  ro.fail_on_call = 2;
  FakeRunner runner(ro);
  EngineCore core(runner, {});
  Sink sink;
  core.add(1, {{1, 5, 6, 7}, greedy(10)}, sink.cb(), EngineCore::Clock::now());
  drain(core);
  Collected c = sink.get(1);
  EXPECT_EQ(c.reason, FinishReason::Error);
  EXPECT_NE(c.error.find("injected failure"), std::string::npos) << c.error;
  EXPECT_EQ(c.tokens.size(), 2u);
  EXPECT_DOUBLE_EQ(core.stats().kv_usage, 0.0);
}

TEST(EngineCore, CheckRejectsBadRequests) {
  FakeRunnerOptions ro;
  ro.ctx_size = 16;
  FakeRunner runner(ro);
  EngineCore core(runner, {});
  EXPECT_FALSE(core.check({{}, greedy(1)}));
  EXPECT_FALSE(core.check({std::vector<int32_t>(16, 5), greedy(1)}));
  EXPECT_TRUE(core.check({std::vector<int32_t>(15, 5), greedy(1)}));
  EXPECT_FALSE(core.check({{1, FakeTokenizer::kVocab}, greedy(1)}));
  EXPECT_FALSE(core.check({{1, -1}, greedy(1)}));
  SamplingParams bad = greedy(1);
  bad.temperature = -1;
  auto st = core.check({{1, 5}, bad});
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("temperature"), std::string::npos);
}

// ---- the threaded Engine ----------------------------------------------------

std::unique_ptr<Engine> make_engine(FakeRunnerOptions ro, EngineOptions eo, FakeRunner** raw = nullptr) {
  auto runner = std::make_unique<FakeRunner>(ro);
  if (raw) *raw = runner.get();
  auto e = Engine::create(std::move(runner), eo);
  EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.message());
  return std::move(e).value();
}

TEST(Engine, ConcurrentSubmitsFromManyThreadsMatchRunningAlone) {
  EngineOptions eo;
  eo.max_running = 8;
  eo.max_waiting = 64;
  eo.max_step_tokens = 48;
  FakeRunnerOptions ro;
  ro.num_blocks = 60;  // forces preemption too
  auto engine = make_engine(ro, eo);
  Sink sink;
  std::vector<std::vector<int32_t>> prompts(16);
  std::vector<uint64_t> ids(16);
  std::mt19937 rng(9);
  for (auto& p : prompts) p = random_prompt(rng, 5 + static_cast<int32_t>(rng() % 40));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < 16; i += 4) {
        auto id = engine->submit({prompts[i], greedy(16)}, sink.cb());
        ASSERT_TRUE(id.ok()) << id.message();
        ids[i] = *id;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(sink.wait_finished(ids[i]));
    EXPECT_EQ(sink.get(ids[i]).tokens, run_alone(prompts[i], greedy(16)).tokens) << i;
  }
  EngineStats st = engine->stats();
  EXPECT_EQ(st.requests_finished_total, 16u);
  EXPECT_EQ(st.generation_tokens_total, 16u * 16u);
  EXPECT_GE(st.prompt_tokens_total, 16u * 5u);
  engine->shutdown(std::chrono::milliseconds(0));
  EXPECT_FALSE(engine->submit({{1, 5}, greedy(1)}, sink.cb()).ok());
}

TEST(Engine, QueueFullIsAnError) {
  FakeRunnerOptions ro;
  ro.block_on_call = 1;  // the second step waits until released
  EngineOptions eo;
  eo.max_running = 1;
  eo.max_waiting = 3;
  FakeRunner* runner = nullptr;
  auto engine = make_engine(ro, eo, &runner);
  Sink sink;
  auto first = engine->submit({{1, 5, 6}, greedy(50)}, sink.cb());
  ASSERT_TRUE(first.ok());
  runner->wait_entered();  // step 1 done: the first request runs, the queue is empty
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(engine->submit({{1, 7}, greedy(2)}, sink.cb()).ok()) << i;
  auto full = engine->submit({{1, 7}, greedy(2)}, sink.cb());
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.message(), "queue full");
  EXPECT_EQ(engine->stats().waiting, 3);
  runner->release();
  ASSERT_TRUE(sink.wait_finished(*first));
  engine->shutdown(std::chrono::seconds(20));
}

TEST(Engine, CancelReleasesBlocksWithinOneStep) {
  FakeRunnerOptions ro;
  ro.block_on_call = 3;
  FakeRunner* runner = nullptr;
  auto engine = make_engine(ro, {}, &runner);
  std::atomic<int32_t> calls_at_cancel{-1};
  Sink sink;
  auto cb = sink.cb();
  auto id = engine->submit({std::vector<int32_t>(40, 9), greedy(1000)}, [&, cb](const RequestOutput& o) {
    if (o.finish_reason == FinishReason::Cancelled) calls_at_cancel = runner->calls_.load();
    cb(o);
  });
  ASSERT_TRUE(id.ok());
  runner->wait_entered();
  engine->cancel(*id);
  runner->release();
  ASSERT_TRUE(sink.wait_finished(*id));
  EXPECT_EQ(sink.get(*id).reason, FinishReason::Cancelled);
  EXPECT_EQ(calls_at_cancel.load(), 4);  // the step in flight ended; no further step ran
  // The stats after that step show the blocks released.
  for (int i = 0; i < 200 && engine->stats().kv_usage > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_DOUBLE_EQ(engine->stats().kv_usage, 0.0);
  EXPECT_EQ(engine->stats().running, 0);
}

TEST(Engine, IdleEngineDoesNotStep) {
  FakeRunner* runner = nullptr;
  auto engine = make_engine({}, {}, &runner);
  Sink sink;
  auto id = engine->submit({{1, 5, 6}, greedy(3)}, sink.cb());
  ASSERT_TRUE(sink.wait_finished(*id));
  const int32_t calls = runner->calls_.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(runner->calls_.load(), calls);
}

TEST(Engine, ShutdownDrainsOrCancels) {
  Sink sink;
  {
    auto engine = make_engine({}, {}, nullptr);
    auto id = engine->submit({{1, 5, 6}, greedy(20)}, sink.cb());
    engine->shutdown(std::chrono::seconds(20));  // long enough to finish normally
    ASSERT_TRUE(sink.wait_finished(*id, std::chrono::milliseconds(0)));
    EXPECT_EQ(sink.get(*id).reason, FinishReason::Length);
  }
  {
    FakeRunnerOptions ro;
    ro.ctx_size = 100000;
    ro.num_blocks = 30000;
    auto engine = make_engine(ro, {}, nullptr);
    auto id = engine->submit({{1, 5, 6}, greedy(-1)}, sink.cb());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    engine->shutdown(std::chrono::milliseconds(0));
    ASSERT_TRUE(sink.wait_finished(*id, std::chrono::milliseconds(0)));
    EXPECT_EQ(sink.get(*id).reason, FinishReason::Cancelled);
  }
}

// Many threads submit requests with random settings while another cancels at
// random, on a small KV pool: every request gets exactly one final callback,
// uncancelled greedy ones give the tokens they give alone, and everything is
// released at the end.
TEST(Engine, RandomizedSubmitAndCancelStress) {
  FakeRunnerOptions ro;
  ro.num_blocks = 48;
  ro.ctx_size = 96;
  ro.eog_after = 80;
  EngineOptions eo;
  eo.max_running = 6;
  eo.max_waiting = 1000;
  eo.max_step_tokens = 40;
  auto engine = make_engine(ro, eo);
  Sink sink;
  std::mutex mu;
  std::map<uint64_t, GenerationRequest> submitted;
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      for (int i = 0; i < 40; ++i) {
        SamplingParams p = greedy(1 + static_cast<int32_t>(rng() % 30));
        if (rng() % 3 == 0) {
          p.temperature = 0.7f;
          p.seed = rng();
        }
        if (rng() % 4 == 0) p.stop = {"ab", "x"};
        if (rng() % 5 == 0) p.max_tokens = -1;
        GenerationRequest req{random_prompt(rng, 2 + static_cast<int32_t>(rng() % 50)), p};
        auto id = engine->submit(req, sink.cb());
        ASSERT_TRUE(id.ok()) << id.message();
        std::lock_guard lk(mu);
        submitted.emplace(*id, std::move(req));
      }
    });
  }
  std::atomic<bool> stop{false};
  std::set<uint64_t> cancelled;
  std::thread canceller([&] {
    std::mt19937 rng(7);
    while (!stop) {
      uint64_t id = 1 + rng() % 120;
      {
        std::lock_guard lk(mu);
        cancelled.insert(id);
      }
      engine->cancel(id);
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  });
  for (auto& th : threads) th.join();
  for (const auto& kv : submitted) ASSERT_TRUE(sink.wait_finished(kv.first)) << kv.first;
  stop = true;
  canceller.join();
  int compared = 0;
  for (const auto& [id, req] : submitted) {
    Collected c = sink.get(id);
    EXPECT_EQ(c.callbacks_after_finish, 0);
    EXPECT_NE(c.reason, FinishReason::Error) << c.error;
    if (c.reason == FinishReason::Cancelled) {
      EXPECT_TRUE(cancelled.count(id));
      continue;
    }
    if (req.params.temperature == 0 && req.params.stop.empty() && compared < 30) {
      EXPECT_EQ(c.tokens, run_alone(req.prompt, req.params, ro).tokens) << id;
      ++compared;
    }
  }
  EXPECT_GT(compared, 5);
  EngineStats st = engine->stats();
  EXPECT_EQ(st.requests_finished_total, submitted.size());
  EXPECT_EQ(st.running + st.waiting, 0);
  EXPECT_DOUBLE_EQ(st.kv_usage, 0.0);
  EXPECT_GT(st.preemptions_total, 0u);
}

TEST(Engine, CreateValidatesOptions) {
  EngineOptions eo;
  eo.max_running = 0;
  EXPECT_FALSE(Engine::create(std::make_unique<FakeRunner>(FakeRunnerOptions{}), eo).ok());
  EXPECT_FALSE(Engine::create(nullptr, {}).ok());
  EXPECT_STREQ(finish_reason_name(FinishReason::Stop), "stop");
  EXPECT_STREQ(finish_reason_name(FinishReason::Length), "length");
}

}  // namespace
}  // namespace velo
