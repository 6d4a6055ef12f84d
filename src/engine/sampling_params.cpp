// SamplingParams::validate: every out-of-range value is an error naming the
// field and the value; nothing is silently clamped.
#include "engine/sampling_params.h"

#include <cmath>
#include <sstream>

namespace velo {
namespace {

std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

Error bad(const char* field, const char* rule, double v) {
  return make_error(std::string(field) + " must be " + rule + ", got " + fmt(v));
}

}  // namespace

Status SamplingParams::validate() const {
  if (!std::isfinite(temperature) || temperature < 0) return bad("temperature", ">= 0", temperature);
  if (top_k < 0) return bad("top_k", ">= 0 (0 disables it)", top_k);
  if (!std::isfinite(top_p) || top_p <= 0 || top_p > 1) return bad("top_p", "in (0, 1]", top_p);
  if (!std::isfinite(min_p) || min_p < 0 || min_p > 1) return bad("min_p", "in [0, 1]", min_p);
  if (!std::isfinite(repeat_penalty) || repeat_penalty <= 0)
    return bad("repeat_penalty", "> 0 (1 disables it)", repeat_penalty);
  if (repeat_last_n < -1) return bad("repeat_last_n", ">= -1 (-1: whole history, 0: off)", repeat_last_n);
  if (!std::isfinite(frequency_penalty) || frequency_penalty < -2 || frequency_penalty > 2)
    return bad("frequency_penalty", "in [-2, 2]", frequency_penalty);
  if (!std::isfinite(presence_penalty) || presence_penalty < -2 || presence_penalty > 2)
    return bad("presence_penalty", "in [-2, 2]", presence_penalty);
  for (const auto& [tok, bias] : logit_bias) {
    if (tok < 0) return bad("logit_bias token id", ">= 0", tok);
    if (!std::isfinite(bias) || bias < -100 || bias > 100)
      return make_error("logit_bias for token " + std::to_string(tok) + " must be in [-100, 100], got " + fmt(bias));
  }
  if (max_tokens < -1) return bad("max_tokens", ">= 0 or -1 (no limit)", max_tokens);
  if (top_logprobs < 0 || top_logprobs > kMaxTopLogprobs)
    return bad("top_logprobs", "in [0, 20]", top_logprobs);
  if (stop.size() > kMaxStops)
    return make_error("stop may hold at most " + std::to_string(kMaxStops) + " strings, got " +
                      std::to_string(stop.size()));
  for (const auto& s : stop) {
    if (s.empty()) return make_error("stop strings must not be empty");
    if (s.size() > kMaxStopBytes)
      return make_error("stop strings must be at most " + std::to_string(kMaxStopBytes) + " bytes, got " +
                        std::to_string(s.size()));
  }
  return {};
}

Status SamplingParams::validate(int32_t n_vocab) const {
  VELO_TRY(validate());
  for (const auto& [tok, bias] : logit_bias)
    if (tok >= n_vocab)
      return make_error("logit_bias token id " + std::to_string(tok) + " is outside the vocabulary (" +
                        std::to_string(n_vocab) + " tokens)");
  return {};
}

}  // namespace velo
