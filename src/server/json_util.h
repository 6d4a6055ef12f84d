// JSON and time helpers shared by the API codecs.
#pragma once
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

namespace velo::server {

// Serialise without throwing on invalid UTF-8 (token pieces can be partial characters).
inline std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

inline int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

// RFC 3339 UTC timestamp with nanoseconds, as Ollama writes "created_at".
std::string rfc3339_now();

// "chatcmpl-" + 24 random alphanumerics.
std::string random_id(const std::string& prefix);

}  // namespace velo::server
