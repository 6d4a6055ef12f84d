#include "server/metrics.h"

#include <cstdio>
#include <cstdlib>

namespace velo::server {

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  std::lock_guard<std::mutex> lk(mu_);
  counts_[i]++;
  sum_ += v;
  count_++;
}

// Shortest text that reads back as the same double ("0.005", not "0.0050000000000000001").
static std::string fmt_double(double v) {
  char buf[64];
  for (int prec = 6; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  std::lock_guard<std::mutex> lk(mu_);
  uint64_t cum = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts_[i];
    std::string le = i < bounds_.size() ? fmt_double(bounds_[i]) : "+Inf";
    out += name + "_bucket{" + labels + ",le=\"" + le + "\"} " + std::to_string(cum) + "\n";
  }
  out += name + "_sum{" + labels + "} " + fmt_double(sum_) + "\n";
  out += name + "_count{" + labels + "} " + std::to_string(count_) + "\n";
}

// Bucket bounds as vLLM uses them.
Metrics::Metrics()
    : ttft({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
            20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}),
      itl({0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
           40.0, 80.0}),
      e2e({0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
           480.0, 960.0, 1920.0, 7680.0}) {}

std::string Metrics::render(const std::string& model_name, const EngineStats& s) const {
  const std::string lbl = "model_name=\"" + model_name + "\"";
  std::string out;
  auto gauge = [&](const char* name, const char* help, double v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n";
    out += std::string(name) + "{" + lbl + "} " + fmt_double(v) + "\n";
  };
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n";
    out += std::string(name) + "{" + lbl + "} " + std::to_string(v) + "\n";
  };
  auto histogram = [&](const char* name, const char* help, const Histogram& h) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " histogram\n";
    h.render(out, name, lbl);
  };
  gauge("vllm:num_requests_running", "Number of requests in model execution batches.", s.running);
  gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", s.waiting);
  gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", s.kv_usage);
  gauge("vllm:gpu_cache_usage_perc", "KV-cache usage (older name). 1 means 100 percent usage.", s.kv_usage);
  counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.", s.prompt_tokens_total);
  counter("vllm:generation_tokens_total", "Number of generation tokens processed.", s.generation_tokens_total);
  counter("vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.",
          s.prefix_queries_total);
  counter("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.",
          s.prefix_hits_total);
  counter("vllm:num_preemptions_total", "Cumulative number of preemptions from the engine.", s.preemptions_total);
  out += "# HELP vllm:request_success_total Count of successfully processed requests.\n"
         "# TYPE vllm:request_success_total counter\n";
  out += "vllm:request_success_total{" + lbl + ",finished_reason=\"stop\"} " + std::to_string(success_stop) + "\n";
  out += "vllm:request_success_total{" + lbl + ",finished_reason=\"length\"} " + std::to_string(success_length) + "\n";
  out += "vllm:request_success_total{" + lbl + ",finished_reason=\"abort\"} " + std::to_string(aborted) + "\n";
  histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", ttft);
  histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", itl);
  histogram("vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.", e2e);
  return out;
}

}  // namespace velo::server
