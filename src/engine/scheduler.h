// Scheduler: continuous batching over a paged KV cache (vLLM v1 style).
//
// Every step hands out a token budget. Running requests come first: those
// decoding (one pending token) before those still in a chunked prompt, so a
// long prompt never stalls the others' decoding. Then waiting requests are
// admitted in FIFO order (a prompt may start with a chunk), bounded by
// max_running and the KV blocks left; a request whose next prompt block is
// being computed by a running request right now (the same prompt submitted
// together) waits for that block rather than computing it twice.
// When a running request needs a block and none is free, the most recently
// admitted running request is preempted by recompute: its blocks are freed and
// it goes back to the front of the queue with num_computed = 0; its generated
// tokens become part of what it recomputes, so its output does not change.
// Nothing here touches tensors: schedule() returns a StepPlan of plain data.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/result.h"
#include "engine/request.h"
#include "engine/step_plan.h"
#include "kv/kv_manager.h"

namespace velo {

struct SchedulerConfig {
  int32_t max_running = 8;        // sequences in a step
  int32_t max_waiting = 64;       // bounded queue (preempted requests may exceed it)
  int32_t max_step_tokens = 256;  // token budget per step
  int32_t ctx_size = 2048;        // most tokens a sequence may hold
  int32_t block_size = 16;
  int32_t num_blocks = 0;
  bool prefix_caching = true;
  Status validate() const;
};

class Scheduler {
 public:
  // `cfg` must pass validate().
  explicit Scheduler(const SchedulerConfig& cfg);

  // Queues a request with `prompt` (1 .. ctx_size - 1 tokens, fitting the KV pool).
  // Errors: "queue full", prompt too long, id in use.
  Status add(uint64_t id, std::vector<int32_t> prompt);
  // Removes a request wherever it is and frees its blocks now. No-op if unknown.
  void finish(uint64_t id);

  // The plan of the next step (valid until the next schedule()); may be empty.
  const StepPlan& schedule();
  // Advances every request of `plan` by its scheduled tokens and appends
  // sampled[i] to the i-th need_logits sequence. Requests finished since
  // schedule() are skipped (their sampled entry still counts).
  void update(const StepPlan& plan, std::span<const int32_t> sampled);

  Request* get(uint64_t id);
  const Request* get(uint64_t id) const;
  bool empty() const { return reqs_.empty(); }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  uint64_t num_preemptions() const { return preemptions_; }
  // Ids of requests preempted during the last schedule().
  std::span<const uint64_t> last_preempted() const { return last_preempted_; }
  const kv::KvManager& kv() const { return kv_; }
  double kv_usage() const { return kv_.pool().usage(); }
  const SchedulerConfig& config() const { return cfg_; }
  // Most tokens one sequence may hold: the context, or the whole KV pool if smaller.
  // The engine ends a request (Length) when it reaches this.
  int32_t max_seq_tokens() const;

  // Every invariant of the scheduler and the KV cache (for tests): each
  // request in exactly one of running/waiting, waiting requests hold no blocks,
  // running ones hold blocks covering their computed tokens, ref counts
  // consistent, free list consistent.
  Status check_invariants() const;

 private:
  // Gives `r` blocks for `n` more tokens, preempting from the back of
  // running_ as needed. False when `r` itself got preempted.
  bool reserve(Request& r, int32_t n, int32_t& budget);
  void preempt_back(int32_t& budget);
  // Whether a running request is about to compute the block that would extend
  // `r`'s cache hit (same prompt submitted together, e.g. n > 1 completions):
  // `r` then waits a step or two and reuses it instead of computing it again.
  bool prefix_in_flight(const Request& r, const kv::PrefixHit& hit) const;
  void add_to_plan(Request& r, int32_t n);

  SchedulerConfig cfg_;
  kv::KvManager kv_;
  std::unordered_map<uint64_t, std::unique_ptr<Request>> reqs_;
  std::vector<Request*> running_;  // in admission order
  std::deque<Request*> waiting_;
  StepPlan plan_;
  std::vector<ScheduledSeq> spare_;  // entries of earlier plans, reused for their capacity
  std::vector<uint64_t> last_preempted_;
  uint64_t preemptions_ = 0;
};

}  // namespace velo
