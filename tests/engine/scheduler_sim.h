// Test support for the scheduler tests: a fake paged KV store that the fake
// "model" writes every scheduled token into, through the plan's block tables,
// and reads each sequence's whole context back from. The next token is a hash
// of the context read back, so a wrong block table, a prefix-cache hit on the
// wrong block, or a block overwritten while shared changes the output.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "engine/scheduler.h"

namespace velo::test {

inline int32_t next_token_of(const std::vector<int32_t>& ctx, int32_t vocab) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t t : ctx) h = (h ^ static_cast<uint32_t>(t)) * 1099511628211ull;
  return static_cast<int32_t>(h % static_cast<uint64_t>(vocab));
}

// The output of `prompt` run alone for `n` tokens.
inline std::vector<int32_t> run_alone(std::vector<int32_t> prompt, int32_t n, int32_t vocab) {
  std::vector<int32_t> out;
  for (int32_t i = 0; i < n; ++i) {
    out.push_back(next_token_of(prompt, vocab));
    prompt.push_back(out.back());
  }
  return out;
}

class FakeKvModel {
 public:
  FakeKvModel(int32_t num_blocks, int32_t block_size, int32_t vocab)
      : bs_(block_size), vocab_(vocab), slots_(static_cast<size_t>(num_blocks) * block_size, -1) {}

  // "Executes" a plan: checks its shape against the scheduler's requests, writes
  // the tokens into their KV slots (never into a block another sequence
  // shares), reads the contexts back; returns one token per need_logits seq.
  std::vector<int32_t> execute(const StepPlan& plan, const Scheduler& sched) {
    std::vector<int32_t> sampled;
    for (const auto& s : plan.seqs) {
      const Request* r = sched.get(s.seq_id);
      EXPECT_NE(r, nullptr);
      if (!r) continue;
      const int32_t end = s.start_pos + static_cast<int32_t>(s.tokens.size());
      EXPECT_FALSE(s.tokens.empty());
      EXPECT_EQ(s.start_pos, r->num_computed);
      EXPECT_LE(end, r->num_tokens());
      EXPECT_EQ(s.need_logits, end == r->num_tokens());
      EXPECT_EQ(static_cast<int32_t>(s.block_table.size()), (end + bs_ - 1) / bs_);
      for (int32_t p = s.start_pos; p < end; ++p) {
        EXPECT_EQ(s.tokens[p - s.start_pos], r->tokens[p]);
        const int32_t b = s.block_table[p / bs_];
        EXPECT_EQ(sched.kv().pool().ref_count(b), 1) << "write into shared block " << b;
        slots_[static_cast<size_t>(b) * bs_ + p % bs_] = s.tokens[p - s.start_pos];
      }
      if (!s.need_logits) continue;
      std::vector<int32_t> ctx;
      for (int32_t p = 0; p < end; ++p) ctx.push_back(slots_[static_cast<size_t>(s.block_table[p / bs_]) * bs_ + p % bs_]);
      EXPECT_EQ(ctx, std::vector<int32_t>(r->tokens.begin(), r->tokens.begin() + end)) << "seq " << s.seq_id;
      sampled.push_back(next_token_of(ctx, vocab_));
    }
    return sampled;
  }

 private:
  int32_t bs_, vocab_;
  std::vector<int32_t> slots_;
};

}  // namespace velo::test
