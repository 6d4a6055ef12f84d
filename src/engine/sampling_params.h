// Sampling settings of one request, parsed and validated at the boundary.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/result.h"

namespace velo {

struct SamplingParams {
  float temperature = 0.8f;        // >= 0; 0 = greedy
  int32_t top_k = 40;              // >= 0; 0: off
  float top_p = 0.95f;             // (0, 1]; 1: off
  float min_p = 0.05f;             // [0, 1]; 0: off
  float repeat_penalty = 1.0f;     // > 0, llama.cpp-style; 1: off
  int32_t repeat_last_n = 64;      // window for all penalties: 0 off, -1 the whole history
  float frequency_penalty = 0.0f;  // OpenAI-style, [-2, 2]
  float presence_penalty = 0.0f;   // OpenAI-style, [-2, 2]
  std::unordered_map<int32_t, float> logit_bias;  // token -> added logit, each in [-100, 100]
  uint64_t seed = 0xFFFFFFFFFFFFFFFFull;  // default: random
  int32_t max_tokens = -1;         // -1: until end of generation or context; 0: prompt only
  std::vector<std::string> stop;   // stop strings, never part of the output (<= 16, 1..256 bytes)
  int32_t top_logprobs = 0;        // how many alternatives to report per token, [0, 20]
  bool logprobs = false;           // report the chosen token's logprob (implied by top_logprobs > 0)
  bool ignore_eos = false;         // end-of-generation tokens are never sampled

  static constexpr int32_t kMaxTopLogprobs = 20;
  static constexpr size_t kMaxStops = 16;
  static constexpr size_t kMaxStopBytes = 256;

  // Error (not a clamp) for out-of-range values: "temperature must be >= 0, got -1".
  Status validate() const;
  // Also checks that logit_bias names tokens of a vocabulary of `n_vocab` tokens.
  Status validate(int32_t n_vocab) const;
  bool wants_logprobs() const { return logprobs || top_logprobs > 0; }
};

}  // namespace velo
