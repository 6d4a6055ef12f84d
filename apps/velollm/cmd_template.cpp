// `velollm template`: render a model's chat template for a conversation and
// print the exact prompt text the model would see.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "command.h"
#include "gguf/gguf.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace {

using nlohmann::ordered_json;

struct Options {
  std::string model;
  std::string messages_file;
  std::string tools_file;
  std::string template_file;
  std::string builtin;
  std::string bos, eos;
  bool no_generation_prompt = false;
  bool show_template = false;
  bool show_tokens = false;
};

velo::Result<ordered_json> read_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return velo::make_error("cannot open " + path);
  std::string text((std::istreambuf_iterator<char>(f)), {});
  ordered_json j = ordered_json::parse(text, nullptr, false);
  if (j.is_discarded()) return velo::make_error(path + " is not valid JSON");
  return j;
}

velo::Result<velo::ChatTemplate> load_template(const Options& o) {
  if (!o.builtin.empty()) return velo::ChatTemplate::builtin_named(o.builtin, o.bos, o.eos);
  if (!o.template_file.empty()) {
    std::ifstream f(o.template_file, std::ios::binary);
    if (!f) return velo::make_error("cannot open " + o.template_file);
    velo::ChatTemplate t;
    t.source.assign(std::istreambuf_iterator<char>(f), {});
    t.name = "file";
    t.bos_token = o.bos;
    t.eos_token = o.eos;
    VELO_TRY(t.validate());
    return t;
  }
  std::string path = o.model.empty() ? velo::cli::default_model_path() : o.model;
  if (path.empty()) return velo::make_error("no model given (-m) and the default model is not installed");
  VELO_ASSIGN_OR_RETURN(auto file, velo::gguf::File::open(path));
  VELO_ASSIGN_OR_RETURN(auto tok, velo::Tokenizer::from_gguf(*file));
  return velo::ChatTemplate::from_gguf(*file, *tok);
}

int run(const Options& o) {
  auto t = load_template(o);
  if (!t.ok()) return velo::cli::fail(t.message());
  if (o.show_template) {
    std::fwrite(t->source.data(), 1, t->source.size(), stdout);
    return 0;
  }
  if (o.show_tokens) {
    ordered_json info = {{"name", t->name}, {"builtin", t->builtin}, {"bos_token", t->bos_token},
                         {"eos_token", t->eos_token}};
    std::printf("%s\n", info.dump().c_str());
    return 0;
  }
  if (o.messages_file.empty()) return velo::cli::fail("--messages FILE.json is required");
  auto m = read_json(o.messages_file);
  if (!m.ok()) return velo::cli::fail(m.message());
  ordered_json messages, tools = nullptr;
  if (m->is_array()) {
    messages = *m;
  } else if (m->is_object() && m->contains("messages")) {
    messages = (*m)["messages"];
    if (m->contains("tools")) tools = (*m)["tools"];
  } else {
    return velo::cli::fail(o.messages_file + ": expected a JSON array of messages or {\"messages\": [...]}");
  }
  if (!o.tools_file.empty()) {
    auto tj = read_json(o.tools_file);
    if (!tj.ok()) return velo::cli::fail(tj.message());
    tools = *tj;
  }
  auto r = t->apply(messages, !o.no_generation_prompt, tools);
  if (!r.ok()) return velo::cli::fail(r.message());
  std::fwrite(r->data(), 1, r->size(), stdout);
  return 0;
}

const bool registered = velo::cli::register_command(
    {"template", "Render a model's chat template for a conversation (prints the prompt)", 40,
     [](CLI::App& sub) -> std::function<int()> {
       auto o = std::make_shared<Options>();
       sub.add_option("-m,--model", o->model, "GGUF model (default: the installed SmolLM2)");
       sub.add_option("--messages", o->messages_file,
                      "JSON file: an array of messages, or {\"messages\": [...], \"tools\": [...]}");
       sub.add_option("--tools", o->tools_file, "JSON file with an array of tool definitions");
       sub.add_flag("--no-generation-prompt", o->no_generation_prompt,
                    "do not open an assistant turn at the end");
       sub.add_option("--template", o->template_file, "use this Jinja template file instead of the model's");
       sub.add_option("--builtin", o->builtin, "use a built-in template: chatml, llama3 or gemma");
       sub.add_option("--bos", o->bos, "bos_token text for --template/--builtin");
       sub.add_option("--eos", o->eos, "eos_token text for --template/--builtin");
       sub.add_flag("--show-template", o->show_template, "print the template source and exit");
       sub.add_flag("--show-tokens", o->show_tokens, "print {name, builtin, bos_token, eos_token} as JSON and exit");
       return [o] { return run(*o); };
     }});

}  // namespace
