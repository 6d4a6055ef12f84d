// Generator: one request at a time on a ModelRunner, for `velollm run`,
// `velollm chat`, `velollm bench` and tests (the server uses the batching
// Engine instead). Prompt -> chunked prefill -> decode loop -> Sampler ->
// StreamingDetokenizer -> StopMatcher -> streamed text.
//
// The sequence's K/V lives in a contiguous block table [0, n_blocks) and is
// kept between calls: a prompt that extends the tokens of the previous call
// (a chat conversation re-rendered with one more turn) only computes the new
// tokens.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "engine/engine.h"
#include "engine/model_runner.h"
#include "engine/sampling_params.h"
#include "engine/step_plan.h"

namespace velo {

struct GenerationTimings {
  int32_t prompt_tokens = 0;     // tokens in the (possibly truncated) prompt
  int32_t reused_tokens = 0;     // prompt tokens whose K/V were kept from the previous call
  int32_t generated_tokens = 0;  // sampled tokens, end-of-generation token excluded
  double prompt_seconds = 0;     // prefill of the non-reused prompt tokens
  double ttft_seconds = 0;       // generate() entry to the first sampled token
  int32_t decode_steps = 0;      // single-token forward passes after the first token
  double decode_seconds = 0;     // first sampled token to the last

  double prompt_tps() const {
    return prompt_seconds > 0 ? (prompt_tokens - reused_tokens) / prompt_seconds : 0;
  }
  double generation_tps() const { return decode_seconds > 0 ? decode_steps / decode_seconds : 0; }
};

struct GenerateOptions {
  bool add_bos = true;          // text prompts: BOS first when the model adds one
  bool parse_special = true;    // text prompts: special-token strings become their tokens
  bool render_special = false;  // control tokens appear in the output text
  // Drop the oldest prompt tokens (the BOS stays) to leave room for the output,
  // instead of failing when the prompt does not fit the context.
  bool truncate = false;
  // Streamed text, stop strings already held back; return false to cancel.
  std::function<bool(std::string_view)> on_text;
};

struct GenerationResult {
  std::string text;                    // everything streamed
  std::vector<int32_t> tokens;         // generated tokens (no end-of-generation token)
  std::vector<TokenLogprob> logprobs;  // one per generated token when params want them
  FinishReason finish = FinishReason::None;  // Stop (end token or stop string), Length, Cancelled
  GenerationTimings timings;
};

class Generator {
 public:
  explicit Generator(ModelRunner& runner);

  // Raw completion of `prompt` (no chat template). `params` are validated here.
  Result<GenerationResult> generate(std::string_view prompt, const SamplingParams& params,
                                    const GenerateOptions& opts = {});
  Result<GenerationResult> generate(std::span<const int32_t> prompt, const SamplingParams& params,
                                    const GenerateOptions& opts = {});

  // Forgets the kept K/V (the next prompt is computed from scratch).
  void reset() { kv_tokens_.clear(); }
  // Tokens whose K/V are in the cache, in position order.
  std::span<const int32_t> cached_tokens() const { return kv_tokens_; }
  // The most tokens one sequence can hold: the context, bounded by the KV blocks.
  int32_t max_context() const;
  ModelRunner& runner() { return runner_; }

 private:
  // Computes prompt[start..) at positions start.. in chunks; returns the last token's logits.
  Result<std::span<const float>> prefill(std::span<const int32_t> prompt, int32_t start);
  Result<std::span<const float>> decode_one(int32_t token, int32_t pos);
  void set_block_table(int32_t n_positions);

  ModelRunner& runner_;
  std::vector<int32_t> eog_tokens_;
  std::vector<int32_t> kv_tokens_;  // tokens whose K/V are computed, position i at index i
  StepPlan plan_;                   // reused every step (no allocation per token)
};

}  // namespace velo
