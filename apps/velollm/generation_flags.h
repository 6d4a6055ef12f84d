// Flags shared by `velollm run` and `velollm chat`: the model, runner and
// sampling options, turned into RunnerOptions and validated SamplingParams.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "device_flags.h"
#include "core/result.h"
#include "engine/generator.h"
#include "engine/model_runner.h"
#include "engine/sampling_params.h"

namespace velo::cli {

struct GenerationFlags {
  std::string model;
  int32_t threads = 0;
  int32_t ctx_size = 0;
  int32_t batch = 512;
  int64_t seed = -1;  // -1: random
  SamplingParams sp;
  bool verbose = false;
  DeviceFlags dev;
};

inline void add_generation_flags(CLI::App& sub, GenerationFlags& f, int32_t default_n_predict) {
  f.sp.max_tokens = default_n_predict;
  sub.add_option("-m,--model", f.model, "GGUF model file (default: the model installed by scripts/install.sh)");
  sub.add_option("-n,--n-predict", f.sp.max_tokens, "Tokens to generate (-1: until end of generation or context)")
      ->capture_default_str();
  sub.add_option("--temperature,--temp", f.sp.temperature, "Sampling temperature (0: greedy)")->capture_default_str();
  sub.add_option("--top-k", f.sp.top_k, "Keep the K most likely tokens (0: off)")->capture_default_str();
  sub.add_option("--top-p", f.sp.top_p, "Keep the smallest set of tokens with probability mass P (1: off)")
      ->capture_default_str();
  sub.add_option("--min-p", f.sp.min_p, "Drop tokens less likely than P times the best one (0: off)")
      ->capture_default_str();
  sub.add_option("--repeat-penalty", f.sp.repeat_penalty, "Penalize repeated tokens (1: off)")->capture_default_str();
  sub.add_option("--repeat-last-n", f.sp.repeat_last_n, "Tokens the penalties look back over (-1: all, 0: off)")
      ->capture_default_str();
  sub.add_option("--presence-penalty", f.sp.presence_penalty, "OpenAI presence penalty")->capture_default_str();
  sub.add_option("--frequency-penalty", f.sp.frequency_penalty, "OpenAI frequency penalty")->capture_default_str();
  sub.add_option("--seed", f.seed, "Random seed (-1: random)")->capture_default_str();
  // One string per --stop, taken verbatim (CLI11 would split "[a,b]" otherwise).
  sub.add_option("--stop", f.sp.stop, "Stop at this string, which is not printed (repeatable)")
      ->allow_extra_args(false);
  sub.add_flag("--ignore-eos", f.sp.ignore_eos, "Keep generating past end-of-generation tokens");
  sub.add_option("-t,--threads", f.threads, "CPU threads (0: physical cores)")->capture_default_str();
  sub.add_option("-c,--ctx-size", f.ctx_size, "Context length in tokens (0: the model's, at most 8192)")
      ->capture_default_str();
  sub.add_option("-b,--batch-size", f.batch, "Prompt tokens computed per step")->capture_default_str();
  sub.add_flag("-v,--verbose", f.verbose, "Print prompt size, time to first token and speed to stderr");
  add_device_flags(sub, f.dev);
}

// Validated sampling parameters (the seed folded in), or the first error.
inline Result<SamplingParams> sampling_params(const GenerationFlags& f) {
  SamplingParams p = f.sp;
  if (f.seed < -1) return make_error("seed must be >= 0 or -1 (random), got " + std::to_string(f.seed));
  p.seed = f.seed == -1 ? 0xFFFFFFFFFFFFFFFFull : static_cast<uint64_t>(f.seed);
  VELO_TRY(p.validate());
  return p;
}

// -m, or the installed default model, with a readable error when neither exists.
inline Result<std::string> resolve_model(const std::string& given) {
  std::error_code ec;
  if (!given.empty()) {
    if (!std::filesystem::is_regular_file(given, ec)) return make_error("model file not found: " + given);
    return given;
  }
  std::string def = default_model_path();
  if (def.empty())
    return make_error(
        "no model given and the default model (SmolLM2-135M-Instruct.Q4_1.gguf) is not installed; "
        "pass -m FILE.gguf or run scripts/install.sh");
  return def;
}

inline Result<std::unique_ptr<ModelRunner>> load_runner(const GenerationFlags& f) {
  VELO_ASSIGN_OR_RETURN(std::string path, resolve_model(f.model));
  if (f.threads < 0) return make_error("threads must be >= 0, got " + std::to_string(f.threads));
  if (f.ctx_size < 0) return make_error("ctx-size must be >= 0, got " + std::to_string(f.ctx_size));
  if (f.batch < 1) return make_error("batch-size must be >= 1, got " + std::to_string(f.batch));
  RunnerOptions o;
  o.threads = f.threads;
  o.ctx_size = f.ctx_size;
  o.max_seqs = 1;
  o.max_batch_tokens = f.batch;
  VELO_TRY(apply_device_flags(f.dev, o));
  auto r = ModelRunner::load(path, o);
  if (!r.ok()) return make_error(path + ": " + r.message());
  if (f.verbose) std::fprintf(stderr, "velollm: running on %s\n", (*r)->device().c_str());
  return r;
}

inline void write_out(std::string_view s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

// "prompt 12 tokens (0 reused) in 45.1 ms (266 tok/s), first token after 47.2 ms; 24 tokens in 300 ms (76.7 tok/s)"
inline const char* finish_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
    case FinishReason::None: break;
  }
  return "none";
}

inline void print_timings(const GenerationTimings& t, FinishReason finish) {
  std::fprintf(stderr,
               "velollm: prompt %d tokens (%d reused) in %.1f ms (%.1f tok/s), first token after %.1f ms; "
               "generated %d tokens, %.1f tok/s; finish: %s\n",
               t.prompt_tokens, t.reused_tokens, t.prompt_seconds * 1e3, t.prompt_tps(), t.ttft_seconds * 1e3,
               t.generated_tokens, t.generation_tps(), finish_name(finish));
}

}  // namespace velo::cli
