#include "model/forward.h"

#include <string>

namespace velo {

Status validate_plan(const StepPlan& plan, const TransformerLimits& lim, int32_t n_vocab) {
  if (plan.seqs.size() > static_cast<size_t>(lim.max_seqs))
    return make_error("step plan has " + std::to_string(plan.seqs.size()) + " sequences, more than max_seqs " +
                      std::to_string(lim.max_seqs));
  int64_t total = 0;
  for (const auto& s : plan.seqs) {
    const std::string who = "sequence " + std::to_string(s.seq_id) + ": ";
    if (s.tokens.empty()) return make_error(who + "no tokens scheduled");
    total += static_cast<int64_t>(s.tokens.size());
    if (total > lim.max_batch_tokens)
      return make_error("step plan has more than max_batch_tokens (" + std::to_string(lim.max_batch_tokens) +
                        ") tokens");
    const int64_t end = static_cast<int64_t>(s.start_pos) + static_cast<int64_t>(s.tokens.size());
    if (s.start_pos < 0 || end > lim.ctx_size)
      return make_error(who + "positions [" + std::to_string(s.start_pos) + ", " + std::to_string(end) +
                        ") exceed the context size " + std::to_string(lim.ctx_size));
    const int64_t blocks_needed = (end + lim.block_size - 1) / lim.block_size;
    if (static_cast<int64_t>(s.block_table.size()) < blocks_needed)
      return make_error(who + "block table has " + std::to_string(s.block_table.size()) + " blocks, " +
                        std::to_string(blocks_needed) + " needed");
    for (int64_t b = 0; b < blocks_needed; ++b)
      if (s.block_table[b] < 0 || s.block_table[b] >= lim.num_kv_blocks)
        return make_error(who + "KV block id " + std::to_string(s.block_table[b]) + " is out of range [0, " +
                          std::to_string(lim.num_kv_blocks) + ")");
    for (int32_t tok : s.tokens)
      if (tok < 0 || tok >= n_vocab)
        return make_error(who + "token id " + std::to_string(tok) + " is out of range [0, " +
                          std::to_string(n_vocab) + ")");
  }
  return {};
}

}  // namespace velo
