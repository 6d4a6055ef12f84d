// Token sampling on the GPU for a batch of sequences, so a step sends back
// token ids instead of n_vocab logits per sequence. Same chain and semantics
// as the CPU Sampler (src/engine/sampler.h): penalties -> top-k -> top-p ->
// min-p -> temperature -> draw; temperature 0 is greedy (argmax, lowest id on
// ties). The random draw uses a uniform u in [0, 1) per sequence chosen on the
// host (each request keeps its own seeded RNG), so results are reproducible.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>

#include "core/result.h"
#include "model/sample_args.h"

namespace velo::cuda {

// Per sequence, plain data copied to the device each step (model/sample_args.h:
// the type Forward::forward_sample takes).
using velo::SampleArgs;

class GpuSampler {
 public:
  // Up to max_seqs sequences of n_vocab logits, up to max_penalty_tokens (token, count) pairs per step.
  static Result<std::unique_ptr<GpuSampler>> create(int32_t n_vocab, int32_t max_seqs, int32_t max_penalty_tokens,
                                                    cudaStream_t stream);
  ~GpuSampler();
  GpuSampler(const GpuSampler&) = delete;
  GpuSampler& operator=(const GpuSampler&) = delete;

  // logits: device [n_seqs][n_vocab] (modified in place by the penalties). args: host [n_seqs].
  // penalty_tokens / penalty_counts: host arrays indexed by SampleArgs::penalty_offset.
  // Writes n_seqs token ids to `tokens` (host). Synchronizes the stream (the ids are needed now).
  // A row that cannot be sampled (NaN, every logit -inf, +inf with temperature > 0) is an error,
  // unless `per_row` is set: then its token is the SampleFailure code and the others stand.
  Status sample(float* logits, int32_t n_seqs, const SampleArgs* args, const int32_t* penalty_tokens,
                const int32_t* penalty_counts, int32_t* tokens, bool per_row = false);

 private:
  struct Impl;
  explicit GpuSampler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace velo::cuda
