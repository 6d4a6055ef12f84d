// Fuzz target: arbitrary template text (and a context derived from the input)
// must render or fail with an error, never crash, hang or run out of memory.
// Input layout: [template bytes] "\x00" [JSON context]; without a NUL the whole
// input is the template and a fixed conversation is the context.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view src = in;
  nlohmann::ordered_json ctx;
  size_t nul = in.find('\0');
  if (nul != std::string_view::npos) {
    src = in.substr(0, nul);
    ctx = nlohmann::ordered_json::parse(in.substr(nul + 1), nullptr, false);
  }
  if (!ctx.is_object()) {
    ctx = {{"messages",
            {{{"role", "system"}, {"content", "sys"}},
             {{"role", "user"}, {"content", "hi ✓"}},
             {{"role", "assistant"},
              {"content", nullptr},
              {"tool_calls", {{{"id", "call12345"}, {"type", "function"},
                               {"function", {{"name", "f"}, {"arguments", {{"a", 1}}}}}}}}},
             {{"role", "tool"}, {"content", "r"}}}},
           {"tools", {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", "object"}}}}}}}},
           {"add_generation_prompt", true},
           {"bos_token", "<s>"},
           {"eos_token", "</s>"}};
  }
  velo::TemplateLimits lim;  // tight budgets keep every input fast
  lim.max_steps = 20000;
  lim.max_depth = 24;
  lim.max_output_bytes = 1 << 16;
  lim.max_source_bytes = 1 << 16;
  lim.max_expr_depth = 64;
  lim.max_context_depth = 32;
  auto r = velo::render_template(src, ctx, lim);
  (void)r;
  return 0;
}
