// From API messages/prompts to prompt tokens: normalise OpenAI/Ollama message
// shapes, render the model's chat template, tokenize, check the context.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/model_runner.h"
#include "server/api_error.h"

namespace velo::server {

// Messages as chat templates expect them: string content (text parts joined),
// tool_call arguments as objects. Errors name the offending message. Ordered
// JSON keeps the client's key order, so `tojson` in templates renders tools
// and arguments byte for byte as HF transformers does.
std::optional<ApiError> normalize_messages(const nlohmann::ordered_json& in, nlohmann::ordered_json& out);

// Render with the model's template (generation prompt added) and tokenize.
std::optional<ApiError> chat_prompt_tokens(const ModelRunner& runner, const nlohmann::ordered_json& messages,
                                           const nlohmann::ordered_json& tools, std::vector<int32_t>& tokens);

// Tokenize raw text with the model's BOS rule (special-token strings are parsed).
std::vector<int32_t> text_prompt_tokens(const ModelRunner& runner, const std::string& text);

// 400 context_length_exceeded when the prompt (plus max_tokens when given) does not fit.
std::optional<ApiError> check_context(const ModelRunner& runner, size_t prompt_tokens, int32_t max_tokens);

}  // namespace velo::server
