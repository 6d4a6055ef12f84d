#include "engine/engine_core.h"

#include <algorithm>
#include <climits>

namespace velo {
namespace {

double seconds(EngineCore::Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Status validate_engine_options(const EngineOptions& o) {
  if (o.max_running < 1) return make_error("max_running must be >= 1, got " + std::to_string(o.max_running));
  if (o.max_waiting < 1) return make_error("max_waiting must be >= 1, got " + std::to_string(o.max_waiting));
  if (o.max_step_tokens < 1) return make_error("max_step_tokens must be >= 1, got " + std::to_string(o.max_step_tokens));
  return {};
}

SchedulerConfig scheduler_config(const ModelRunner& runner, const EngineOptions& opts) {
  SchedulerConfig c;
  c.max_running = opts.max_running;
  // The engine bounds its queue itself (submissions in flight count too).
  c.max_waiting = INT32_MAX;
  c.max_step_tokens = std::max(1, std::min(opts.max_step_tokens, runner.max_batch_tokens()));
  c.ctx_size = runner.ctx_size();
  c.block_size = runner.block_size();
  c.num_blocks = runner.num_kv_blocks();
  return c;
}

EngineCore::EngineCore(ModelRunner& runner, const EngineOptions& opts)
    : runner_(runner), opts_(opts), sched_(scheduler_config(runner, opts)),
      eog_(collect_eog_tokens(runner.tokenizer())), max_device_penalty_(runner.max_sample_penalty_tokens()) {
  live_.reserve(static_cast<size_t>(std::min<int64_t>(int64_t{opts.max_running} + opts.max_waiting, 4096)));
  if (max_device_penalty_ >= 0) {
    dev_args_.reserve(static_cast<size_t>(opts.max_running));
    dev_tokens_.reserve(static_cast<size_t>(opts.max_running));
    const size_t pen = static_cast<size_t>(std::min(max_device_penalty_, 1 << 16));
    pen_tokens_.reserve(pen);
    pen_counts_.reserve(pen);
  }
}

Status EngineCore::check(const GenerationRequest& req) const {
  if (req.prompt.empty()) return make_error("the prompt is empty");
  const int32_t n_vocab = runner_.n_vocab();
  for (int32_t t : req.prompt) {
    if (t < 0 || t >= n_vocab) {
      return make_error("prompt token " + std::to_string(t) + " is outside the vocabulary (0.." +
                        std::to_string(n_vocab - 1) + ")");
    }
  }
  const int64_t n = static_cast<int64_t>(req.prompt.size());
  if (n >= sched_.max_seq_tokens()) {
    return make_error("the prompt has " + std::to_string(n) + " tokens but the context holds " +
                      std::to_string(sched_.max_seq_tokens()) + " (prompt and at least one generated token)");
  }
  return req.params.validate(n_vocab);
}

void EngineCore::add(uint64_t id, GenerationRequest req, Engine::Callback cb, Clock::time_point arrival) {
  auto lv = std::make_unique<Live>(std::move(cb), req.params, runner_);
  lv->arrival = arrival;
  lv->num_prompt = static_cast<int32_t>(req.prompt.size());
  lv->max_output = req.params.max_tokens < 0 ? INT32_MAX : req.params.max_tokens;
  if (lv->max_output == 0) {  // nothing to generate
    emit(id, *lv, nullptr, FinishReason::Length);
    ++finished_total_;
    return;
  }
  if (auto st = sched_.add(id, std::move(req.prompt)); !st) {
    lv->out.error = st.message();
    emit(id, *lv, nullptr, FinishReason::Error);
    ++finished_total_;
    return;
  }
  live_.emplace(id, std::move(lv));
}

void EngineCore::cancel(uint64_t id) {
  auto it = live_.find(id);
  if (it != live_.end()) finish(id, *it->second, FinishReason::Cancelled);
}

void EngineCore::cancel_all() {
  std::vector<uint64_t> ids;
  for (const auto& kv : live_) ids.push_back(kv.first);
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) cancel(id);
}

void EngineCore::emit(uint64_t id, Live& lv, const Request* r, FinishReason reason) {
  const auto now = Clock::now();
  RequestOutput& o = lv.out;
  o.id = id;
  o.finished = reason != FinishReason::None;
  o.finish_reason = reason;
  o.prompt_tokens = lv.num_prompt;
  o.cached_tokens = r ? std::max(0, r->num_cached_prompt) : 0;
  o.completion_tokens = lv.completion;
  o.queue_seconds = seconds((lv.scheduled ? lv.first_scheduled : now) - lv.arrival);
  o.prompt_seconds = lv.got_token ? seconds(lv.first_token - lv.first_scheduled) : 0;
  o.decode_seconds = lv.got_token ? seconds(now - lv.first_token) : 0;
  if (lv.cb) {
    try {
      lv.cb(o);
    } catch (...) {
      // A throwing callback must not take the engine thread down; the request goes on.
    }
  }
  o.text.clear();
  o.tokens.clear();
  o.logprobs.clear();
}

void EngineCore::finish(uint64_t id, Live& lv, FinishReason reason, std::string error) {
  lv.out.error = std::move(error);
  emit(id, lv, sched_.get(id), reason);
  ++finished_total_;
  sched_.finish(id);
  live_.erase(id);  // destroys lv
}

// Releases the text the detokenizer and the stop matcher still hold; returns
// true when that text completed a stop string.
static bool flush_text(StreamingDetokenizer& detok, StopMatcher& stop, std::string& out) {
  if (stop.push(detok.flush(), out)) return true;
  stop.flush(out);
  return false;
}

bool EngineCore::on_token(uint64_t id, Live& lv, const Request& r) {
  const int32_t tok = r.tokens.back();
  ++generation_tokens_total_;
  if (!lv.got_token) {
    lv.got_token = true;
    lv.first_token = Clock::now();
    prompt_tokens_total_ += static_cast<uint64_t>(r.num_prompt);
  }
  lv.sampler->accept(tok);
  if (!lv.params.ignore_eos && runner_.tokenizer().is_eog(tok)) {
    flush_text(lv.detok, lv.stop, lv.out.text);
    finish(id, lv, FinishReason::Stop);
    return true;
  }
  lv.out.tokens.push_back(tok);
  ++lv.completion;
  if (lv.params.wants_logprobs()) lv.out.logprobs.push_back(lv.lp);
  if (lv.stop.push(lv.detok.push(tok), lv.out.text)) {
    finish(id, lv, FinishReason::Stop);
    return true;
  }
  if (r.num_output() >= lv.max_output || r.num_tokens() >= sched_.max_seq_tokens()) {
    const bool stopped = flush_text(lv.detok, lv.stop, lv.out.text);
    finish(id, lv, stopped ? FinishReason::Stop : FinishReason::Length);
    return true;
  }
  return false;
}

bool EngineCore::prepare_device_sampling(const StepPlan& plan) {
  if (max_device_penalty_ < 0) return false;
  // Decide first: the draws are taken only once the whole step is sure to go to the device.
  int64_t n_pen = 0;
  size_t n = 0;
  for (const auto& s : plan.seqs) {
    if (!s.need_logits) continue;
    const Sampler& smp = *live_.at(s.seq_id)->sampler;
    if (!smp.device_compatible()) return false;
    n_pen += smp.num_penalty_tokens();
    ++n;
  }
  if (n == 0 || n_pen > max_device_penalty_) return false;
  dev_args_.clear();
  pen_tokens_.clear();
  pen_counts_.clear();
  for (const auto& s : plan.seqs)
    if (s.need_logits) dev_args_.push_back(live_.at(s.seq_id)->sampler->device_args(pen_tokens_, pen_counts_));
  dev_tokens_.assign(n, -1);
  return true;
}

bool EngineCore::step() {
  if (live_.empty()) return false;
  const StepPlan& plan = sched_.schedule();
  if (plan.seqs.empty()) {
    // Cannot happen (a lone request always fits the pool); never spin on it.
    std::vector<uint64_t> ids;
    for (const auto& kv : live_) ids.push_back(kv.first);
    for (uint64_t id : ids) finish(id, *live_.at(id), FinishReason::Error, "the scheduler could not place the request");
    return true;
  }
  const auto now = Clock::now();
  for (const auto& s : plan.seqs) {
    Live& lv = *live_.at(s.seq_id);
    if (!lv.scheduled) {
      lv.scheduled = true;
      lv.first_scheduled = now;
      lv.sampler.emplace(lv.params, runner_.n_vocab(), eog_);
      const Request* r = sched_.get(s.seq_id);
      lv.sampler->accept(std::span<const int32_t>(r->tokens.data(), static_cast<size_t>(r->num_prompt)));
    }
  }

  const bool on_device = prepare_device_sampling(plan);
  const size_t n_vocab = static_cast<size_t>(runner_.n_vocab());
  Result<std::span<const float>> logits = std::span<const float>();
  if (on_device) {
    ++device_steps_;
    const SampleBatch batch{dev_args_, pen_tokens_, pen_counts_};
    if (auto st = runner_.execute_sample(plan, batch, dev_tokens_); !st.ok()) logits = st.error();
  } else {
    logits = runner_.execute(plan);
    size_t n_rows = 0;
    for (const auto& s : plan.seqs) n_rows += s.need_logits;
    if (logits.ok() && logits->size() < n_rows * n_vocab) logits = make_error("the model returned too few logits");
  }
  if (!logits.ok()) {
    plan_ids_.clear();
    for (const auto& s : plan.seqs) plan_ids_.push_back(s.seq_id);
    const std::string msg = "forward pass failed: " + logits.message();
    for (uint64_t id : plan_ids_) {
      if (auto it = live_.find(id); it != live_.end()) finish(id, *it->second, FinishReason::Error, msg);
    }
    return true;
  }

  sampled_.clear();
  step_ids_.clear();
  size_t row = 0;
  for (const auto& s : plan.seqs) {
    if (!s.need_logits) continue;
    Live& lv = *live_.at(s.seq_id);
    lv.sample_error.clear();
    if (on_device) {
      const int32_t tok = dev_tokens_[row];
      const bool bad = tok < 0 || static_cast<size_t>(tok) >= n_vocab;
      if (tok < 0) lv.sample_error = sample_failure_message(tok);
      else if (bad) lv.sample_error = "the device sampler returned token " + std::to_string(tok);
      sampled_.push_back(bad ? -1 : tok);
    } else {
      auto r = lv.sampler->sample(logits->subspan(row * n_vocab, n_vocab), lv.params.wants_logprobs() ? &lv.lp : nullptr);
      if (r.ok()) {
        sampled_.push_back(*r);
      } else {
        lv.sample_error = r.message();
        sampled_.push_back(-1);
      }
    }
    ++row;
    step_ids_.push_back(s.seq_id);
  }
  sched_.update(plan, sampled_);

  for (uint64_t id : step_ids_) {
    Live& lv = *live_.at(id);
    if (!lv.sample_error.empty()) {
      finish(id, lv, FinishReason::Error, "sampling failed: " + lv.sample_error);
      continue;
    }
    const Request* r = sched_.get(id);
    if (on_token(id, lv, *r)) continue;
    emit(id, lv, r, FinishReason::None);
  }
  return true;
}

EngineStats EngineCore::stats() const {
  EngineStats s;
  s.running = sched_.num_running();
  s.waiting = sched_.num_waiting();
  s.kv_usage = sched_.kv_usage();
  s.prompt_tokens_total = prompt_tokens_total_;
  s.generation_tokens_total = generation_tokens_total_;
  s.prefix_queries_total = sched_.kv().pool().prefix_queries();
  s.prefix_hits_total = sched_.kv().pool().prefix_hits();
  s.preemptions_total = sched_.num_preemptions();
  s.requests_finished_total = finished_total_;
  return s;
}

}  // namespace velo
