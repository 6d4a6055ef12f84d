// Request: the scheduler's view of one generation. There are no prefill and
// decode modes: a request knows its tokens (prompt, then generated ones) and
// how many of them have their K/V computed; each step computes some of the rest.
#pragma once
#include <cstdint>
#include <vector>

namespace velo {

enum class RequestState { Waiting, Running, Finished };

struct Request {
  uint64_t id = 0;
  std::vector<int32_t> tokens;  // prompt, then every generated token
  int32_t num_prompt = 0;
  int32_t num_computed = 0;     // tokens whose K/V are in the cache (reset by preemption)
  int32_t num_cached_prompt = -1;  // prompt tokens served by the prefix cache at first admission; -1 before
  int32_t num_preemptions = 0;
  RequestState state = RequestState::Waiting;

  int32_t num_tokens() const { return static_cast<int32_t>(tokens.size()); }
  int32_t num_output() const { return num_tokens() - num_prompt; }
  // Tokens known but not yet computed (a prompt chunk, the last sampled token, or a recompute).
  int32_t num_pending() const { return num_tokens() - num_computed; }
};

}  // namespace velo
