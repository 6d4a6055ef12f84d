// Forward: one step of the model over a flat batch (a StepPlan), on some
// device. The CPU Transformer implements it, and so does the CUDA backend
// (whole model on the GPU, or its first layers there and the rest on the
// CPU). The runner holds a Forward and never asks which device it is on.
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "core/result.h"
#include "engine/step_plan.h"

namespace velo {

struct TransformerLimits {
  int32_t max_batch_tokens = 512;  // tokens per forward
  int32_t max_seqs = 1;            // sequences per forward
  int32_t ctx_size = 2048;         // positions per sequence
  int32_t num_kv_blocks = 128;
  int32_t block_size = 16;
};

class Forward {
 public:
  virtual ~Forward() = default;
  // Runs the plan; returns n_vocab logits per sequence with need_logits, in
  // plan order, valid until the next call. Validates the plan first.
  virtual Result<std::span<const float>> forward(const StepPlan& plan) = 0;
  // Same, but logits for every token of the plan ([num_tokens, n_vocab]).
  virtual Result<std::span<const float>> forward_all(const StepPlan& plan) = 0;
  // Copies block src's K/V (every layer) into block dst; ids in range, src != dst.
  virtual void copy_block(int32_t src, int32_t dst) = 0;
  virtual const TransformerLimits& limits() const = 0;
  // Where it runs, for logs: "cpu (2 threads)", "cuda:0 NVIDIA H100 ... (32/32 layers)".
  virtual std::string describe() const = 0;
};

// Checks a plan against the limits and the vocabulary: a readable error for
// anything a forward pass could not run (never a crash).
Status validate_plan(const StepPlan& plan, const TransformerLimits& lim, int32_t n_vocab);

}  // namespace velo
