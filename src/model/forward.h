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
#include "model/sample_args.h"

namespace velo {

struct TransformerLimits {
  int32_t max_batch_tokens = 512;  // tokens per forward
  int32_t max_seqs = 1;            // sequences per forward
  int32_t ctx_size = 2048;         // positions per sequence
  int32_t num_kv_blocks = 128;
  int32_t block_size = 16;
};

// One step's sampling work for forward_sample(): one SampleArgs per sequence
// with need_logits, in plan order, and the penalty windows as distinct
// (token, count) pairs.
struct SampleBatch {
  std::span<const SampleArgs> seqs;
  std::span<const int32_t> penalty_tokens;  // indexed by SampleArgs::penalty_offset
  std::span<const int32_t> penalty_counts;  // >= 1 each
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

  // Optional: sampling on the device. When the logits end in device memory
  // (CUDA with the head on the GPU), forward_sample() runs the plan like
  // forward() and then picks one token per need_logits sequence there, so a
  // step sends back token ids instead of n_vocab floats per sequence.
  // max_sample_penalty_tokens(): the most penalty pairs a step may pass; -1
  // when this forward pass cannot sample (the default).
  virtual int32_t max_sample_penalty_tokens() const { return -1; }
  // batch.seqs: one per need_logits sequence in plan order; `tokens` gets as
  // many ids (or a SampleFailure code for a row that cannot be sampled).
  virtual Status forward_sample(const StepPlan& plan, const SampleBatch& batch, std::span<int32_t> tokens) {
    (void)plan, (void)batch, (void)tokens;
    return make_error("this forward pass cannot sample on its device");
  }
};

// Checks a plan against the limits and the vocabulary: a readable error for
// anything a forward pass could not run (never a crash).
Status validate_plan(const StepPlan& plan, const TransformerLimits& lim, int32_t n_vocab);

}  // namespace velo
