// Prometheus metrics with vLLM's names, so existing dashboards work unchanged.
#pragma once
#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace velo::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void observe(double v);
  // Appends the _bucket/_sum/_count series for `name` with the given label set.
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  Histogram ttft;           // vllm:time_to_first_token_seconds
  Histogram itl;            // vllm:inter_token_latency_seconds
  Histogram e2e;            // vllm:e2e_request_latency_seconds
  std::atomic<uint64_t> success_stop{0}, success_length{0}, aborted{0};
  std::atomic<uint64_t> http_requests{0};

  // Text exposition format (version 0.0.4).
  std::string render(const std::string& model_name, const EngineStats& stats) const;
};

}  // namespace velo::server
