#include "server/prompt.h"

namespace velo::server {

using json = nlohmann::ordered_json;

std::optional<ApiError> normalize_messages(const json& in, json& out) {
  if (!in.is_array() || in.empty()) return bad_request("'messages' must be a non-empty array", "messages");
  out = json::array();
  for (size_t i = 0; i < in.size(); ++i) {
    const json& m = in[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return bad_request(where + " must be an object", "messages");
    if (!m.contains("role") || !m["role"].is_string())
      return bad_request(where + ".role must be a string", "messages");
    json msg = m;
    const json content = m.value("content", json(nullptr));
    if (content.is_array()) {  // OpenAI content parts: keep the text ones
      std::string text;
      for (const auto& part : content) {
        if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") ||
            !part["text"].is_string())
          return bad_request(where + ".content: only text parts are supported", "messages");
        text += part["text"].get<std::string>();
      }
      msg["content"] = text;
    } else if (content.is_null()) {
      msg["content"] = "";
    } else if (!content.is_string()) {
      return bad_request(where + ".content must be a string or an array of text parts", "messages");
    }
    if (m.contains("tool_calls") && m["tool_calls"].is_array()) {
      for (auto& call : msg["tool_calls"]) {
        if (!call.is_object() || !call.contains("function") || !call["function"].is_object()) continue;
        auto& fn = call["function"];
        // Templates index into arguments; OpenAI sends them as a JSON string.
        if (fn.contains("arguments") && fn["arguments"].is_string()) {
          json parsed = json::parse(fn["arguments"].get<std::string>(), nullptr, false);
          if (!parsed.is_discarded()) fn["arguments"] = parsed;
        }
      }
    }
    out.push_back(std::move(msg));
  }
  return std::nullopt;
}

std::vector<int32_t> text_prompt_tokens(const ModelRunner& runner, const std::string& text) {
  const Tokenizer& tok = runner.tokenizer();
  // Templates usually write the BOS text themselves; do not add a second one.
  bool has_bos_text = false;
  if (tok.bos() >= 0) {
    std::string_view bos = tok.token_text(tok.bos());
    has_bos_text = !bos.empty() && text.compare(0, bos.size(), bos) == 0;
  }
  return tok.encode(text, tok.adds_bos() && !has_bos_text, SpecialTokens::Parse);
}

std::optional<ApiError> chat_prompt_tokens(const ModelRunner& runner, const json& messages, const json& tools,
                                           std::vector<int32_t>& tokens) {
  json norm;
  if (auto err = normalize_messages(messages, norm)) return err;
  auto text = runner.chat_template().apply(norm, true, tools.is_array() ? tools : json(nullptr));
  if (!text.ok()) return bad_request("chat template failed: " + text.message(), "messages");
  tokens = text_prompt_tokens(runner, *text);
  return std::nullopt;
}

std::optional<ApiError> check_context(const ModelRunner& runner, size_t prompt_tokens, int32_t max_tokens) {
  const size_t ctx = static_cast<size_t>(runner.ctx_size());
  const size_t want = prompt_tokens + (max_tokens > 0 ? static_cast<size_t>(max_tokens) : 0);
  if (prompt_tokens == 0) return bad_request("the prompt is empty", "prompt");
  if (prompt_tokens >= ctx || want > ctx) {
    std::string msg = "This model's maximum context length is " + std::to_string(ctx) + " tokens. However, you requested " +
                      std::to_string(want) + " tokens (" + std::to_string(prompt_tokens) + " in the prompt";
    msg += max_tokens > 0 ? ", " + std::to_string(max_tokens) + " in the completion)." : ").";
    msg += " Please reduce the length of the prompt or completion.";
    return bad_request(msg, "messages", "context_length_exceeded");
  }
  return std::nullopt;
}

}  // namespace velo::server
