// Errors returned to HTTP clients, in OpenAI's shape ({"error": {...}}) or Ollama's ({"error": "..."}).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace velo::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";  // OpenAI error type
  std::string code;                            // e.g. "context_length_exceeded", "model_not_found"
  std::string param;                           // offending field, when known
  int retry_after = 0;                         // seconds; sets Retry-After when > 0

  nlohmann::json openai_json() const;
  nlohmann::json ollama_json() const { return {{"error", message}}; }
};

inline ApiError bad_request(std::string msg, std::string param = "", std::string code = "") {
  return ApiError{400, std::move(msg), "invalid_request_error", std::move(code), std::move(param), 0};
}

}  // namespace velo::server
