// OpenAI-compatible endpoints: /v1/chat/completions, /v1/completions, /v1/models.
#include <memory>

#include "server/json_util.h"
#include "server/openai_request.h"
#include "server/prompt.h"
#include "server/routes.h"
#include "server/session.h"

namespace velo::server {
namespace {

using nlohmann::json;
constexpr auto kPoll = std::chrono::milliseconds(100);
const char* kFingerprint = "velollm";

json token_bytes(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

// Chat-shaped logprobs entries for new tokens.
json chat_logprobs(const Tokenizer& tok, const std::vector<TokenLogprob>& lps) {
  json content = json::array();
  for (const auto& lp : lps) {
    std::string piece = tok.token_to_piece(lp.token, true);
    json top = json::array();
    for (const auto& [t, l] : lp.top) {
      std::string p = tok.token_to_piece(t, true);
      top.push_back({{"token", p}, {"logprob", l}, {"bytes", token_bytes(p)}});
    }
    content.push_back({{"token", piece}, {"logprob", lp.logprob}, {"bytes", token_bytes(piece)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

// Completions-shaped (legacy) logprobs for new tokens; `offset` is the text offset so far.
json completion_logprobs(const Tokenizer& tok, const std::vector<TokenLogprob>& lps, size_t& offset) {
  json tokens = json::array(), token_lps = json::array(), tops = json::array(), offsets = json::array();
  for (const auto& lp : lps) {
    std::string piece = tok.token_to_piece(lp.token, true);
    tokens.push_back(piece);
    token_lps.push_back(lp.logprob);
    json top = json::object();
    for (const auto& [t, l] : lp.top) top[tok.token_to_piece(t, true)] = l;
    tops.push_back(top);
    offsets.push_back(offset);
    offset += piece.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json usage_json(int prompt, int completion, int cached) {
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

// Everything a streaming or blocking response needs beyond the session.
struct Call {
  OpenAIRequest req;
  std::string id;
  int64_t created = 0;
  std::string model;
  int prompt_tokens = 0;
  std::string echo_prefix;  // completions with echo
  std::unique_ptr<Session> session;
  // per choice
  std::vector<std::string> text;
  std::vector<json> logprobs;  // accumulated (blocking) responses
  std::vector<size_t> text_offset;
  std::vector<bool> sent_role;
  std::vector<int> completion_tokens;
  int cached_tokens = 0;
  bool finished_stream = false;
};

json chunk_base(const Call& c) {
  return {{"id", c.id}, {"object", c.req.chat ? "chat.completion.chunk" : "text_completion"}, {"created", c.created},
          {"model", c.model}, {"system_fingerprint", kFingerprint}};
}

std::string sse(const json& j) { return "data: " + dump_json(j) + "\n\n"; }

// SSE chunks for one engine output.
std::string stream_chunks(Call& c, const Tokenizer& tok, const ChoiceOutput& co) {
  const RequestOutput& o = co.out;
  const int i = co.choice;
  c.completion_tokens[i] = o.completion_tokens;
  c.cached_tokens = std::max(c.cached_tokens, o.cached_tokens);
  std::string out;
  json choice = {{"index", i}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
  if (c.req.params.logprobs && !o.logprobs.empty())
    choice["logprobs"] = c.req.chat ? chat_logprobs(tok, o.logprobs) : completion_logprobs(tok, o.logprobs, c.text_offset[i]);
  bool has_content = !o.text.empty() || !choice["logprobs"].is_null();
  if (c.req.chat) {
    json delta = json::object();
    if (!c.sent_role[i]) {  // OpenAI's first chunk carries the role alone
      c.sent_role[i] = true;
      json ch = chunk_base(c);
      json first = {{"index", i}, {"logprobs", nullptr}, {"finish_reason", nullptr},
                    {"delta", {{"role", "assistant"}, {"content", ""}}}};
      ch["choices"] = json::array({first});
      if (c.req.include_usage) ch["usage"] = nullptr;
      out += sse(ch);
    }
    if (has_content) {
      delta["content"] = o.text;
      json ch = chunk_base(c);
      choice["delta"] = delta;
      ch["choices"] = json::array({choice});
      if (c.req.include_usage) ch["usage"] = nullptr;
      out += sse(ch);
    }
  } else if (has_content) {
    json ch = chunk_base(c);
    choice["text"] = o.text;
    ch["choices"] = json::array({choice});
    if (c.req.include_usage) ch["usage"] = nullptr;
    out += sse(ch);
  }
  if (o.finished) {
    json ch = chunk_base(c);
    json fin = {{"index", i}, {"logprobs", nullptr}, {"finish_reason", finish_reason_name(o.finish_reason)}};
    if (c.req.chat) fin["delta"] = json::object();
    else fin["text"] = "";
    ch["choices"] = json::array({fin});
    if (c.req.include_usage) ch["usage"] = nullptr;
    out += sse(ch);
  }
  return out;
}

std::string stream_tail(Call& c) {
  std::string out;
  if (c.req.include_usage) {
    json ch = chunk_base(c);
    ch["choices"] = json::array();
    int completion = 0;
    for (int t : c.completion_tokens) completion += t;
    ch["usage"] = usage_json(c.prompt_tokens, completion, c.cached_tokens);
    out += sse(ch);
  }
  return out + "data: [DONE]\n\n";
}

json blocking_response(Call& c, const Tokenizer& tok) {
  std::vector<std::string> finish(c.session->n(), "stop");
  std::vector<json> lps(c.session->n(), json(nullptr));
  while (!c.session->done()) {
    auto co = c.session->next(kPoll);
    if (!co) continue;
    const RequestOutput& o = co->out;
    int i = co->choice;
    c.text[i] += o.text;
    c.completion_tokens[i] = o.completion_tokens;
    c.cached_tokens = std::max(c.cached_tokens, o.cached_tokens);
    if (c.req.params.logprobs && !o.logprobs.empty()) {
      json add = c.req.chat ? chat_logprobs(tok, o.logprobs) : completion_logprobs(tok, o.logprobs, c.text_offset[i]);
      if (lps[i].is_null()) lps[i] = add;
      else for (auto& [k, v] : add.items()) for (auto& e : v) lps[i][k].push_back(e);
    }
    if (o.finished) finish[i] = finish_reason_name(o.finish_reason);
  }
  json choices = json::array();
  int completion = 0;
  for (int i = 0; i < c.session->n(); ++i) {
    completion += c.completion_tokens[i];
    json ch = {{"index", i}, {"finish_reason", finish[i]}, {"logprobs", c.req.params.logprobs ? lps[i] : json(nullptr)}};
    if (c.req.params.logprobs && lps[i].is_null())
      ch["logprobs"] = c.req.chat ? json{{"content", json::array()}} : json(nullptr);
    if (c.req.chat) ch["message"] = {{"role", "assistant"}, {"content", c.text[i]}, {"refusal", nullptr}};
    else ch["text"] = c.echo_prefix + c.text[i];
    choices.push_back(ch);
  }
  return {{"id", c.id}, {"object", c.req.chat ? "chat.completion" : "text_completion"}, {"created", c.created},
          {"model", c.model}, {"system_fingerprint", kFingerprint}, {"choices", choices},
          {"usage", usage_json(c.prompt_tokens, completion, c.cached_tokens)}};
}

void handle_generation(ServerState& st, const httplib::Request& hreq, httplib::Response& res, bool chat) {
  if (auto e = st.check_serving()) return send_openai_error(res, *e);
  ApiError err;
  auto body = parse_body(hreq, err);
  if (!body) return send_openai_error(res, err);
  const ModelRunner& runner = st.engine->runner();
  auto call = std::make_shared<Call>();
  if (auto e = parse_openai_request(*body, chat, st.opts.max_n, runner.n_vocab(), call->req))
    return send_openai_error(res, *e);
  if (!call->req.model.empty() && !st.model_matches(call->req.model))
    return send_openai_error(res, ApiError{404, "The model '" + call->req.model + "' does not exist; this server serves '" +
                                                    st.model.id + "'", "invalid_request_error", "model_not_found", "model", 0});
  std::vector<int32_t> prompt;
  if (chat) {
    if (auto e = chat_prompt_tokens(runner, call->req.messages, call->req.tools, prompt)) return send_openai_error(res, *e);
  } else if (call->req.prompt_is_ids) {
    prompt = call->req.prompt_ids;
  } else {
    prompt = text_prompt_tokens(runner, call->req.prompt_text);
    if (call->req.echo) call->echo_prefix = call->req.prompt_text;
  }
  if (auto e = check_context(runner, prompt.size(), call->req.params.max_tokens)) return send_openai_error(res, *e);

  auto started = Session::start(st, GenJob{prompt, call->req.params, call->req.n});
  if (auto* e = std::get_if<ApiError>(&started)) return send_openai_error(res, *e);
  Call& c = *call;
  c.session = std::move(std::get<std::unique_ptr<Session>>(started));
  c.id = random_id(chat ? "chatcmpl-" : "cmpl-");
  c.created = unix_seconds();
  c.model = st.model.id;
  c.prompt_tokens = static_cast<int>(prompt.size());
  c.text.assign(c.req.n, "");
  c.text_offset.assign(c.req.n, 0);
  c.sent_role.assign(c.req.n, false);
  c.completion_tokens.assign(c.req.n, 0);

  if (!c.req.stream) return send_json(res, blocking_response(c, runner.tokenizer()));

  const Tokenizer* tok = &runner.tokenizer();
  if (!chat && !c.echo_prefix.empty()) {
    // echo: the prompt text goes out first as its own chunk.
    json ch = chunk_base(c);
    ch["choices"] = json::array();
    for (int i = 0; i < c.req.n; ++i)
      ch["choices"].push_back({{"index", i}, {"text", c.echo_prefix}, {"logprobs", nullptr}, {"finish_reason", nullptr}});
    c.echo_prefix = sse(ch);
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [call, tok](size_t, httplib::DataSink& sink) {
        Call& c = *call;
        if (!c.echo_prefix.empty()) {
          std::string e = std::move(c.echo_prefix);
          c.echo_prefix.clear();
          if (!sink.write(e.data(), e.size())) return false;
        }
        if (c.session->done()) {
          std::string tail = stream_tail(c);
          sink.write(tail.data(), tail.size());
          sink.done();
          return true;
        }
        auto co = c.session->next(kPoll);
        if (!co) return sink.is_writable();  // keep waiting unless the client left
        std::string data = stream_chunks(c, *tok, *co);
        if (!data.empty() && !sink.write(data.data(), data.size())) return false;
        return true;
      },
      // Runs when the stream ends for any reason; dropping the session cancels unfinished choices.
      [call](bool) { call->session.reset(); });
}

}  // namespace

void register_openai_routes(httplib::Server& http, ServerState& st) {
  http.Post("/v1/chat/completions", [&st](const httplib::Request& q, httplib::Response& r) { handle_generation(st, q, r, true); });
  http.Post("/v1/completions", [&st](const httplib::Request& q, httplib::Response& r) { handle_generation(st, q, r, false); });
  http.Get("/v1/models", [&st](const httplib::Request&, httplib::Response& r) {
    json data = json::array();
    if (st.ready)
      data.push_back({{"id", st.model.id}, {"object", "model"}, {"created", st.model.created}, {"owned_by", "velollm"},
                      {"max_model_len", st.engine->runner().ctx_size()}});
    send_json(r, {{"object", "list"}, {"data", data}});
  });
  http.Get(R"(/v1/models/(.+))", [&st](const httplib::Request& q, httplib::Response& r) {
    std::string name = q.matches[1];
    if (!st.ready || !st.model_matches(name))
      return send_openai_error(r, ApiError{404, "The model '" + name + "' does not exist", "invalid_request_error",
                                           "model_not_found", "model", 0});
    send_json(r, {{"id", st.model.id}, {"object", "model"}, {"created", st.model.created}, {"owned_by", "velollm"}});
  });
}

}  // namespace velo::server
