// EngineCore: one engine step, single-threaded (the Engine runs it on its
// thread; tests may drive it directly).
//
//   step = Scheduler::schedule -> ModelRunner::execute -> Sampler per
//          need_logits sequence -> Scheduler::update -> StreamingDetokenizer
//          -> StopMatcher -> finish checks -> callbacks
//
// Sampling on the device: when the runner can (CUDA with the head on the GPU)
// and every sequence wanting a token this step can be served by the device
// sampler exactly as by its CPU Sampler (no logprobs, logit bias or masked
// end-of-generation tokens, penalty windows within the runner's capacity),
// the step runs ModelRunner::execute_sample instead: each Sampler hands over
// its settings, penalty window and this step's uniform draw, and only token
// ids come back. Otherwise the whole step takes the logits path. Either way a
// request's Sampler owns its RNG and penalty history, so its tokens are the
// same whichever path a step takes.
//
// A request finishes on an end-of-generation token (Stop; the token is not
// emitted), a stop string (Stop), max_tokens or a full context (Length), a
// cancel (Cancelled), or a failed forward/sampling step (Error).
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/engine.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/stop_matcher.h"
#include "tokenizer/tokenizer.h"

namespace velo {

class EngineCore {
 public:
  using Clock = std::chrono::steady_clock;

  // `runner` outlives the core; `opts` must have passed validate_engine_options().
  EngineCore(ModelRunner& runner, const EngineOptions& opts);

  // Checks a request against the model (prompt length, sampling params); the
  // error message is the one submit() returns.
  Status check(const GenerationRequest& req) const;
  // Adds a checked request. A request with max_tokens == 0 finishes at once.
  // Callbacks run inside add/cancel/step and must not call back into the core.
  void add(uint64_t id, GenerationRequest req, Engine::Callback cb, Clock::time_point arrival);
  // Finishes a request (Cancelled) and frees its KV blocks now. No-op if unknown.
  void cancel(uint64_t id);
  void cancel_all();

  // One step; returns false when there was nothing to do.
  bool step();
  bool idle() const { return live_.empty(); }

  int32_t num_running() const { return sched_.num_running(); }
  int32_t num_waiting() const { return sched_.num_waiting(); }
  // Counters for /metrics (running/waiting/kv from the scheduler now).
  EngineStats stats() const;
  const Scheduler& scheduler() const { return sched_; }
  // Steps whose tokens were sampled on the device (tests, A/B figures).
  uint64_t device_sampled_steps() const { return device_steps_; }

 private:
  struct Live {
    Engine::Callback cb;
    SamplingParams params;
    // Built when the request is first scheduled: its buffers are O(n_vocab),
    // so only running requests pay for them, not the whole queue.
    std::optional<Sampler> sampler;
    StreamingDetokenizer detok;
    StopMatcher stop;
    RequestOutput out;  // accumulates one step's progress, reused
    int32_t num_prompt = 0;
    int32_t max_output = 0;
    int32_t completion = 0;  // tokens emitted (an end-of-generation token is not)
    Clock::time_point arrival, first_scheduled, first_token;
    bool scheduled = false, got_token = false;
    std::string sample_error;  // set when sampling failed this step
    TokenLogprob lp;           // this step's logprob entry
    Live(Engine::Callback c, const SamplingParams& p, const ModelRunner& runner)
        : cb(std::move(c)), params(p), detok(runner.tokenizer(), false),
          stop(p.stop) {}
  };

  // Handles the token just appended to request `id`; true when it finished the request.
  bool on_token(uint64_t id, Live& lv, const Request& r);
  // True when this step samples on the device; then dev_args_, pen_tokens_,
  // pen_counts_ hold its batch (each Sampler has taken its draw).
  bool prepare_device_sampling(const StepPlan& plan);
  // Sends the final output and forgets the request.
  void finish(uint64_t id, Live& lv, FinishReason reason, std::string error = {});
  // Calls back with the progress in lv.out (final when reason != None), then clears it.
  void emit(uint64_t id, Live& lv, const Request* r, FinishReason reason);

  ModelRunner& runner_;
  EngineOptions opts_;
  Scheduler sched_;
  std::vector<int32_t> eog_;
  std::unordered_map<uint64_t, std::unique_ptr<Live>> live_;
  std::vector<int32_t> sampled_;       // one per need_logits seq of the step
  std::vector<uint64_t> step_ids_;     // need_logits seq ids of the step
  std::vector<uint64_t> plan_ids_;     // every seq id of the step
  int32_t max_device_penalty_ = -1;    // runner_.max_sample_penalty_tokens(); -1: no device sampling
  std::vector<SampleArgs> dev_args_;   // one per need_logits seq of a device-sampled step
  std::vector<int32_t> pen_tokens_, pen_counts_;  // their penalty windows
  std::vector<int32_t> dev_tokens_;    // what the device sampled
  uint64_t device_steps_ = 0;
  uint64_t prompt_tokens_total_ = 0, generation_tokens_total_ = 0, finished_total_ = 0;
};

// Errors for out-of-range EngineOptions ("max_running must be >= 1, got 0").
Status validate_engine_options(const EngineOptions& opts);
// The scheduler configuration for `runner` and `opts`.
SchedulerConfig scheduler_config(const ModelRunner& runner, const EngineOptions& opts);

}  // namespace velo
