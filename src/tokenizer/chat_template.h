// Chat templates: a sandboxed Jinja interpreter for the subset model templates
// use, byte-identical to Python jinja2 on those templates.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/result.h"

namespace velo {

namespace gguf { class File; }
class Tokenizer;

struct TemplateLimits {
  uint64_t max_steps = 10'000'000;        // interpreter steps
  uint32_t max_depth = 64;                // recursion (macros, includes of blocks, nesting)
  uint64_t max_output_bytes = 16 << 20;   // rendered size
  uint64_t max_source_bytes = 1 << 20;    // template text
  uint32_t max_expr_depth = 256;          // nesting of one expression
  uint32_t max_context_depth = 256;       // nesting of the JSON context
};

// Render `source` with `context` (messages, add_generation_prompt, bos_token, eos_token,
// tools, ...). Unsupported syntax, runtime errors and exceeded limits are errors.
Result<std::string> render_template(std::string_view source, const nlohmann::json& context,
                                    const TemplateLimits& limits = {});
// Same, keeping the context's object key order (as Python dicts do, which tojson shows).
Result<std::string> render_template(std::string_view source, const nlohmann::ordered_json& context,
                                    const TemplateLimits& limits = {});

// A model's chat template: its own `tokenizer.chat_template`, or a built-in fallback
// (ChatML, Llama 3, Gemma) chosen from the architecture/vocabulary when it has none.
struct ChatTemplate {
  std::string source;
  std::string bos_token;
  std::string eos_token;
  bool builtin = false;  // true when a fallback was chosen
  std::string name;      // "model", "chatml", "llama3", "gemma"

  // The model's template, or a fallback picked from general.architecture and the
  // special tokens in the vocabulary; bos/eos text comes from the tokenizer.
  static Result<ChatTemplate> from_gguf(const gguf::File& file, const Tokenizer& tok);
  // A built-in template by name ("chatml", "llama3", "gemma").
  static Result<ChatTemplate> builtin_named(std::string_view name, std::string bos, std::string eos);
  // Checks that `source` parses (syntax errors are reported with their line).
  Status validate() const;

  // messages: [{role, content, ...}], tools: array or null. The context is
  // {messages, tools (null when absent, as HF passes it), add_generation_prompt,
  // bos_token, eos_token} plus the entries of `extra`.
  Result<std::string> apply(const nlohmann::json& messages, bool add_generation_prompt,
                            const nlohmann::json& tools = nullptr,
                            const nlohmann::json& extra = nlohmann::json::object()) const;
  Result<std::string> apply(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                            const nlohmann::ordered_json& tools,
                            const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) const;
  TemplateLimits limits;
};

}  // namespace velo
