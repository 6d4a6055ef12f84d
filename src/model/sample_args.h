// Plain data for sampling on the device (Forward::forward_sample): one
// sequence's settings, with the same chain and meaning as the engine's CPU
// Sampler (src/engine/sampler.h). The engine fills them from each request's
// Sampler, which keeps owning the RNG and the penalty history, so a request
// samples the same tokens whichever side runs the chain. C++17 (nvcc reads it).
#pragma once
#include <cstdint>

namespace velo {

struct SampleArgs {
  float temperature = 0.0f;       // <= 0: greedy (argmax, lowest id on ties)
  int32_t top_k = 0;              // <= 0: off
  float top_p = 1.0f;             // >= 1: off
  float min_p = 0.0f;             // <= 0: off
  float repeat_penalty = 1.0f;    // 1: off (llama.cpp semantics: divide positive logits, multiply negative)
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int32_t n_penalty_tokens = 0;   // distinct tokens in this sequence's penalty window
  int32_t penalty_offset = 0;     // where they start in the step's penalty arrays
  double u = 0.0;                 // uniform draw in [0, 1) (unused when greedy)
};

// What forward_sample() writes instead of a token id for a sequence that could
// not be sampled (the CPU Sampler returns an error for the same rows).
enum class SampleFailure : int32_t { NaN = -1, NoToken = -2, Infinite = -3 };

inline const char* sample_failure_message(int32_t token) {
  switch (static_cast<SampleFailure>(token)) {
    case SampleFailure::NaN: return "the model produced NaN logits";
    case SampleFailure::NoToken: return "no token can be sampled: every logit is -inf";
    case SampleFailure::Infinite: return "a +inf logit leaves no distribution to draw from";
  }
  return "the device sampler failed";
}

}  // namespace velo
