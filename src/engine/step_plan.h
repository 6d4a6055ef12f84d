// StepPlan: the plain data the scheduler hands the model runner each step.
// It never touches tensors; the runner never makes scheduling decisions.
#pragma once
#include <cstdint>
#include <vector>

namespace velo {

struct ScheduledSeq {
  uint64_t seq_id = 0;
  std::vector<int32_t> tokens;       // tokens to compute this step (a prompt chunk, or 1 decode token)
  int32_t start_pos = 0;             // position of tokens[0] (= tokens already in the KV cache)
  std::vector<int32_t> block_table;  // physical KV blocks covering positions [0, start_pos + tokens.size())
  bool need_logits = false;          // logits of the last token are wanted (chunk ends the known tokens)
};

struct StepPlan {
  std::vector<ScheduledSeq> seqs;
  int32_t num_tokens() const {
    int32_t n = 0;
    for (const auto& s : seqs) n += static_cast<int32_t>(s.tokens.size());
    return n;
  }
};

}  // namespace velo
