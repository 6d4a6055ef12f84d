// Engine: EngineCore on a background thread. submit()/cancel() only queue work
// under a mutex; the engine thread moves it into the core between steps, so
// the scheduler, the KV cache and the runner are touched by one thread only.
// An idle engine sleeps on a condition variable.
#include "engine/engine.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "engine/engine_core.h"

namespace velo {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::None: return "";
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "";
}

namespace {

class ThreadedEngine final : public Engine {
 public:
  ThreadedEngine(std::unique_ptr<ModelRunner> runner, const EngineOptions& opts)
      : runner_(std::move(runner)), opts_(opts), core_(*runner_, opts) {
    stats_ = core_.stats();
    thread_ = std::thread([this] { loop(); });
  }
  ~ThreadedEngine() override { shutdown(std::chrono::milliseconds(0)); }

  const ModelRunner& runner() const override { return *runner_; }

  Result<uint64_t> submit(GenerationRequest req, Callback cb) override {
    // check() reads only what never changes after construction.
    VELO_TRY(core_.check(req));
    std::lock_guard lk(mu_);
    if (!accepting_) return make_error("the engine is shutting down");
    if (static_cast<int64_t>(pending_.size()) + waiting_ >= opts_.max_waiting) return make_error("queue full");
    const uint64_t id = next_id_++;
    pending_.push_back(Pending{id, std::move(req), std::move(cb), EngineCore::Clock::now()});
    cv_.notify_one();
    return id;
  }

  void cancel(uint64_t id) override {
    std::lock_guard lk(mu_);
    cancels_.push_back(id);
    cv_.notify_one();
  }

  EngineStats stats() const override {
    std::lock_guard lk(mu_);
    EngineStats s = stats_;
    s.waiting += static_cast<int32_t>(pending_.size());
    return s;
  }

  void shutdown(std::chrono::milliseconds drain) override {
    {
      std::lock_guard lk(mu_);
      accepting_ = false;
      if (!draining_) {
        draining_ = true;
        deadline_ = EngineCore::Clock::now() + drain;
      }
      cv_.notify_one();
    }
    std::lock_guard join_lk(join_mu_);
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }

 private:
  struct Pending {
    uint64_t id;
    GenerationRequest req;
    Callback cb;
    EngineCore::Clock::time_point arrival;
  };

  void loop() {
    std::deque<Pending> incoming;
    std::vector<uint64_t> cancels;
    for (;;) {
      bool cancel_everything = false;
      {
        std::unique_lock lk(mu_);
        if (core_.idle() && pending_.empty() && cancels_.empty()) {
          if (draining_) return;
          cv_.wait(lk, [&] { return !pending_.empty() || !cancels_.empty() || draining_; });
          continue;
        }
        incoming.swap(pending_);
        cancels.swap(cancels_);
        waiting_ += static_cast<int64_t>(incoming.size());
        cancel_everything = draining_ && EngineCore::Clock::now() >= deadline_;
      }
      for (auto& p : incoming) core_.add(p.id, std::move(p.req), std::move(p.cb), p.arrival);
      incoming.clear();
      for (uint64_t id : cancels) core_.cancel(id);
      cancels.clear();
      if (cancel_everything) core_.cancel_all();
      core_.step();
      std::lock_guard lk(mu_);
      stats_ = core_.stats();
      waiting_ = core_.num_waiting();
    }
  }

  std::unique_ptr<ModelRunner> runner_;
  EngineOptions opts_;
  EngineCore core_;  // engine thread only (check() excepted)

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::deque<Pending> pending_;
  std::vector<uint64_t> cancels_;
  EngineStats stats_;
  int64_t waiting_ = 0;  // requests in the core's queue at the last step
  uint64_t next_id_ = 1;
  bool accepting_ = true, draining_ = false;
  EngineCore::Clock::time_point deadline_;

  std::mutex join_mu_;
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<Engine>> Engine::create(std::unique_ptr<ModelRunner> runner, const EngineOptions& opts) {
  if (!runner) return make_error("no model runner");
  VELO_TRY(validate_engine_options(opts));
  if (runner->num_kv_blocks() < 1 || runner->block_size() < 1 || runner->ctx_size() < 2) {
    return make_error("the model runner has no KV cache to schedule");
  }
  return std::unique_ptr<Engine>(new ThreadedEngine(std::move(runner), opts));
}

}  // namespace velo
