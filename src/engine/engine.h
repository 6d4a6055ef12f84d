// Engine: the continuous-batching step loop (schedule -> execute -> sample ->
// update) on a background thread, with a thread-safe API for the server.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "engine/model_runner.h"
#include "engine/sampling_params.h"

namespace velo {

enum class FinishReason { None, Stop, Length, Cancelled, Error };
// "stop", "length", ... as OpenAI spells them.
const char* finish_reason_name(FinishReason r);

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // the top alternatives (token, logprob)
};

struct GenerationRequest {
  std::vector<int32_t> prompt;  // already tokenized (chat template applied by the caller)
  SamplingParams params;        // validated by the caller
};

// One callback per step in which the request made progress, then a final one.
struct RequestOutput {
  uint64_t id = 0;
  std::string text;                   // new text since the previous output (stop strings held back)
  std::vector<int32_t> tokens;        // new tokens since the previous output
  std::vector<TokenLogprob> logprobs; // one per new token when requested
  bool finished = false;
  FinishReason finish_reason = FinishReason::None;
  std::string error;                  // when finish_reason == Error
  int32_t prompt_tokens = 0;
  int32_t cached_tokens = 0;          // prompt tokens served from the prefix cache
  int32_t completion_tokens = 0;
  double queue_seconds = 0;           // time waiting before the first step
  double prompt_seconds = 0;          // first step to first token
  double decode_seconds = 0;          // first token to now
};

struct EngineOptions {
  int32_t max_running = 8;         // sequences decoded together (--parallel)
  int32_t max_waiting = 64;        // bounded queue; submit() fails beyond it
  int32_t max_step_tokens = 256;   // token budget per step (chunked prefill)
};

// Counters and histograms for /metrics (vLLM names are chosen by the server).
struct EngineStats {
  int32_t running = 0, waiting = 0;
  double kv_usage = 0;  // fraction of KV blocks in use
  uint64_t prompt_tokens_total = 0, generation_tokens_total = 0;
  uint64_t prefix_queries_total = 0, prefix_hits_total = 0;  // in tokens
  uint64_t preemptions_total = 0;
  uint64_t requests_finished_total = 0;
};

class Engine {
 public:
  using Callback = std::function<void(const RequestOutput&)>;  // called on the engine thread
  static Result<std::unique_ptr<Engine>> create(std::unique_ptr<ModelRunner> runner, const EngineOptions& opts);
  virtual ~Engine() = default;

  virtual const ModelRunner& runner() const = 0;
  // Queues a request. Errors: queue full ("queue full"), prompt longer than the context.
  virtual Result<uint64_t> submit(GenerationRequest req, Callback cb) = 0;
  // Stops a request; its KV blocks are released within one step. Its callback gets a final Cancelled output.
  virtual void cancel(uint64_t id) = 0;
  virtual EngineStats stats() const = 0;
  // Refuse new requests, let running ones finish for up to `drain`, then cancel the rest.
  virtual void shutdown(std::chrono::milliseconds drain) = 0;
};

}  // namespace velo
