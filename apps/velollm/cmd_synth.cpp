// `velollm synth --preset NAME --type TYPE -o FILE.gguf [--vocab-from FILE.gguf] [--seed N]
// [--layers N] [--threads N]`: write a random-weight model in the shapes of a real one, with a
// real vocabulary, to benchmark hardware without downloading the model (src/model/synth.h).
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "command.h"
#include "gguf/utf8.h"
#include "model/synth.h"

namespace {

using namespace velo;

struct Options {
  std::string preset, type, out, vocab;
  uint64_t seed = 1;
  int32_t layers = 0, threads = 0;
};

// Progress on stderr: a redrawn line on a terminal, a line per 10% otherwise.
class Progress {
 public:
  Progress() : tty_(::isatty(2) != 0), t0_(std::chrono::steady_clock::now()) {}
  void update(uint64_t done, uint64_t total) {
    const double secs = elapsed();
    const int pct = total ? static_cast<int>(100.0 * done / total) : 100;
    if (tty_ ? (secs - last_ < 0.25 && done < total) : pct / 10 == last_pct_ / 10) return;
    last_ = secs;
    last_pct_ = pct;
    std::fprintf(stderr, "%swriting %3d%%  %.2f / %.2f GiB  %.2f GiB/s%s", tty_ ? "\r" : "", pct, done / kGiB,
                 total / kGiB, secs > 0 ? done / kGiB / secs : 0.0, tty_ ? "   " : "\n");
    open_line_ = tty_ && done < total;
    if (tty_ && done == total) std::fputc('\n', stderr);
  }
  // Ends a redrawn line left open (before an error message).
  void interrupt() {
    if (open_line_) std::fputc('\n', stderr);
    open_line_ = false;
  }
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }

 private:
  static constexpr double kGiB = 1073741824.0;
  bool tty_;
  std::chrono::steady_clock::time_point t0_;
  double last_ = -1;
  int last_pct_ = -10;
  bool open_line_ = false;
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

int run_synth(const Options& o) {
  const synth::Preset* preset = synth::find_preset(lower(o.preset));
  if (!preset)
    return cli::fail("unknown preset '" + gguf::printable(o.preset) + "' (choose one of " + synth::preset_names() + ")");
  const auto type = synth::parse_type(lower(o.type));
  if (!type) return cli::fail("unknown type '" + gguf::printable(o.type) + "' (choose one of " + synth::type_names() + ")");
  synth::Options so;
  so.preset = *preset;
  if (o.layers > 0) so.preset.n_layer = o.layers;
  so.type = *type;
  so.out = o.out;
  so.seed = o.seed;
  so.threads = o.threads;
  so.vocab_from = o.vocab.empty() ? cli::default_model_path() : o.vocab;
  if (so.vocab_from.empty())
    return cli::fail("no vocabulary source: pass --vocab-from FILE.gguf (the default, SmolLM2-135M-Instruct.Q4_1.gguf, "
                     "is not in the model cache; run scripts/fetch_models.py)");

  Progress progress;
  so.progress = [&](uint64_t done, uint64_t total) { progress.update(done, total); };
  auto written = synth::write_model(so);
  if (!written.ok()) {
    progress.interrupt();
    return cli::fail(written.message());
  }
  for (const auto& n : written->notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  const double secs = progress.elapsed();
  std::error_code ec;
  const uint64_t bytes = std::filesystem::file_size(o.out, ec);
  const std::string type_label = *type == GgmlType::Q4_K ? "Q4_K_M" : type_name(*type);
  std::printf("synth: %s (%d layers, vocab %d) %s -> %s: %.3fB params, %.2f GiB, %.1f s (%.2f GiB/s)\n",
              std::string(preset->name).c_str(), so.preset.n_layer, written->n_vocab, type_label.c_str(),
              o.out.c_str(), written->n_params / 1e9, bytes / 1073741824.0, secs,
              secs > 0 ? bytes / 1073741824.0 / secs : 0.0);
  return 0;
}

const bool registered = cli::register_command(
    {"synth", "Write a random-weight GGUF in a real model's shapes, with a real vocabulary (for benchmarks)", 35,
     [](CLI::App& sub) -> std::function<int()> {
       auto o = std::make_shared<Options>();
       sub.add_option("--preset", o->preset, "model shapes: " + synth::preset_names())->required();
       sub.add_option("--type", o->type, "weight type: " + synth::type_names() + " (q4_k: llama.cpp's Q4_K_M mix)")
           ->required();
       sub.add_option("-o,--output", o->out, "GGUF file to write")->required();
       sub.add_option("--vocab-from", o->vocab,
                      "GGUF whose tokenizer is copied (default: SmolLM2-135M-Instruct from the model cache)");
       sub.add_option("--seed", o->seed, "random seed (same seed, same file)");
       sub.add_option("--layers", o->layers, "number of layers (default: the preset's)")->check(CLI::Range(1, 1024));
       sub.add_option("--threads,-t", o->threads, "worker threads (default: all hardware threads)")
           ->check(CLI::Range(1, 1024));
       return [o] { return run_synth(*o); };
     }});

}  // namespace
