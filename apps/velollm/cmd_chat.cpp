// `velollm chat [-m MODEL] [--system TEXT] [sampling flags]`: an interactive
// conversation through the model's chat template. Each turn re-renders the
// whole conversation; the Generator keeps the K/V of the previous turns, so
// only the new tokens are computed. Lines starting with / are commands:
// /reset forgets the conversation, /exit (or end of input) quits. Works with
// stdin as a pipe: no prompt is printed then, one reply per input line.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "command.h"
#include "engine/generator.h"
#include "generation_flags.h"

namespace {

using namespace velo;
using json = nlohmann::json;

// Ctrl-C during a reply stops the reply; at the prompt it quits (getline fails).
std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted.store(true); }

struct ChatOptions {
  cli::GenerationFlags gen;
  std::string system;
};

// The rendered conversation as tokens; BOS added only when the template did not write it
// (encode's add_special would also append EOS for models that add one).
Result<std::vector<int32_t>> render(const ModelRunner& r, const json& messages) {
  VELO_ASSIGN_OR_RETURN(std::string text, r.chat_template().apply(messages, true));
  const auto& tok = r.tokenizer();
  std::vector<int32_t> ids = tok.encode(text, false, SpecialTokens::Parse);
  if (tok.adds_bos() && tok.bos() >= 0 && (ids.empty() || ids[0] != tok.bos())) ids.insert(ids.begin(), tok.bos());
  return ids;
}

json fresh_history(const std::string& system) {
  json m = json::array();
  if (!system.empty()) m.push_back({{"role", "system"}, {"content", system}});
  return m;
}

int chat(const ChatOptions& o) {
  auto params = cli::sampling_params(o.gen);
  if (!params.ok()) return cli::fail(params.message());
  auto runner = cli::load_runner(o.gen);
  if (!runner.ok()) return cli::fail(runner.message());
  if (auto st = params->validate((*runner)->n_vocab()); !st.ok()) return cli::fail(st.message());
  Generator gen(**runner);
  const bool interactive = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
  if (interactive) {
    std::fprintf(stderr, "velollm chat: /reset clears the conversation, /exit (or Ctrl-D) quits, Ctrl-C stops a reply\n");
    struct sigaction sa {};
    sa.sa_handler = on_sigint;  // no SA_RESTART: a Ctrl-C at the prompt ends getline
    sigaction(SIGINT, &sa, nullptr);
  }

  json messages = fresh_history(o.system);
  const size_t first_turn = messages.size();
  std::string line;
  for (;;) {
    if (interactive) cli::write_out("> ");
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line == "/exit" || line == "/quit" || line == "/bye") break;
    if (line == "/reset" || line == "/clear") {
      messages = fresh_history(o.system);
      std::fprintf(stderr, "velollm: conversation cleared\n");
      continue;
    }
    if (line[0] == '/') {
      std::fprintf(stderr, "velollm: unknown command %s (use /reset or /exit)\n", line.c_str());
      continue;
    }
    messages.push_back({{"role", "user"}, {"content", line}});

    // Render; when the conversation outgrows the context, drop the oldest turns.
    Result<std::vector<int32_t>> tokens = make_error("");
    for (;;) {
      tokens = render(**runner, messages);
      if (!tokens.ok()) break;
      if (static_cast<int32_t>(tokens->size()) < gen.max_context() || messages.size() <= first_turn + 1) break;
      size_t drop = std::min<size_t>(2, messages.size() - first_turn - 1);
      messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(first_turn),
                     messages.begin() + static_cast<std::ptrdiff_t>(first_turn + drop));
    }
    if (!tokens.ok()) {
      messages.erase(messages.end() - 1);
      std::fprintf(stderr, "velollm: error: chat template: %s\n", tokens.message().c_str());
      continue;
    }
    GenerateOptions go;
    g_interrupted.store(false);
    go.on_text = [](std::string_view s) {
      cli::write_out(s);
      return !g_interrupted.load();
    };
    auto res = gen.generate(std::span<const int32_t>(*tokens), *params, go);
    if (!res.ok()) {
      messages.erase(messages.end() - 1);
      std::fprintf(stderr, "velollm: error: %s\n", res.message().c_str());
      continue;
    }
    cli::write_out("\n");
    messages.push_back({{"role", "assistant"}, {"content", res->text}});
    if (o.gen.verbose) cli::print_timings(res->timings, res->finish);
  }
  return 0;
}

const bool registered = cli::register_command(
    {"chat", "Chat with a model in the terminal (uses its chat template)", 21,
     [](CLI::App& sub) -> std::function<int()> {
       auto o = std::make_shared<ChatOptions>();
       cli::add_generation_flags(sub, o->gen, -1);
       sub.add_option("-s,--system", o->system, "System prompt");
       return [o] { return chat(*o); };
     }});

}  // namespace
