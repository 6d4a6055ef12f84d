// Ollama-compatible endpoints: /api/generate, /api/chat (NDJSON streaming),
// /api/tags, /api/show, /api/ps, /api/version.
#include <memory>

#include "server/fields.h"
#include "server/json_util.h"
#include "server/prompt.h"
#include "server/routes.h"
#include "server/session.h"

namespace velo::server {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr auto kPoll = std::chrono::milliseconds(100);
constexpr const char* kOllamaVersion = "0.6.3";  // the API level we follow

// Ollama's `options` (unknown ones are ignored, as Ollama does for most).
MaybeError read_options(const nlohmann::ordered_json& body, SamplingParams& sp, int32_t& num_ctx) {
  sp.temperature = 0.8f;  // Ollama defaults
  sp.top_k = 40;
  sp.top_p = 0.9f;
  sp.min_p = 0.0f;
  sp.repeat_penalty = 1.1f;
  sp.repeat_last_n = 64;
  if (!body.contains("options") || body["options"].is_null()) return std::nullopt;
  const auto& o = body["options"];
  if (!o.is_object()) return bad_request("'options' must be an object", "options");
  if (auto e = read_int(o, "num_ctx", 1, 1 << 24, num_ctx)) return e;
  int32_t num_predict = -1;
  if (auto e = read_int(o, "num_predict", -2, 1 << 30, num_predict)) return e;
  sp.max_tokens = num_predict <= 0 ? -1 : num_predict;  // -1 infinite, -2 fill the context
  if (num_predict == 0) sp.max_tokens = 0;
  if (auto e = read_number(o, "temperature", 0, 100, sp.temperature)) return e;
  if (auto e = read_int(o, "top_k", 0, 1 << 30, sp.top_k)) return e;
  if (auto e = read_number(o, "top_p", 0, 1, sp.top_p)) return e;
  if (auto e = read_number(o, "min_p", 0, 1, sp.min_p)) return e;
  if (auto e = read_number(o, "repeat_penalty", 0, 100, sp.repeat_penalty)) return e;
  if (auto e = read_int(o, "repeat_last_n", -1, 1 << 20, sp.repeat_last_n)) return e;
  if (auto e = read_number(o, "presence_penalty", -100, 100, sp.presence_penalty)) return e;
  if (auto e = read_number(o, "frequency_penalty", -100, 100, sp.frequency_penalty)) return e;
  if (auto e = read_seed(o, "seed", sp.seed)) return e;
  if (auto e = read_stop(o, "stop", 16, sp.stop)) return e;
  if (sp.top_p <= 0) sp.top_p = 1.0f;  // Ollama treats 0 as "off"
  if (sp.repeat_penalty <= 0) sp.repeat_penalty = 1.0f;
  return std::nullopt;
}

int64_t ns(Clock::duration d) { return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(); }

struct Call {
  bool chat = false;
  std::string model;
  std::unique_ptr<Session> session;
  Clock::time_point start = Clock::now();
  int prompt_tokens = 0;
  std::string text;
  bool finished = false;
};

json base(const Call& c) { return {{"model", c.model}, {"created_at", rfc3339_now()}}; }

json piece_json(const Call& c, const std::string& text) {
  json j = base(c);
  if (c.chat) j["message"] = {{"role", "assistant"}, {"content", text}};
  else j["response"] = text;
  j["done"] = false;
  return j;
}

json final_json(const Call& c, const RequestOutput& o, const std::string& text) {
  json j = base(c);
  if (c.chat) j["message"] = {{"role", "assistant"}, {"content", text}};
  else j["response"] = text;
  j["done"] = true;
  j["done_reason"] = o.finish_reason == FinishReason::Length ? "length" : o.finish_reason == FinishReason::Stop ? "stop" : "abort";
  j["total_duration"] = ns(Clock::now() - c.start);
  j["load_duration"] = 0;
  j["prompt_eval_count"] = o.prompt_tokens;
  j["prompt_eval_duration"] = static_cast<int64_t>(o.prompt_seconds * 1e9);
  j["eval_count"] = o.completion_tokens;
  j["eval_duration"] = static_cast<int64_t>(o.decode_seconds * 1e9);
  return j;
}

void handle(ServerState& st, const httplib::Request& hreq, httplib::Response& res, bool chat) {
  if (auto e = st.check_serving()) return send_ollama_error(res, *e);
  ApiError err;
  auto body = parse_body(hreq, err);
  if (!body) return send_ollama_error(res, err);
  if (!body->is_object()) return send_ollama_error(res, bad_request("the request body must be a JSON object"));
  const ModelRunner& runner = st.engine->runner();
  auto call = std::make_shared<Call>();
  call->chat = chat;
  if (auto e = read_string(*body, "model", call->model)) return send_ollama_error(res, *e);
  if (call->model.empty()) return send_ollama_error(res, bad_request("'model' is required", "model"));
  if (!st.model_matches(call->model))
    return send_ollama_error(res, ApiError{404, "model '" + call->model + "' not found", "invalid_request_error", "", "", 0});
  bool stream = true;
  if (auto e = read_bool(*body, "stream", stream)) return send_ollama_error(res, *e);
  SamplingParams sp;
  int32_t num_ctx = 0;
  if (auto e = read_options(*body, sp, num_ctx)) return send_ollama_error(res, *e);
  if (auto st2 = sp.validate(); !st2.ok()) return send_ollama_error(res, bad_request(st2.message()));

  std::vector<int32_t> prompt;
  if (chat) {
    if (!body->contains("messages")) return send_ollama_error(res, bad_request("'messages' is required", "messages"));
    auto tools = body->value("tools", nlohmann::ordered_json(nullptr));
    if (auto e = chat_prompt_tokens(runner, (*body)["messages"], tools, prompt)) return send_ollama_error(res, *e);
  } else {
    std::string text, system;
    bool raw = false;
    if (auto e = read_string(*body, "prompt", text)) return send_ollama_error(res, *e);
    if (auto e = read_string(*body, "system", system)) return send_ollama_error(res, *e);
    if (auto e = read_bool(*body, "raw", raw)) return send_ollama_error(res, *e);
    if (text.empty()) {  // Ollama: an empty prompt just loads the model
      json j = base(*call);
      j["response"] = "";
      j["done"] = true;
      j["done_reason"] = "load";
      return send_json(res, j);
    }
    if (raw) {
      prompt = text_prompt_tokens(runner, text);
    } else {
      auto msgs = nlohmann::ordered_json::array();
      if (!system.empty()) msgs.push_back({{"role", "system"}, {"content", system}});
      msgs.push_back({{"role", "user"}, {"content", text}});
      if (auto e = chat_prompt_tokens(runner, msgs, nullptr, prompt)) return send_ollama_error(res, *e);
    }
  }
  if (auto e = check_context(runner, prompt.size(), sp.max_tokens)) return send_ollama_error(res, *e);
  if (sp.max_tokens == 0) sp.max_tokens = 1;
  // num_ctx narrows this request's window inside the server's context (it cannot widen it:
  // the KV cache is sized by --ctx-size at start, unlike Ollama, which reloads the model).
  if (num_ctx > 0 && num_ctx < runner.ctx_size()) {
    if (prompt.size() >= static_cast<size_t>(num_ctx))
      return send_ollama_error(res, bad_request("the prompt is " + std::to_string(prompt.size()) +
                                                " tokens, more than options.num_ctx (" + std::to_string(num_ctx) + ")",
                                                "options"));
    const int32_t room = num_ctx - static_cast<int32_t>(prompt.size());
    if (sp.max_tokens < 0 || sp.max_tokens > room) sp.max_tokens = room;
  }
  auto started = Session::start(st, GenJob{prompt, sp, 1});
  if (auto* e = std::get_if<ApiError>(&started)) return send_ollama_error(res, *e);
  call->session = std::move(std::get<std::unique_ptr<Session>>(started));
  call->prompt_tokens = static_cast<int>(prompt.size());

  if (!stream) {
    RequestOutput last;
    while (!call->session->done()) {
      auto co = call->session->next(kPoll);
      if (!co) continue;
      call->text += co->out.text;
      last = co->out;
    }
    return send_json(res, final_json(*call, last, call->text));
  }
  res.set_chunked_content_provider(
      "application/x-ndjson",
      [call](size_t, httplib::DataSink& sink) {
        if (call->finished) {
          sink.done();
          return true;
        }
        auto co = call->session->next(kPoll);
        if (!co) return sink.is_writable();
        std::string line;
        if (!co->out.text.empty() && !co->out.finished) line = dump_json(piece_json(*call, co->out.text)) + "\n";
        if (co->out.finished) {
          if (!co->out.text.empty()) line += dump_json(piece_json(*call, co->out.text)) + "\n";
          line += dump_json(final_json(*call, co->out, "")) + "\n";
          call->finished = true;
        }
        if (!line.empty() && !sink.write(line.data(), line.size())) return false;
        return true;
      },
      [call](bool) { call->session.reset(); });
}

json details(const ModelEntry& m) {
  return {{"parent_model", ""}, {"format", "gguf"}, {"family", m.family}, {"families", json::array({m.family})},
          {"parameter_size", m.parameter_size}, {"quantization_level", m.quantization}};
}

}  // namespace

void register_ollama_routes(httplib::Server& http, ServerState& st) {
  http.Post("/api/generate", [&st](const httplib::Request& q, httplib::Response& r) { handle(st, q, r, false); });
  http.Post("/api/chat", [&st](const httplib::Request& q, httplib::Response& r) { handle(st, q, r, true); });
  http.Get("/api/version", [](const httplib::Request&, httplib::Response& r) { send_json(r, {{"version", kOllamaVersion}}); });
  http.Get("/api/tags", [&st](const httplib::Request&, httplib::Response& r) {
    json models = json::array();
    if (st.ready) {
      const ModelEntry& m = st.model;
      models.push_back({{"name", m.id + ":latest"}, {"model", m.id + ":latest"}, {"modified_at", rfc3339_now()},
                        {"size", m.size_bytes}, {"digest", m.digest}, {"details", details(m)}});
    }
    send_json(r, {{"models", models}});
  });
  http.Get("/api/ps", [&st](const httplib::Request&, httplib::Response& r) {
    json models = json::array();
    if (st.ready) {
      const ModelEntry& m = st.model;
      models.push_back({{"name", m.id + ":latest"}, {"model", m.id + ":latest"}, {"size", m.size_bytes},
                        {"digest", m.digest}, {"details", details(m)}, {"expires_at", "2318-01-01T00:00:00Z"},
                        {"size_vram", 0}, {"context_length", st.engine->runner().ctx_size()}});
    }
    send_json(r, {{"models", models}});
  });
  http.Post("/api/show", [&st](const httplib::Request& q, httplib::Response& r) {
    ApiError err;
    auto body = parse_body(q, err);
    if (!body) return send_ollama_error(r, err);
    std::string name;
    if (body->is_object()) {
      if (auto e = read_string(*body, "model", name)) return send_ollama_error(r, *e);
      if (name.empty())
        if (auto e = read_string(*body, "name", name)) return send_ollama_error(r, *e);
    }
    if (name.empty()) return send_ollama_error(r, bad_request("'model' is required", "model"));
    if (!st.ready || !st.model_matches(name))
      return send_ollama_error(r, ApiError{404, "model '" + name + "' not found", "invalid_request_error", "", "", 0});
    const ModelEntry& m = st.model;
    send_json(r, {{"modelfile", "FROM " + m.path + "\n"}, {"parameters", ""}, {"template", m.chat_template},
                  {"details", details(m)}, {"model_info", m.model_info}, {"capabilities", json::array({"completion"})},
                  {"modified_at", rfc3339_now()}});
  });
}

}  // namespace velo::server
