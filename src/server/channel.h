// Hands engine outputs (produced on the engine thread) to the HTTP thread that streams them.
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

#include "engine/engine.h"

namespace velo::server {

struct ChoiceOutput {
  int choice = 0;  // index among the n completions of one HTTP request
  RequestOutput out;
};

class OutputChannel {
 public:
  void push(ChoiceOutput item) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      q_.push_back(std::move(item));
    }
    cv_.notify_one();
  }
  // Next output, or nullopt when nothing arrived within `timeout`.
  std::optional<ChoiceOutput> pop(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lk(mu_);
    if (!cv_.wait_for(lk, timeout, [&] { return !q_.empty(); })) return std::nullopt;
    ChoiceOutput o = std::move(q_.front());
    q_.pop_front();
    return o;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ChoiceOutput> q_;
};

}  // namespace velo::server
