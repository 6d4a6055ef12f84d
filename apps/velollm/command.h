// Subcommand registry: each cmd_*.cpp registers itself at static-init time
// (the files are linked into the executable directly, so nothing is dropped).
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace velo::cli {

struct Command {
  std::string name;
  std::string help;  // one line for `velollm --help`
  int order = 100;   // position in --help (lower first)
  // Adds options to `sub` and returns the function that runs the command (exit code).
  std::function<std::function<int()>(CLI::App& sub)> setup;
};

bool register_command(Command cmd);

// Print "velollm: error: MSG" to stderr and return 1 (for `return fail(...)`).
int fail(const std::string& msg);

// A model file in the model cache ($VELO_MODEL_CACHE, $XDG_CACHE_HOME/velollm/models,
// ~/.cache/velollm/models) where scripts/fetch_models.py puts it; "" when missing.
std::string cached_model_path(const std::string& file_name);

// The model the set-up script installs, used when -m is absent; "" when missing.
std::string default_model_path();

}  // namespace velo::cli
