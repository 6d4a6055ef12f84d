// Internal to the GPU sampler (sampling.cu and its kernels): the per-sequence
// arguments as the device reads them and the kernel launchers. Plain C++.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/result.h"

namespace velo::cuda::sampling {

// One sequence's settings on the device. Derived constants are computed on the
// host with the same library calls as the CPU Sampler, so both sides use the
// same bits (std::log(float) in particular is not correctly rounded everywhere).
struct SeqArgs {
  double u = 0.0;               // uniform draw in [0, 1)
  double inv_t = 0.0;           // 1.0 / temperature (double, as Sampler::draw)
  float temperature = 0.0f;     // <= 0: greedy
  float top_p = 1.0f;           // >= 1: off
  float log_min_p = 0.0f;       // std::log(min_p) as a float; used when min_p > 0
  float min_p = 0.0f;           // <= 0: off
  float repeat_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int32_t top_k = 0;            // <= 0: off
  int32_t n_penalty_tokens = 0;
  int32_t penalty_offset = 0;
};

// Per-sequence outcome written by the sampling kernel next to the token.
enum SampleCode : int32_t {
  kSampleOk = 0,
  kSampleNaN = 1,        // a NaN logit (checked before anything else, like the CPU)
  kSampleNoToken = 2,    // every logit is -inf
  kSampleInfinite = 3,   // a +inf logit with temperature > 0 (no distribution to draw from)
};

// Applies repeat/frequency/presence penalties in place.
// logits: device [n_seqs][n_vocab]; args: device [n_seqs]; tokens/counts: device,
// indexed by SeqArgs::penalty_offset (distinct, in-range tokens).
void launch_penalties(float* logits, int32_t n_seqs, int32_t n_vocab, const SeqArgs* args,
                      const int32_t* tokens, const int32_t* counts, cudaStream_t stream);

// One-time kernel setup (the select kernel's dynamic shared memory opt-in).
Status init_select_kernel();
// Picks one token per sequence. logits: device [n_seqs][n_vocab] (read only).
// out: device [2][n_seqs]: token ids, then SampleCode per sequence.
void launch_select(const float* logits, int32_t n_seqs, int32_t n_vocab, const SeqArgs* args, int32_t* out,
                   cudaStream_t stream);

}  // namespace velo::cuda::sampling
