#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <random>

#include "scheduler_sim.h"

namespace velo {
namespace {

using test::FakeKvModel;
using test::run_alone;

constexpr int32_t kVocab = 1000;

std::vector<int32_t> toks(int32_t start, int32_t n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

SchedulerConfig cfg(int32_t blocks, int32_t bs = 4, int32_t budget = 16, int32_t running = 4) {
  SchedulerConfig c;
  c.num_blocks = blocks;
  c.block_size = bs;
  c.max_step_tokens = budget;
  c.max_running = running;
  c.max_waiting = 8;
  c.ctx_size = 256;
  return c;
}

#define ASSERT_INVARIANTS(s) \
  do { auto st_ = (s).check_invariants(); ASSERT_TRUE(st_) << st_.message(); } while (0)

// Runs steps, finishing requests that reached `want` output tokens; returns outputs.
struct Driver {
  Scheduler& s;
  FakeKvModel model;
  std::map<uint64_t, int32_t> want;
  std::map<uint64_t, std::vector<int32_t>> done;
  Driver(Scheduler& sch) : s(sch), model(sch.config().num_blocks, sch.config().block_size, kVocab) {}

  const StepPlan& step() {
    const StepPlan& plan = s.schedule();
    auto sampled = model.execute(plan, s);
    s.update(plan, sampled);
    for (const auto& q : plan.seqs) {
      Request* r = s.get(q.seq_id);
      if (r && r->num_output() >= want[q.seq_id]) {
        done[q.seq_id].assign(r->tokens.begin() + r->num_prompt, r->tokens.end());
        s.finish(q.seq_id);
      }
    }
    return plan;
  }
  void run(int max_steps = 10000) {
    for (int i = 0; i < max_steps && !s.empty(); ++i) {
      step();
      auto st = s.check_invariants();
      ASSERT_TRUE(st) << "step " << i << ": " << st.message();
    }
    ASSERT_TRUE(s.empty()) << "requests did not finish";
  }
};

TEST(Scheduler, ConfigValidation) {
  SchedulerConfig c = cfg(8);
  EXPECT_TRUE(c.validate());
  c.max_step_tokens = 0;
  EXPECT_FALSE(c.validate());
  c = cfg(0);
  EXPECT_FALSE(c.validate());
}

TEST(Scheduler, RejectsBadPromptsAndBoundsTheQueue) {
  SchedulerConfig c = cfg(8);  // 8 blocks x 4 = 32 tokens max per sequence
  c.max_waiting = 2;
  Scheduler s(c);
  EXPECT_EQ(s.max_seq_tokens(), 32);
  EXPECT_FALSE(s.add(1, {}));
  EXPECT_FALSE(s.add(1, toks(0, 32)));  // no room for a generated token
  EXPECT_TRUE(s.add(1, toks(0, 31)));
  EXPECT_FALSE(s.add(1, toks(0, 3)));   // id in use
  EXPECT_TRUE(s.add(2, toks(0, 3)));
  auto st = s.add(3, toks(0, 3));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.message(), "queue full");
  EXPECT_EQ(s.num_waiting(), 2);
}

TEST(Scheduler, ChunkedPrefillThenDecode) {
  Scheduler s(cfg(64, 4, 16));
  ASSERT_TRUE(s.add(1, toks(0, 40)));
  Driver d(s);
  d.want[1] = 3;
  // 40 prompt tokens in chunks of 16, 16, 8 (logits only on the last).
  const StepPlan& p1 = d.step();
  ASSERT_EQ(p1.seqs.size(), 1u);
  EXPECT_EQ(p1.seqs[0].start_pos, 0);
  EXPECT_EQ(p1.seqs[0].tokens.size(), 16u);
  EXPECT_FALSE(p1.seqs[0].need_logits);
  EXPECT_EQ(p1.seqs[0].block_table.size(), 4u);
  const StepPlan& p2 = d.step();
  EXPECT_EQ(p2.seqs[0].start_pos, 16);
  EXPECT_EQ(p2.seqs[0].tokens.size(), 16u);
  const StepPlan& p3 = d.step();
  EXPECT_EQ(p3.seqs[0].start_pos, 32);
  EXPECT_EQ(p3.seqs[0].tokens.size(), 8u);
  EXPECT_TRUE(p3.seqs[0].need_logits);
  EXPECT_EQ(s.get(1)->num_output(), 1);
  // Decode: one token a step at the next position.
  const StepPlan& p4 = d.step();
  EXPECT_EQ(p4.seqs[0].start_pos, 40);
  EXPECT_EQ(p4.seqs[0].tokens.size(), 1u);
  EXPECT_TRUE(p4.seqs[0].need_logits);
  d.run();
  EXPECT_EQ(d.done[1], run_alone(toks(0, 40), 3, kVocab));
}

TEST(Scheduler, LongPromptDoesNotStallDecoding) {
  Scheduler s(cfg(128, 4, 16));
  Driver d(s);
  ASSERT_TRUE(s.add(1, toks(0, 5)));
  d.want[1] = 20;
  d.step();  // 1 is decoding now
  ASSERT_TRUE(s.add(2, toks(100, 100)));
  d.want[2] = 1;
  for (int i = 0; i < 5; ++i) {
    const StepPlan& p = d.step();
    // Request 1 decodes every step and comes first; 2 gets the rest of the budget.
    ASSERT_EQ(p.seqs.size(), 2u);
    EXPECT_EQ(p.seqs[0].seq_id, 1u);
    EXPECT_EQ(p.seqs[0].tokens.size(), 1u);
    EXPECT_EQ(p.seqs[1].seq_id, 2u);
    EXPECT_EQ(p.seqs[1].tokens.size(), 15u);
    EXPECT_EQ(p.num_tokens(), 16);
  }
  d.run();
  EXPECT_EQ(d.done[1], run_alone(toks(0, 5), 20, kVocab));
  EXPECT_EQ(d.done[2], run_alone(toks(100, 100), 1, kVocab));
}

TEST(Scheduler, AdmitsInFifoOrderUpToMaxRunning) {
  Scheduler s(cfg(128, 4, 64, 2));
  Driver d(s);
  for (uint64_t id = 1; id <= 4; ++id) {
    ASSERT_TRUE(s.add(id, toks(static_cast<int32_t>(id) * 10, 4)));
    d.want[id] = 2;
  }
  const StepPlan& p = d.step();
  ASSERT_EQ(p.seqs.size(), 2u);
  EXPECT_EQ(p.seqs[0].seq_id, 1u);
  EXPECT_EQ(p.seqs[1].seq_id, 2u);
  EXPECT_EQ(s.num_running(), 2);
  EXPECT_EQ(s.num_waiting(), 2);
  d.step();  // 1 and 2 finish with their 2nd token
  const StepPlan& p3 = d.step();
  ASSERT_EQ(p3.seqs.size(), 2u);
  EXPECT_EQ(p3.seqs[0].seq_id, 3u);
  EXPECT_EQ(p3.seqs[1].seq_id, 4u);
  d.run();
  for (uint64_t id = 1; id <= 4; ++id) EXPECT_EQ(d.done[id], run_alone(toks(static_cast<int32_t>(id) * 10, 4), 2, kVocab));
}

TEST(Scheduler, BudgetLimitsAdmissionToAChunk) {
  Scheduler s(cfg(128, 4, 10, 4));
  Driver d(s);
  ASSERT_TRUE(s.add(1, toks(0, 6)));
  ASSERT_TRUE(s.add(2, toks(50, 8)));
  d.want[1] = d.want[2] = 1;
  const StepPlan& p = d.step();
  ASSERT_EQ(p.seqs.size(), 2u);
  EXPECT_EQ(p.seqs[0].tokens.size(), 6u);
  EXPECT_EQ(p.seqs[1].tokens.size(), 4u);  // the rest of the budget
  EXPECT_FALSE(p.seqs[1].need_logits);
  d.run();
}

TEST(Scheduler, PreemptsMostRecentlyAdmittedAndResumesWithIdenticalOutput) {
  // 6 blocks of 4 tokens: two requests of 8-token prompts growing to 16 do not fit together.
  Scheduler s(cfg(6, 4, 32, 4));
  Driver d(s);
  ASSERT_TRUE(s.add(1, toks(0, 8)));
  ASSERT_TRUE(s.add(2, toks(40, 8)));
  d.want[1] = d.want[2] = 8;
  bool saw_preemption = false;
  for (int i = 0; i < 200 && !s.empty(); ++i) {
    d.step();
    ASSERT_INVARIANTS(s);
    if (!s.last_preempted().empty()) {
      saw_preemption = true;
      ASSERT_EQ(s.last_preempted().size(), 1u);
      EXPECT_EQ(s.last_preempted()[0], 2u);  // the later admission
      const Request* r = s.get(2);
      ASSERT_NE(r, nullptr);
      EXPECT_EQ(r->state, RequestState::Waiting);
      EXPECT_EQ(r->num_computed, 0);
      EXPECT_GT(r->num_output(), 0);  // its generated tokens are kept, to be recomputed
      EXPECT_TRUE(s.kv().block_table(2).empty());
    }
  }
  EXPECT_TRUE(saw_preemption);
  EXPECT_GE(s.num_preemptions(), 1u);
  ASSERT_TRUE(s.empty());
  EXPECT_EQ(d.done[1], run_alone(toks(0, 8), 8, kVocab));
  EXPECT_EQ(d.done[2], run_alone(toks(40, 8), 8, kVocab));
}

TEST(Scheduler, PreemptedRequestResumesAtTheFrontOfTheQueue) {
  SchedulerConfig c = cfg(6, 4, 32, 4);
  Scheduler s(c);
  Driver d(s);
  ASSERT_TRUE(s.add(1, toks(0, 8)));
  ASSERT_TRUE(s.add(2, toks(40, 8)));
  d.want[1] = d.want[2] = d.want[3] = 8;
  while (s.last_preempted().empty()) d.step();
  ASSERT_TRUE(s.add(3, toks(80, 4)));  // queued after the preempted one
  ASSERT_EQ(s.get(2)->state, RequestState::Waiting);
  std::vector<uint64_t> admitted;  // the order in which 2 and 3 next run
  for (int i = 0; i < 200 && !s.empty(); ++i) {
    const StepPlan& p = d.step();
    for (const auto& q : p.seqs) {
      if (q.seq_id != 1 && std::find(admitted.begin(), admitted.end(), q.seq_id) == admitted.end()) {
        admitted.push_back(q.seq_id);
      }
    }
  }
  EXPECT_EQ(admitted, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(d.done[2], run_alone(toks(40, 8), 8, kVocab));
  EXPECT_EQ(d.done[3], run_alone(toks(80, 4), 8, kVocab));
}

TEST(Scheduler, FinishFreesBlocksImmediately) {
  Scheduler s(cfg(16, 4, 64));
  Driver d(s);
  ASSERT_TRUE(s.add(1, toks(0, 20)));
  d.want[1] = 100;
  d.step();
  EXPECT_EQ(s.kv().pool().num_free(), 16 - 5);  // 20 computed tokens in 5 blocks
  s.finish(1);
  EXPECT_EQ(s.kv().pool().num_free(), 16);
  EXPECT_TRUE(s.empty());
  ASSERT_INVARIANTS(s);
  // Cancelling a waiting request works too.
  ASSERT_TRUE(s.add(2, toks(0, 5)));
  s.finish(2);
  EXPECT_EQ(s.num_waiting(), 0);
  EXPECT_TRUE(s.schedule().seqs.empty());
}

TEST(Scheduler, UpdateSkipsRequestsFinishedMidStep) {
  Scheduler s(cfg(16, 4, 64));
  ASSERT_TRUE(s.add(1, toks(0, 4)));
  ASSERT_TRUE(s.add(2, toks(10, 4)));
  const StepPlan& p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 2u);
  s.finish(1);
  std::vector<int32_t> sampled{7, 9};
  s.update(p, sampled);
  EXPECT_EQ(s.get(2)->tokens.back(), 9);
  ASSERT_INVARIANTS(s);
}

TEST(Scheduler, PrefixHitsAreCountedAndTheLastTokenRecomputed) {
  Scheduler s(cfg(64, 4, 64));
  Driver d(s);
  auto system = toks(500, 12);  // 3 full blocks shared
  auto a = system, b = system;
  a.push_back(1);
  a.push_back(2);
  b.push_back(3);
  ASSERT_TRUE(s.add(1, a));
  d.want[1] = 2;
  d.run();
  ASSERT_TRUE(s.add(2, b));
  d.want[2] = 2;
  const StepPlan& p = d.step();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].start_pos, 12);
  EXPECT_EQ(p.seqs[0].tokens, std::vector<int32_t>{3});
  EXPECT_EQ(s.get(2)->num_cached_prompt, 12);
  EXPECT_EQ(s.kv().pool().prefix_queries(), 14u + 13u);
  EXPECT_EQ(s.kv().pool().prefix_hits(), 12u);
  d.run();
  EXPECT_EQ(d.done[2], run_alone(b, 2, kVocab));

  // Exactly the same 12-token prompt again: only 8 tokens may come from the
  // cache; the last block (with the last token) is recomputed.
  ASSERT_TRUE(s.add(3, system));
  d.want[3] = 1;
  const StepPlan& p3 = d.step();
  EXPECT_EQ(p3.seqs[0].start_pos, 8);
  EXPECT_EQ(p3.seqs[0].tokens.size(), 4u);
  EXPECT_TRUE(p3.seqs[0].need_logits);
  d.run();
  EXPECT_EQ(d.done[3], run_alone(system, 1, kVocab));
}

TEST(Scheduler, ConcurrentSharedPrefixSharesBlocks) {
  Scheduler s(cfg(64, 4, 8));
  Driver d(s);
  auto prompt = toks(0, 16);
  ASSERT_TRUE(s.add(1, prompt));
  d.want[1] = 30;
  d.step();
  d.step();  // 16 tokens computed and registered
  ASSERT_TRUE(s.add(2, prompt));  // n > 1 completions of one prompt
  d.want[2] = 30;
  d.step();
  auto t1 = s.kv().block_table(1), t2 = s.kv().block_table(2);
  ASSERT_GE(t2.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(t1[i], t2[i]);
    EXPECT_EQ(s.kv().pool().ref_count(t1[i]), 2);
  }
  d.run();
  EXPECT_EQ(d.done[1], d.done[2]);
  EXPECT_EQ(d.done[1], run_alone(prompt, 30, kVocab));
}

TEST(Scheduler, SamePromptSubmittedTogetherIsComputedOnce) {
  // n = 3 completions of one 40-token prompt, budget 16: the first computes the
  // prompt in chunks; the others wait for its blocks instead of recomputing them.
  Scheduler s(cfg(64, 4, 16, 4));
  Driver d(s);
  auto prompt = toks(0, 40);
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(s.add(id, prompt));
    d.want[id] = 5;
  }
  int32_t computed = 0;
  for (int i = 0; i < 100 && !s.empty(); ++i) {
    computed += d.step().num_tokens();
    ASSERT_INVARIANTS(s);
  }
  ASSERT_TRUE(s.empty());
  // 40 prompt tokens once, the last block (4 tokens) by each of the other two,
  // and 4 decode steps each.
  EXPECT_EQ(computed, 40 + 2 * 4 + 3 * 4);
  EXPECT_EQ(s.kv().pool().prefix_hits(), 2u * 36u);
  for (uint64_t id = 1; id <= 3; ++id) EXPECT_EQ(d.done[id], run_alone(prompt, 5, kVocab));
}

TEST(Scheduler, WaitingForAnInFlightBlockDoesNotBlockOthers) {
  Scheduler s(cfg(64, 4, 16, 4));
  Driver d(s);
  ASSERT_TRUE(s.add(1, toks(0, 40)));
  ASSERT_TRUE(s.add(2, toks(0, 40)));   // waits for 1's blocks
  ASSERT_TRUE(s.add(3, toks(500, 6)));  // unrelated: admitted past 2
  d.want[1] = d.want[2] = d.want[3] = 2;
  const StepPlan& p = d.step();
  ASSERT_EQ(p.seqs.size(), 1u);  // 1 takes the whole budget
  const StepPlan& p2 = d.step();
  ASSERT_EQ(p2.seqs.size(), 1u);
  const StepPlan& p3 = d.step();  // 1 finishes its prompt (8 tokens); 3 (not 2) gets the rest
  ASSERT_EQ(p3.seqs.size(), 2u);
  EXPECT_EQ(p3.seqs[1].seq_id, 3u);
  d.run();
  EXPECT_EQ(d.done[2], run_alone(toks(0, 40), 2, kVocab));
  EXPECT_EQ(s.kv().pool().prefix_hits(), 36u);
}

// Random arrivals, lengths, shared prefixes, cancellations and a small pool:
// every invariant holds at every step and every completed output equals the
// output of its prompt run alone.
TEST(Scheduler, RandomizedStress) {
  uint64_t preemptions = 0, hits = 0;
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    std::mt19937 rng(seed);
    SchedulerConfig c = cfg(20 + static_cast<int32_t>(rng() % 30), 1 + static_cast<int32_t>(rng() % 6),
                            4 + static_cast<int32_t>(rng() % 40), 1 + static_cast<int32_t>(rng() % 6));
    c.max_waiting = 6;
    c.ctx_size = 64;
    c.prefix_caching = seed % 3 != 0;
    Scheduler s(c);
    Driver d(s);
    std::vector<std::vector<int32_t>> prefixes = {toks(0, 20), toks(300, 9), {}};
    std::map<uint64_t, std::vector<int32_t>> prompts;
    uint64_t next_id = 1;
    int cancelled = 0;
    for (int step = 0; step < 3000; ++step) {
      if (step < 2000 && rng() % 3 == 0) {
        std::vector<int32_t> p = prefixes[rng() % prefixes.size()];
        const int32_t extra = 1 + static_cast<int32_t>(rng() % 20);
        for (int32_t i = 0; i < extra; ++i) p.push_back(static_cast<int32_t>(rng() % 50));
        const int32_t cap = s.max_seq_tokens() - 1;
        if (static_cast<int32_t>(p.size()) > cap) p.resize(static_cast<size_t>(cap));
        const int32_t room = s.max_seq_tokens() - static_cast<int32_t>(p.size());
        const uint64_t id = next_id++;
        if (s.add(id, p)) {
          prompts[id] = p;
          d.want[id] = 1 + static_cast<int32_t>(rng() % static_cast<uint32_t>(std::min(room, 12)));
        }
      }
      if (!s.empty() && rng() % 25 == 0) {
        // Cancel a random live request.
        std::vector<uint64_t> live;
        for (const auto& kv : prompts) {
          if (s.get(kv.first)) live.push_back(kv.first);
        }
        const uint64_t id = live[rng() % live.size()];
        s.finish(id);
        ++cancelled;
        ASSERT_FALSE(s.kv().has(id));
        ASSERT_EQ(s.get(id), nullptr);
        prompts.erase(id);
      }
      d.step();
      auto st = s.check_invariants();
      ASSERT_TRUE(st) << "seed " << seed << " step " << step << ": " << st.message();
      if (step >= 2000 && s.empty()) break;
    }
    ASSERT_TRUE(s.empty()) << "seed " << seed;
    EXPECT_EQ(s.kv().pool().num_free(), c.num_blocks);
    int checked = 0;
    for (const auto& [id, p] : prompts) {
      if (!d.done.count(id)) continue;
      EXPECT_EQ(d.done[id], run_alone(p, d.want[id], kVocab)) << "seed " << seed << " request " << id;
      ++checked;
    }
    EXPECT_GT(checked, 50) << "seed " << seed;
    EXPECT_GT(cancelled, 0);
    preemptions += s.num_preemptions();
    hits += s.kv().pool().prefix_hits();
  }
  EXPECT_GT(preemptions, 0u);  // the pools are small enough to force some
  EXPECT_GT(hits, 0u);
}

}  // namespace
}  // namespace velo
