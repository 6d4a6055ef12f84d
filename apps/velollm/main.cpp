// velollm: one binary, many subcommands (see `velollm --help`).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "command.h"

namespace velo::cli {

static std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}

bool register_command(Command cmd) {
  registry().push_back(std::move(cmd));
  return true;
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "velollm: error: %s\n", msg.c_str());
  return 1;
}

std::string cached_model_path(const std::string& file_name) {
  namespace fs = std::filesystem;
  std::vector<fs::path> dirs;
  if (const char* c = std::getenv("VELO_MODEL_CACHE")) dirs.emplace_back(c);
  if (const char* x = std::getenv("XDG_CACHE_HOME")) dirs.push_back(fs::path(x) / "velollm" / "models");
  if (const char* h = std::getenv("HOME")) dirs.push_back(fs::path(h) / ".cache" / "velollm" / "models");
  for (const auto& d : dirs) {
    auto p = d / file_name;
    std::error_code ec;
    if (fs::exists(p, ec)) return p.string();
  }
  return "";
}

std::string default_model_path() { return cached_model_path("SmolLM2-135M-Instruct.Q4_1.gguf"); }

}  // namespace velo::cli

int main(int argc, char** argv) {
  using namespace velo::cli;
  CLI::App app{"velollm " VELO_VERSION
               " - fast local LLM inference: inspect, quantize, tokenize, run, chat and serve GGUF models"};
  app.set_version_flag("--version", std::string("velollm ") + VELO_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);

  auto cmds = registry();
  std::sort(cmds.begin(), cmds.end(),
            [](const Command& a, const Command& b) { return a.order != b.order ? a.order < b.order : a.name < b.name; });
  std::function<int()> chosen;
  std::vector<std::pair<CLI::App*, std::function<int()>>> runners;
  for (const auto& c : cmds) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    runners.emplace_back(sub, c.setup(*sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto& [sub, run] : runners)
    if (sub->parsed()) {
      try {
        return run();
      } catch (const std::exception& e) {
        return fail(e.what());
      }
    }
  return fail("no command given; see velollm --help");
}
