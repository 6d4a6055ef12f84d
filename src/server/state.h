// State shared by every route of one server: options, the loaded model, metrics.
#pragma once
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "engine/engine.h"
#include "server/api_error.h"
#include "server/metrics.h"

namespace velo::server {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 11435;
  std::string api_key;             // empty: no authentication
  std::string cors_origin;         // empty: CORS off
  size_t max_body_bytes = 8u << 20;
  std::chrono::milliseconds drain{30000};  // SIGTERM: how long running requests may finish
  int http_threads = 64;           // concurrent connections (streams hold one each)
  int max_n = 16;                  // largest `n` accepted
};

// What the model endpoints (/v1/models, /api/tags, /api/show, /api/ps) report.
struct ModelEntry {
  std::string id;          // name clients use ("SmolLM2-135M-Instruct.Q4_1")
  std::string path;
  uint64_t size_bytes = 0;
  int64_t created = 0;     // file mtime, unix seconds
  std::string architecture, family, parameter_size, quantization;
  uint64_t parameter_count = 0;
  int32_t context_length = 0;
  std::string digest;      // sha256-like identifier (of path + size + mtime; not the content)
  nlohmann::json model_info = nlohmann::json::object();  // GGUF scalar metadata for /api/show
  std::string chat_template;
};

struct ServerState {
  ServerOptions opts;
  Metrics metrics;
  ModelEntry model;
  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};
  std::mutex load_mu;
  std::string load_error;  // set when loading failed
  std::unique_ptr<Engine> engine;  // destroyed before metrics (declared after)

  // 503 while loading, after a failed load and while draining; nullopt when requests may run.
  std::optional<ApiError> check_serving();
  // True when `name` refers to the served model ("id", "id:latest", the file name).
  bool model_matches(const std::string& name) const;
};

}  // namespace velo::server
