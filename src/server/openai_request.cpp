#include "server/openai_request.h"

namespace velo::server {

using json = nlohmann::ordered_json;

static MaybeError read_prompt(const json& body, int32_t n_vocab, OpenAIRequest& out) {
  if (!body.contains("prompt")) return bad_request("'prompt' is required", "prompt");
  const json& p = body["prompt"];
  auto read_ids = [&](const json& arr) -> MaybeError {
    for (const auto& t : arr) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= n_vocab)
        return bad_request("'prompt' token ids must be integers in [0, " + std::to_string(n_vocab) + ")", "prompt");
      out.prompt_ids.push_back(t.get<int32_t>());
    }
    out.prompt_is_ids = true;
    return std::nullopt;
  };
  if (p.is_string()) {
    out.prompt_text = p.get<std::string>();
  } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
    out.prompt_text = p[0].get<std::string>();
  } else if (p.is_array() && !p.empty() && p[0].is_number()) {
    return read_ids(p);
  } else if (p.is_array() && p.size() == 1 && p[0].is_array()) {
    return read_ids(p[0]);
  } else {
    return bad_request("'prompt' must be a string, a one-element array of strings, or an array of token ids "
                       "(batches of several prompts are not supported: send one request per prompt)", "prompt");
  }
  return std::nullopt;
}

static MaybeError read_logit_bias(const json& body, int32_t n_vocab, SamplingParams& sp) {
  if (!body.contains("logit_bias") || body["logit_bias"].is_null()) return std::nullopt;
  const json& lb = body["logit_bias"];
  if (!lb.is_object()) return bad_request("'logit_bias' must be an object of token id -> bias", "logit_bias");
  for (const auto& [key, val] : lb.items()) {
    char* end = nullptr;
    long id = std::strtol(key.c_str(), &end, 10);
    if (key.empty() || *end != '\0' || id < 0 || id >= n_vocab)
      return bad_request("'logit_bias' key '" + key + "' is not a token id in [0, " + std::to_string(n_vocab) + ")",
                         "logit_bias");
    if (!val.is_number() || val.get<double>() < -100 || val.get<double>() > 100)
      return bad_request("'logit_bias' values must be numbers between -100 and 100", "logit_bias");
    sp.logit_bias[static_cast<int32_t>(id)] = val.get<float>();
  }
  return std::nullopt;
}

MaybeError parse_openai_request(const json& body, bool chat, int max_n, int32_t n_vocab, OpenAIRequest& out) {
  if (!body.is_object()) return bad_request("the request body must be a JSON object");
  out.chat = chat;
  SamplingParams& sp = out.params;
  sp.temperature = 1.0f;  // OpenAI defaults
  sp.top_p = 1.0f;
  sp.top_k = 0;
  sp.min_p = 0.0f;
  sp.repeat_penalty = 1.0f;

  if (auto e = read_string(body, "model", out.model)) return e;
  if (chat) {
    if (!body.contains("messages")) return bad_request("'messages' is required", "messages");
    out.messages = body["messages"];
    if (body.contains("tools") && !body["tools"].is_null()) {
      if (!body["tools"].is_array()) return bad_request("'tools' must be an array", "tools");
      out.tools = body["tools"];
    }
  } else if (auto e = read_prompt(body, n_vocab, out)) {
    return e;
  }
  if (auto e = read_number(body, "temperature", 0, 2, sp.temperature)) return e;
  if (auto e = read_number(body, "top_p", 0, 1, sp.top_p)) return e;
  if (body.contains("top_p") && sp.top_p <= 0) return bad_request("'top_p' must be greater than 0", "top_p");
  // Extensions vLLM and llama.cpp accept as well.
  if (auto e = read_int(body, "top_k", -1, 1 << 30, sp.top_k)) return e;
  if (sp.top_k < 0) sp.top_k = 0;
  if (auto e = read_number(body, "min_p", 0, 1, sp.min_p)) return e;
  if (auto e = read_number(body, "repetition_penalty", 0.01, 10, sp.repeat_penalty)) return e;
  if (auto e = read_number(body, "presence_penalty", -2, 2, sp.presence_penalty)) return e;
  if (auto e = read_number(body, "frequency_penalty", -2, 2, sp.frequency_penalty)) return e;
  if (auto e = read_seed(body, "seed", sp.seed)) return e;
  if (auto e = read_int(body, "max_tokens", 1, 1 << 30, sp.max_tokens)) return e;
  if (auto e = read_int(body, "max_completion_tokens", 1, 1 << 30, sp.max_tokens)) return e;
  if (auto e = read_stop(body, "stop", 16, sp.stop)) return e;
  if (auto e = read_logit_bias(body, n_vocab, sp)) return e;
  int32_t n = 1;
  if (auto e = read_int(body, "n", 1, max_n, n)) return e;
  out.n = n;
  if (auto e = read_bool(body, "stream", out.stream)) return e;
  if (body.contains("stream_options") && body["stream_options"].is_object())
    if (auto e = read_bool(body["stream_options"], "include_usage", out.include_usage)) return e;
  if (auto e = read_bool(body, "echo", out.echo)) return e;
  if (auto e = read_bool(body, "ignore_eos", sp.ignore_eos)) return e;  // extension (vLLM, llama.cpp), for benchmarks

  // Log-probabilities: chat uses logprobs (bool) + top_logprobs; completions uses logprobs (int).
  if (chat) {
    if (auto e = read_bool(body, "logprobs", sp.logprobs)) return e;
    if (auto e = read_int(body, "top_logprobs", 0, 20, sp.top_logprobs)) return e;
    if (sp.top_logprobs > 0 && !sp.logprobs)
      return bad_request("'top_logprobs' requires 'logprobs' to be true", "top_logprobs");
  } else if (body.contains("logprobs") && !body["logprobs"].is_null()) {
    int32_t k = 0;
    if (auto e = read_int(body, "logprobs", 0, 5, k)) return e;
    sp.logprobs = true;
    sp.top_logprobs = k;
  }
  if (auto st = sp.validate(); !st.ok()) return bad_request(st.message());
  return std::nullopt;
}

}  // namespace velo::server
