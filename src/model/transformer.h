// The decoder-only transformer forward pass on the CPU over a flat batch: all
// scheduled tokens of all sequences go through each layer together (one
// matmul with m = total tokens), attention reads each sequence's K/V through
// its block table. Every buffer is sized for max_batch_tokens at creation.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/kv_cache.h"
#include "core/result.h"
#include "core/thread_pool.h"
#include "engine/step_plan.h"
#include "model/config.h"
#include "model/weights.h"

namespace velo {

struct TransformerLimits {
  int32_t max_batch_tokens = 512;  // tokens per forward
  int32_t max_seqs = 1;            // sequences per forward
  int32_t ctx_size = 2048;         // positions per sequence
  int32_t num_kv_blocks = 128;
  int32_t block_size = 16;
};

class Transformer {
 public:
  // cfg and w must outlive the transformer (the runner owns them).
  static Result<std::unique_ptr<Transformer>> create(const ModelConfig& cfg, const ModelWeights& w,
                                                     const TransformerLimits& lim, ThreadPool& pool);

  // Runs the plan; returns n_vocab logits per sequence with need_logits, in
  // plan order. Validates the plan first (errors, never crashes).
  Result<std::span<const float>> forward(const StepPlan& plan) { return run(plan, false); }
  // Same, but logits for every token of the plan ([num_tokens, n_vocab]); the
  // buffer is allocated on first use (tests, tools and speculative verification).
  Result<std::span<const float>> forward_all(const StepPlan& plan) { return run(plan, true); }
  Status validate(const StepPlan& plan) const;
  void copy_block(int32_t src, int32_t dst) { kv_.copy_block(src, dst); }
  const TransformerLimits& limits() const { return lim_; }

 private:
  Transformer(const ModelConfig& cfg, const ModelWeights& w, const TransformerLimits& lim, ThreadPool& pool)
      : cfg_(cfg), w_(w), lim_(lim), pool_(pool) {}
  Result<std::span<const float>> run(const StepPlan& plan, bool all_logits);
  void layer(int32_t il, int32_t T);
  // Runs fn(row) for rows [0, n) on the pool (inline when n is small).
  template <class Fn> void for_rows(int32_t n, Fn&& fn);

  const ModelConfig& cfg_;
  const ModelWeights& w_;
  TransformerLimits lim_;
  ThreadPool& pool_;
  cpu::KvCache kv_;
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
