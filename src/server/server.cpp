#include "server/server.h"

#include <httplib.h>

#include "server/json_util.h"
#include "server/routes.h"

namespace velo::server {

using nlohmann::json;

void send_json(httplib::Response& res, const json& j, int status) {
  res.status = status;
  res.set_content(dump_json(j), "application/json");
}

void send_openai_error(httplib::Response& res, const ApiError& e) {
  if (e.retry_after > 0) res.set_header("Retry-After", std::to_string(e.retry_after));
  send_json(res, e.openai_json(), e.status);
}

void send_ollama_error(httplib::Response& res, const ApiError& e) {
  if (e.retry_after > 0) res.set_header("Retry-After", std::to_string(e.retry_after));
  send_json(res, e.ollama_json(), e.status);
}

std::optional<nlohmann::ordered_json> parse_body(const httplib::Request& req, ApiError& err) {
  auto j = nlohmann::ordered_json::parse(req.body, nullptr, false);
  if (j.is_discarded()) {
    err = bad_request("the request body is not valid JSON");
    return std::nullopt;
  }
  return j;
}

// Length-independent comparison so response timing does not reveal the key.
static bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::string& ref = b.empty() ? a : b;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ ref[i % ref.size()]);
  return diff == 0;
}

static bool is_ollama_path(const std::string& path) { return path.rfind("/api/", 0) == 0; }

Server::Server(ServerOptions opts) : st_(std::make_unique<ServerState>()), http_(std::make_unique<httplib::Server>()) {
  st_->opts = std::move(opts);
  ServerState& st = *st_;
  httplib::Server& http = *http_;
  const int threads = st.opts.http_threads;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_payload_max_length(st.opts.max_body_bytes);
  http.set_read_timeout(30, 0);
  http.set_write_timeout(30, 0);

  // Authentication and CORS before any route; health and metrics stay open for probes.
  http.set_pre_routing_handler([&st](const httplib::Request& req, httplib::Response& res) {
    st.metrics.http_requests++;
    if (!st.opts.cors_origin.empty()) {
      res.set_header("Access-Control-Allow-Origin", st.opts.cors_origin);
      res.set_header("Vary", "Origin");
      if (req.method == "OPTIONS") {
        res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
        res.set_header("Access-Control-Max-Age", "600");
        res.status = 204;
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (st.opts.api_key.empty() || req.path == "/health" || req.path == "/ready" || req.path == "/metrics")
      return httplib::Server::HandlerResponse::Unhandled;
    std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    std::string key = auth.rfind(prefix, 0) == 0 ? auth.substr(prefix.size()) : "";
    if (!constant_time_equal(key, st.opts.api_key)) {
      ApiError e{401, "Incorrect API key provided. Pass it as 'Authorization: Bearer KEY'.", "invalid_request_error",
                 "invalid_api_key", "", 0};
      if (is_ollama_path(req.path)) send_ollama_error(res, e);
      else send_openai_error(res, e);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  // Statuses produced by httplib itself (404 route, 413 body too large, 400 bad request) get our error shape.
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError e{res.status, "", "invalid_request_error", "", "", 0};
    if (res.status == 404) e.message = "no route for " + req.method + " " + req.path;
    else if (res.status == 413) e.message = "request body too large";
    else if (res.status == 405) e.message = "method not allowed";
    else e.message = "bad request";
    if (res.status == 413) e.code = "request_too_large";
    if (is_ollama_path(req.path)) send_ollama_error(res, e);
    else send_openai_error(res, e);
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
    }
    send_openai_error(res, ApiError{500, what, "server_error", "", "", 0});
  });

  register_ops_routes(http, st);
  register_openai_routes(http, st);
  register_ollama_routes(http, st);
}

Server::~Server() {
  if (http_) http_->stop();
}

Status Server::bind() {
  const auto& o = st_->opts;
  if (o.port == 0) {
    port_ = http_->bind_to_any_port(o.host.c_str());
    if (port_ <= 0) return make_error("cannot bind to " + o.host);
  } else {
    if (!http_->bind_to_port(o.host.c_str(), o.port))
      return make_error("cannot bind to " + o.host + ":" + std::to_string(o.port) +
                        " (in use? try --port with another number)");
    port_ = o.port;
  }
  return {};
}

Status Server::listen() {
  if (!http_->listen_after_bind()) return make_error("the HTTP server stopped with an error");
  return {};
}

void Server::set_engine(std::unique_ptr<Engine> engine, ModelEntry model) {
  st_->model = std::move(model);
  st_->engine = std::move(engine);
  st_->ready = true;
}

void Server::set_load_error(const std::string& msg) {
  std::lock_guard<std::mutex> lk(st_->load_mu);
  st_->load_error = msg;
}

void Server::shutdown() {
  st_->draining = true;
  if (st_->engine) st_->engine->shutdown(st_->opts.drain);
  http_->stop();
}

}  // namespace velo::server
