// Chat templates: a sandboxed Jinja interpreter for the subset model templates
// use, byte-identical to Python jinja2 on those templates.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/result.h"

namespace velo {

struct TemplateLimits {
  uint64_t max_steps = 10'000'000;        // interpreter steps
  uint32_t max_depth = 64;                // recursion (macros, includes of blocks, nesting)
  uint64_t max_output_bytes = 16 << 20;   // rendered size
};

// Render `source` with `context` (messages, add_generation_prompt, bos_token, eos_token,
// tools, ...). Unsupported syntax, runtime errors and exceeded limits are errors.
Result<std::string> render_template(std::string_view source, const nlohmann::json& context,
                                    const TemplateLimits& limits = {});

// A model's chat template: its own `tokenizer.chat_template`, or a built-in fallback
// (ChatML, Llama 3, Gemma) chosen from the architecture/vocabulary when it has none.
struct ChatTemplate {
  std::string source;
  std::string bos_token;
  std::string eos_token;
  bool builtin = false;  // true when a fallback was chosen
  std::string name;      // "model", "chatml", "llama3", "gemma"

  // messages: [{role, content, ...}], tools: array or null.
  Result<std::string> apply(const nlohmann::json& messages, bool add_generation_prompt,
                            const nlohmann::json& tools = nullptr,
                            const nlohmann::json& extra = nlohmann::json::object()) const;
};

}  // namespace velo
