#include "engine/scheduler.h"

#include <algorithm>
#include <string>
#include <unordered_set>

namespace velo {

Status SchedulerConfig::validate() const {
  if (max_running < 1) return make_error("max_running must be >= 1, got " + std::to_string(max_running));
  if (max_waiting < 0) return make_error("max_waiting must be >= 0, got " + std::to_string(max_waiting));
  if (max_step_tokens < 1) return make_error("max_step_tokens must be >= 1, got " + std::to_string(max_step_tokens));
  if (ctx_size < 2) return make_error("ctx_size must be >= 2, got " + std::to_string(ctx_size));
  if (block_size < 1) return make_error("block_size must be >= 1, got " + std::to_string(block_size));
  if (num_blocks < 1) return make_error("num_blocks must be >= 1, got " + std::to_string(num_blocks));
  return {};
}

Scheduler::Scheduler(const SchedulerConfig& cfg) : cfg_(cfg), kv_(cfg.num_blocks, cfg.block_size) {
  reqs_.reserve(static_cast<size_t>(std::min<int64_t>(int64_t{cfg.max_running} + cfg.max_waiting, 4096)));
  running_.reserve(static_cast<size_t>(cfg.max_running));
}

int32_t Scheduler::max_seq_tokens() const {
  const int64_t pool = static_cast<int64_t>(cfg_.num_blocks) * cfg_.block_size;
  return static_cast<int32_t>(std::min<int64_t>(cfg_.ctx_size, pool));
}

Status Scheduler::add(uint64_t id, std::vector<int32_t> prompt) {
  if (prompt.empty()) return make_error("the prompt is empty");
  const int64_t n = static_cast<int64_t>(prompt.size());
  if (n >= max_seq_tokens()) {
    return make_error("the prompt has " + std::to_string(n) + " tokens but the context holds " +
                      std::to_string(max_seq_tokens()) + " (prompt and at least one generated token)");
  }
  if (static_cast<int32_t>(waiting_.size()) >= cfg_.max_waiting) return make_error("queue full");
  if (reqs_.count(id)) return make_error("request id " + std::to_string(id) + " is in use");
  auto r = std::make_unique<Request>();
  r->id = id;
  r->num_prompt = static_cast<int32_t>(n);
  r->tokens = std::move(prompt);
  waiting_.push_back(r.get());
  reqs_.emplace(id, std::move(r));
  return {};
}

void Scheduler::finish(uint64_t id) {
  auto it = reqs_.find(id);
  if (it == reqs_.end()) return;
  Request* r = it->second.get();
  if (r->state == RequestState::Running) {
    running_.erase(std::find(running_.begin(), running_.end(), r));
  } else {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), r));
  }
  kv_.free(id);
  reqs_.erase(it);
}

Request* Scheduler::get(uint64_t id) {
  auto it = reqs_.find(id);
  return it == reqs_.end() ? nullptr : it->second.get();
}

const Request* Scheduler::get(uint64_t id) const {
  auto it = reqs_.find(id);
  return it == reqs_.end() ? nullptr : it->second.get();
}

void Scheduler::add_to_plan(Request& r, int32_t n) {
  ScheduledSeq s;
  if (!spare_.empty()) {
    s = std::move(spare_.back());
    spare_.pop_back();
  }
  s.seq_id = r.id;
  s.start_pos = r.num_computed;
  s.tokens.assign(r.tokens.begin() + r.num_computed, r.tokens.begin() + r.num_computed + n);
  auto table = kv_.block_table(r.id);
  s.block_table.assign(table.begin(), table.begin() + kv_.blocks_for(r.num_computed + n));
  s.need_logits = r.num_computed + n == r.num_tokens();
  plan_.seqs.push_back(std::move(s));
}

void Scheduler::preempt_back(int32_t& budget) {
  Request* v = running_.back();
  running_.pop_back();
  // A victim already in this step's plan leaves it and gives its tokens back.
  for (auto it = plan_.seqs.begin(); it != plan_.seqs.end(); ++it) {
    if (it->seq_id == v->id) {
      budget += static_cast<int32_t>(it->tokens.size());
      spare_.push_back(std::move(*it));
      plan_.seqs.erase(it);
      break;
    }
  }
  kv_.free(v->id);
  v->num_computed = 0;
  v->state = RequestState::Waiting;
  ++v->num_preemptions;
  waiting_.push_front(v);
  ++preemptions_;
  last_preempted_.push_back(v->id);
}

bool Scheduler::reserve(Request& r, int32_t n, int32_t& budget) {
  while (!kv_.allocate(r.id, r.num_computed + n)) {
    const bool self = running_.back() == &r;
    preempt_back(budget);
    if (self) return false;
  }
  return true;
}

bool Scheduler::prefix_in_flight(const Request& r, const kv::PrefixHit& hit) const {
  const int32_t bs = cfg_.block_size;
  const size_t k = hit.blocks.size();
  const int32_t end = static_cast<int32_t>(k + 1) * bs;  // end of r's first uncached block
  if (end > r.num_tokens() - 1) return false;            // no further block could come from the cache
  const auto next = r.tokens.begin() + static_cast<ptrdiff_t>(k) * bs;
  for (const Request* q : running_) {
    if (q->num_computed >= end || q->num_tokens() < end) continue;
    auto table = kv_.block_table(q->id);
    // Same cached prefix (the very blocks of the hit), then the same next block.
    if (table.size() < k || !std::equal(hit.blocks.begin(), hit.blocks.end(), table.begin())) continue;
    if (std::equal(next, next + bs, q->tokens.begin() + static_cast<ptrdiff_t>(k) * bs)) return true;
  }
  return false;
}

const StepPlan& Scheduler::schedule() {
  last_preempted_.clear();
  for (auto& s : plan_.seqs) spare_.push_back(std::move(s));
  plan_.seqs.clear();
  int32_t budget = cfg_.max_step_tokens;

  // Running requests: decodes (one pending token) first, then chunked prompts
  // and recomputes, each in admission order.
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
      Request& r = *running_[i];
      const int32_t pending = r.num_pending();
      if (pending <= 0 || (pending == 1) != (pass == 0)) continue;
      const int32_t n = std::min(pending, budget);
      if (!reserve(r, n, budget)) break;  // r was the last running request
      add_to_plan(r, n);
      budget -= n;
    }
  }

  // Waiting requests in FIFO order; none in a step that had to preempt.
  for (size_t w = 0; last_preempted_.empty() && w < waiting_.size() && budget > 0 &&
                     static_cast<int32_t>(running_.size()) < cfg_.max_running;) {
    Request& r = *waiting_[w];
    kv::PrefixHit hit;
    // The last known token is always computed: its logits are needed.
    if (cfg_.prefix_caching) hit = kv_.find_prefix(r.tokens, r.num_tokens() - 1);
    if (cfg_.prefix_caching && prefix_in_flight(r, hit)) {
      ++w;  // wait for that block instead of computing it twice; the rest may go on
      continue;
    }
    const int32_t cached = hit.num_tokens();
    const int32_t n = std::min(r.num_tokens() - cached, budget);
    if (!kv_.allocate(r.id, cached + n, &hit)) break;  // FIFO: nobody jumps a request short of blocks
    if (cfg_.prefix_caching) kv_.pool().record_query(r.num_tokens(), cached);
    if (r.num_cached_prompt < 0) r.num_cached_prompt = std::min(cached, r.num_prompt);
    r.num_computed = cached;
    r.state = RequestState::Running;
    waiting_.erase(waiting_.begin() + static_cast<ptrdiff_t>(w));
    running_.push_back(&r);
    add_to_plan(r, n);
    budget -= n;
  }
  return plan_;
}

void Scheduler::update(const StepPlan& plan, std::span<const int32_t> sampled) {
  size_t j = 0;
  for (const auto& s : plan.seqs) {
    int32_t tok = -1;
    if (s.need_logits) {
      if (j < sampled.size()) tok = sampled[j];
      ++j;
    }
    Request* r = get(s.seq_id);
    if (!r || r->state != RequestState::Running || r->num_computed != s.start_pos) continue;
    r->num_computed += static_cast<int32_t>(s.tokens.size());
    if (s.need_logits && tok >= 0) r->tokens.push_back(tok);
    if (cfg_.prefix_caching) kv_.commit(r->id, r->tokens, r->num_computed);
  }
}

Status Scheduler::check_invariants() const {
  VELO_TRY(kv_.check_invariants());
  if (static_cast<int32_t>(running_.size()) > cfg_.max_running) return make_error("more running than max_running");
  std::unordered_set<const Request*> seen;
  for (const Request* r : running_) {
    const std::string id = "request " + std::to_string(r->id);
    if (!seen.insert(r).second) return make_error(id + " is running twice");
    if (r->state != RequestState::Running) return make_error(id + " in running with another state");
    if (r->num_computed < 0 || r->num_computed > r->num_tokens()) return make_error(id + ": bad num_computed");
    if (r->num_tokens() > cfg_.ctx_size) return make_error(id + ": longer than the context");
    if (static_cast<int32_t>(kv_.block_table(r->id).size()) < kv_.blocks_for(r->num_computed)) {
      return make_error(id + ": computed tokens not covered by blocks");
    }
  }
  for (const Request* r : waiting_) {
    const std::string id = "request " + std::to_string(r->id);
    if (!seen.insert(r).second) return make_error(id + " is queued twice");
    if (r->state != RequestState::Waiting) return make_error(id + " in waiting with another state");
    if (r->num_computed != 0) return make_error(id + " waits with computed tokens");
    if (!kv_.block_table(r->id).empty()) return make_error(id + " waits holding blocks");
  }
  if (seen.size() != reqs_.size()) return make_error("a request is neither running nor waiting");
  for (const auto& [id, r] : reqs_) {
    if (!seen.count(r.get())) return make_error("request " + std::to_string(id) + " is lost");
  }
  if (kv_.num_seqs() > running_.size()) return make_error("blocks held by requests that are not running");
  return {};
}

}  // namespace velo
