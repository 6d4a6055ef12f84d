// Sampler: turns one row of logits into a token for one request.
//
// Chain (llama.cpp's default order): logit bias and end-of-generation masking
// -> repetition / frequency / presence penalties -> top-k -> top-p -> min-p ->
// temperature -> draw. Temperature 0 is greedy (argmax, lowest id on ties).
// Log-probabilities are the log-softmax of the logits after bias and penalties,
// before any truncation or temperature, as OpenAI reports them.
//
// One Sampler per request: it owns its RNG (deterministic for a given seed:
// the draw uses its own double from 53 RNG bits, not a std:: distribution
// whose output differs between standard libraries) and its penalty history.
// Every buffer is sized at construction; sample() and accept() do not allocate
// (TokenLogprob::top reuses its capacity when the caller reuses the object).
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "core/result.h"
#include "engine/engine.h"
#include "engine/sampling_params.h"
#include "model/sample_args.h"
#include "tokenizer/tokenizer.h"

namespace velo {

// Every end-of-generation token of a vocabulary (compute once per model).
std::vector<int32_t> collect_eog_tokens(const Tokenizer& tok);

class Sampler {
 public:
  // `params` must have passed params.validate(n_vocab). `eog_tokens` are
  // masked out when params.ignore_eos.
  Sampler(const SamplingParams& params, int32_t n_vocab, std::span<const int32_t> eog_tokens = {});

  // Records a token the penalties look at (prompt tokens and every generated token).
  void accept(int32_t token);
  void accept(std::span<const int32_t> tokens) {
    for (int32_t t : tokens) accept(t);
  }
  // Forgets the penalty history (the RNG state is kept).
  void reset_history();

  // Picks the next token from `logits` (n_vocab values). When `lp` is given and
  // the params want logprobs, fills it (token, logprob, top alternatives).
  // Errors: NaN logits, or no token left with a finite logit.
  // Does not accept() the token: the caller does once it keeps it.
  Result<int32_t> sample(std::span<const float> logits, TokenLogprob* lp = nullptr);

  const SamplingParams& params() const { return p_; }

  // Sampling on the device (Forward::forward_sample) instead of sample(): the
  // device runs penalties -> top-k -> top-p -> min-p -> temperature -> draw,
  // so it serves a request exactly only without logit bias, masked
  // end-of-generation tokens and logprobs.
  bool device_compatible() const { return p_.logit_bias.empty() && eog_.empty() && !p_.wants_logprobs(); }
  // (token, count) pairs device_args() appends: the distinct tokens of the penalty window.
  int32_t num_penalty_tokens() const { return penalize_ ? static_cast<int32_t>(distinct_.size()) : 0; }
  // This step's device arguments; appends the penalty window to tokens/counts
  // (its offset: their size before). Takes this step's draw from the RNG
  // exactly when sample() would (temperature > 0), so the request's stream of
  // draws, and its tokens, are the same whichever side samples. Call once per
  // step, only when the step is sure to sample on the device.
  SampleArgs device_args(std::vector<int32_t>& tokens, std::vector<int32_t>& counts);

 private:
  struct Cand {
    int32_t id;
    float logit;
  };
  void add_count(int32_t t);
  void remove_count(int32_t t);
  void apply_penalties();
  void fill_logprobs(int32_t chosen, TokenLogprob* lp);
  // Top `k` of logits_ (k <= n_vocab) into cands_[0..k), sorted best first.
  void select_top(size_t k);
  size_t top_p_cut(size_t n);
  int32_t draw(size_t n);

  SamplingParams p_;
  int32_t n_vocab_;
  std::vector<int32_t> eog_;
  std::vector<float> logits_;  // work copy after bias, masking, penalties
  std::vector<Cand> cands_;    // candidate list, n_vocab capacity
  std::vector<Cand> top_;      // top logprobs scratch, kMaxTopLogprobs capacity
  // Penalty window: a ring of the last N tokens (none when N = -1: the whole
  // history), each token's count in the window, and the distinct tokens in it
  // (slot_[t] = index of t in distinct_) so penalties cost O(distinct), not O(vocab).
  bool penalize_ = false;
  size_t window_ = 0;  // 0: unbounded
  std::vector<int32_t> ring_;
  size_t ring_pos_ = 0, ring_len_ = 0;
  std::vector<int32_t> counts_, slot_, distinct_;
  std::mt19937_64 rng_;
};

}  // namespace velo
