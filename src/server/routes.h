// Route registration, one function per API family.
#pragma once
#include <httplib.h>

#include "server/state.h"

namespace velo::server {

void register_openai_routes(httplib::Server& http, ServerState& st);
void register_ollama_routes(httplib::Server& http, ServerState& st);
void register_ops_routes(httplib::Server& http, ServerState& st);  // /health, /ready, /metrics

// Write an error in OpenAI's shape (Retry-After when set).
void send_openai_error(httplib::Response& res, const ApiError& e);
void send_ollama_error(httplib::Response& res, const ApiError& e);
void send_json(httplib::Response& res, const nlohmann::json& j, int status = 200);
// Parse a request body; nullopt (with `err` set) when it is not valid JSON.
std::optional<nlohmann::ordered_json> parse_body(const httplib::Request& req, ApiError& err);

}  // namespace velo::server
