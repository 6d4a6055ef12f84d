// The decoder-only transformer forward pass on the CPU over a flat batch: all
// scheduled tokens of all sequences go through each layer together (one
// matmul with m = total tokens), attention reads each sequence's K/V through
// its block table. Every buffer is sized for max_batch_tokens at creation.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/kv_cache.h"
#include "core/result.h"
#include "core/thread_pool.h"
#include "engine/step_plan.h"
#include "model/forward.h"
#include "model/config.h"
#include "model/weights.h"

namespace velo {

class Transformer final : public Forward {
 public:
  // cfg and w must outlive the transformer (the runner owns them). Layers below
  // first_layer run elsewhere (on a GPU): this one then has KV storage only for
  // layers [first_layer, n_layer) and is driven through forward_from().
  static Result<std::unique_ptr<Transformer>> create(const ModelConfig& cfg, const ModelWeights& w,
                                                     const TransformerLimits& lim, ThreadPool& pool,
                                                     int32_t first_layer = 0);

  // Forward: logits per sequence with need_logits; forward_all: for every token
  // (its buffer is allocated on first use: tests, tools, speculative verification).
  Result<std::span<const float>> forward(const StepPlan& plan) override { return run(plan, false, nullptr); }
  Result<std::span<const float>> forward_all(const StepPlan& plan) override { return run(plan, true, nullptr); }
  // The rest of a step whose layers [0, first_layer) ran elsewhere: x is their
  // output, [plan.num_tokens(), n_embd] in plan order.
  Result<std::span<const float>> forward_from(const StepPlan& plan, const float* x, bool all_logits) {
    return run(plan, all_logits, x);
  }
  void copy_block(int32_t src, int32_t dst) override { kv_.copy_block(src, dst); }
  const TransformerLimits& limits() const override { return lim_; }
  std::string describe() const override;

 private:
  Transformer(const ModelConfig& cfg, const ModelWeights& w, const TransformerLimits& lim, ThreadPool& pool,
              int32_t first_layer)
      : cfg_(cfg), w_(w), lim_(lim), pool_(pool), first_layer_(first_layer) {}
  Result<std::span<const float>> run(const StepPlan& plan, bool all_logits, const float* x_in);
  void layer(int32_t il, int32_t T);
  // Runs fn(row) for rows [0, n) on the pool (inline when n is small).
  template <class Fn> void for_rows(int32_t n, Fn&& fn);

  const ModelConfig& cfg_;
  const ModelWeights& w_;
  TransformerLimits lim_;
  ThreadPool& pool_;
  int32_t first_layer_ = 0;
  cpu::KvCache kv_;  // layers [first_layer_, n_layer)
  cpu::RopeParams rope_global_{}, rope_swa_{};

  // Per-step activations; T = tokens in the step (<= max_batch_tokens).
  std::vector<int32_t> tok_, pos_;    // [T] token ids, positions
  std::vector<int32_t> tok_seq_;      // [T] index of the token's sequence in the plan
  std::vector<float> x_;              // [T, n_embd] residual stream
  std::vector<float> xb_;             // [T, n_embd] normed input of a sub-block
  std::vector<float> xb2_;            // [T, n_embd] sub-block output
  std::vector<float> q_;              // [T, q_dim]
  std::vector<float> k_, v_;          // [T, kv_dim]
  std::vector<float> att_;            // [T, q_dim] attention output (heads concatenated)
  std::vector<float> hg_, hu_;        // [T, n_ff] FFN gate / up (hg_ becomes the activation)
  std::vector<float> cs_global_, cs_swa_;  // [T, n_rot] rope cos/sin per token
  std::vector<float> attn_scratch_;   // per-thread attention scratch
  std::vector<cpu::AttnSeq> attn_seqs_;  // [<= max_seqs]
  std::vector<float> last_;           // [max_seqs, n_embd] final hidden of tokens needing logits
  std::vector<float> logits_;         // [max_seqs, n_vocab]
  std::vector<float> logits_all_;     // [max_batch_tokens, n_vocab], forward_all only
};

}  // namespace velo
