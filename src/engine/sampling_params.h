// Sampling settings of one request, parsed and validated at the boundary.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/result.h"

namespace velo {

struct SamplingParams {
  float temperature = 0.8f;        // 0 = greedy
  int32_t top_k = 40;              // <= 0: off
  float top_p = 0.95f;             // 1: off
  float min_p = 0.05f;             // 0: off
  float repeat_penalty = 1.0f;     // llama.cpp-style, 1: off
  int32_t repeat_last_n = 64;      // window for the penalties
  float frequency_penalty = 0.0f;  // OpenAI-style
  float presence_penalty = 0.0f;
  std::unordered_map<int32_t, float> logit_bias;
  uint64_t seed = 0xFFFFFFFFFFFFFFFFull;  // default: random
  int32_t max_tokens = -1;         // -1: until end of generation or context
  std::vector<std::string> stop;   // stop strings, never part of the output
  int32_t top_logprobs = 0;        // how many alternatives to report per token (0: none)
  bool logprobs = false;
  bool ignore_eos = false;

  // Error (not a clamp) for out-of-range values: "temperature must be >= 0, got -1".
  Status validate() const;
};

}  // namespace velo
