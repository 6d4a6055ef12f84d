// tool_render_template: renders chat templates for the jinja2 oracle test.
// Input (file argument or stdin): a JSON array of {"template": str, "context": {...}}.
// Output (stdout): a JSON array of {"ok": true, "output": str} or {"ok": false, "error": str}.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/chat_template.h"

int main(int argc, char** argv) {
  using nlohmann::ordered_json;
  std::string text;
  if (argc > 1) {
    std::ifstream f(argv[1], std::ios::binary);
    if (!f) {
      std::fprintf(stderr, "tool_render_template: cannot open %s\n", argv[1]);
      return 1;
    }
    text.assign(std::istreambuf_iterator<char>(f), {});
  } else {
    text.assign(std::istreambuf_iterator<char>(std::cin), {});
  }
  ordered_json cases = ordered_json::parse(text, nullptr, false);
  if (cases.is_discarded() || !cases.is_array()) {
    std::fprintf(stderr, "tool_render_template: input must be a JSON array of {template, context}\n");
    return 1;
  }
  ordered_json results = ordered_json::array();
  for (const auto& c : cases) {
    if (!c.is_object() || !c.contains("template") || !c["template"].is_string() || !c.contains("context")) {
      results.push_back({{"ok", false}, {"error", "case needs a string template and a context"}});
      continue;
    }
    auto r = velo::render_template(c["template"].get<std::string>(), c["context"]);
    if (r.ok()) results.push_back({{"ok", true}, {"output", *r}});
    else results.push_back({{"ok", false}, {"error", r.message()}});
  }
  std::string out = results.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fputc('\n', stdout);
  return 0;
}
