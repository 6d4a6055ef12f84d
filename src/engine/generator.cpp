// Generator: see generator.h.
#include "engine/generator.h"

#include <algorithm>
#include <chrono>

#include "engine/sampler.h"
#include "engine/stop_matcher.h"

namespace velo {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

Generator::Generator(ModelRunner& runner) : runner_(runner), eog_tokens_(collect_eog_tokens(runner.tokenizer())) {
  plan_.seqs.resize(1);
  auto& s = plan_.seqs[0];
  s.seq_id = 0;
  s.tokens.reserve(static_cast<size_t>(std::max(1, runner_.max_batch_tokens())));
  s.block_table.reserve(static_cast<size_t>(std::max(1, runner_.num_kv_blocks())));
  kv_tokens_.reserve(static_cast<size_t>(std::max(1, max_context())));
}

int32_t Generator::max_context() const {
  int64_t by_blocks = static_cast<int64_t>(runner_.num_kv_blocks()) * runner_.block_size();
  return static_cast<int32_t>(std::min<int64_t>(runner_.ctx_size(), by_blocks));
}

void Generator::set_block_table(int32_t n_positions) {
  const int32_t bs = runner_.block_size();
  const int32_t n_blocks = (n_positions + bs - 1) / bs;
  auto& table = plan_.seqs[0].block_table;
  for (int32_t b = static_cast<int32_t>(table.size()); b < n_blocks; ++b) table.push_back(b);
  table.resize(static_cast<size_t>(n_blocks));
}

Result<std::span<const float>> Generator::prefill(std::span<const int32_t> prompt, int32_t start) {
  const int32_t n = static_cast<int32_t>(prompt.size());
  const int32_t chunk = std::max(1, runner_.max_batch_tokens());
  auto& seq = plan_.seqs[0];
  std::span<const float> logits;
  for (int32_t pos = start; pos < n; pos += chunk) {
    const int32_t end = std::min(n, pos + chunk);
    seq.tokens.assign(prompt.begin() + pos, prompt.begin() + end);
    seq.start_pos = pos;
    seq.need_logits = end == n;
    set_block_table(end);
    VELO_ASSIGN_OR_RETURN(logits, runner_.execute(plan_));
    // Record progress chunk by chunk so a failed step leaves a consistent cache.
    kv_tokens_.insert(kv_tokens_.end(), prompt.begin() + pos, prompt.begin() + end);
  }
  return logits;
}

Result<std::span<const float>> Generator::decode_one(int32_t token, int32_t pos) {
  auto& seq = plan_.seqs[0];
  seq.tokens.assign(1, token);
  seq.start_pos = pos;
  seq.need_logits = true;
  set_block_table(pos + 1);
  VELO_ASSIGN_OR_RETURN(auto logits, runner_.execute(plan_));
  kv_tokens_.push_back(token);
  return logits;
}

Result<GenerationResult> Generator::generate(std::string_view prompt, const SamplingParams& params,
                                             const GenerateOptions& opts) {
  const auto& tok = runner_.tokenizer();
  auto tokens = tok.encode(prompt, opts.add_bos, opts.parse_special ? SpecialTokens::Parse : SpecialTokens::AsText);
  return generate(std::span<const int32_t>(tokens), params, opts);
}

Result<GenerationResult> Generator::generate(std::span<const int32_t> prompt_in, const SamplingParams& params,
                                             const GenerateOptions& opts) {
  const auto t_start = Clock::now();
  const int32_t n_vocab = runner_.n_vocab();
  VELO_TRY(params.validate(n_vocab));
  if (prompt_in.empty()) return make_error("the prompt is empty (no tokens to start from)");
  for (int32_t t : prompt_in)
    if (t < 0 || t >= n_vocab)
      return make_error("prompt token " + std::to_string(t) + " is outside the vocabulary (" +
                        std::to_string(n_vocab) + " tokens)");

  // Fit the prompt into the context, or say how to.
  const int32_t limit = max_context();
  if (limit < 1) return make_error("the model runner has no room for any token (context " + std::to_string(limit) + ")");
  std::vector<int32_t> truncated;
  std::span<const int32_t> prompt = prompt_in;
  if (static_cast<int64_t>(prompt.size()) > limit) {
    if (!opts.truncate)
      return make_error("prompt is " + std::to_string(prompt.size()) + " tokens, context is " +
                        std::to_string(limit) + "; use --ctx-size to raise it");
    // Leave room for the output: max_tokens, at most half the context.
    int32_t reserve = params.max_tokens > 0 ? params.max_tokens : limit / 4;
    reserve = std::clamp(reserve, 1, std::max(1, limit / 2));
    const size_t keep = static_cast<size_t>(std::max(1, limit - reserve));
    const bool keep_bos = keep > 1 && runner_.tokenizer().bos() >= 0 && prompt[0] == runner_.tokenizer().bos();
    if (keep_bos) truncated.push_back(prompt[0]);
    const size_t tail = keep - truncated.size();
    truncated.insert(truncated.end(), prompt.end() - tail, prompt.end());
    prompt = truncated;
  }
  const int32_t n_prompt = static_cast<int32_t>(prompt.size());

  // Reuse the K/V of the longest common prefix with what is cached; the last
  // prompt token is always recomputed so its logits exist.
  size_t common = 0;
  while (common < kv_tokens_.size() && common < prompt.size() && kv_tokens_[common] == prompt[common]) ++common;
  const int32_t start = std::min<int32_t>(static_cast<int32_t>(common), n_prompt - 1);
  kv_tokens_.resize(static_cast<size_t>(start));

  GenerationResult res;
  auto& tm = res.timings;
  tm.prompt_tokens = n_prompt;
  tm.reused_tokens = start;

  const auto t_prefill = Clock::now();
  auto pre = prefill(prompt, start);
  if (!pre.ok()) return pre.error();
  std::span<const float> logits = *pre;
  tm.prompt_seconds = seconds_since(t_prefill);
  if (params.max_tokens == 0) {
    res.finish = FinishReason::Length;
    tm.ttft_seconds = seconds_since(t_start);
    return res;
  }

  Sampler sampler(params, n_vocab, eog_tokens_);
  sampler.accept(prompt);
  StreamingDetokenizer detok(runner_.tokenizer(), opts.render_special);
  StopMatcher stop(params.stop);
  const bool want_lp = params.wants_logprobs();
  TokenLogprob lp;
  std::string out;  // text released this step, reused
  Clock::time_point t_first;

  // Releases text through the stop matcher to the caller; false when a stop string
  // matched or the caller cancelled (finish reason set).
  auto release = [&](std::string_view text, bool final_flush) {
    out.clear();
    bool hit = stop.push(text, out);
    if (!hit && final_flush) stop.flush(out);
    if (!out.empty()) {
      res.text += out;
      if (opts.on_text && !opts.on_text(out)) {
        res.finish = FinishReason::Cancelled;
        return false;
      }
    }
    if (hit) {
      res.finish = FinishReason::Stop;
      return false;
    }
    return true;
  };

  for (;;) {
    auto next = sampler.sample(logits, want_lp ? &lp : nullptr);
    if (!next.ok()) return next.error();
    const int32_t t = *next;
    if (res.tokens.empty()) {
      t_first = Clock::now();
      tm.ttft_seconds = std::chrono::duration<double>(t_first - t_start).count();
    }
    if (runner_.tokenizer().is_eog(t)) {  // masked out when ignore_eos
      if (release(detok.flush(), true)) res.finish = FinishReason::Stop;
      break;
    }
    res.tokens.push_back(t);
    if (want_lp) res.logprobs.push_back(lp);
    sampler.accept(t);
    if (!release(detok.push(t), false)) break;

    const int32_t pos = static_cast<int32_t>(kv_tokens_.size());
    const bool at_max = params.max_tokens > 0 && static_cast<int32_t>(res.tokens.size()) >= params.max_tokens;
    if (at_max || pos >= limit) {  // no room to compute this token's K/V
      if (release(detok.flush(), true)) res.finish = FinishReason::Length;
      break;
    }
    auto step = decode_one(t, pos);
    if (!step.ok()) return step.error();
    logits = *step;
    ++tm.decode_steps;
  }
  tm.generated_tokens = static_cast<int32_t>(res.tokens.size());
  if (!res.tokens.empty()) tm.decode_seconds = seconds_since(t_first);
  return res;
}

}  // namespace velo
