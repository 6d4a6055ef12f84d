// `velollm bench [-m MODEL]... [--pp 512] [--tg 128] [--reps 5] [--threads N]
// [--json] [--llama-bench PATH]`: prompt processing (pp tokens in one step) and
// generation (tg single-token steps) speed, median of several repetitions
// with min and max, measured the way llama-bench measures them (random
// tokens, K/V cleared per repetition, one warm-up run), beside llama.cpp's own
// figures for the same file in the same run and beside the machine's
// measured memory bandwidth: generation reads every weight once per token, so
// weight bytes x tokens/s is the bandwidth it achieved.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/membw.h"
#include "bench_util.h"
#include "command.h"
#include "core/cpu_info.h"
#include "core/thread_pool.h"
#include "engine/model_runner.h"
#include "gguf/gguf.h"

namespace {

using namespace velo;
using json = nlohmann::ordered_json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using cli::Stats;
using cli::summarize;
using cli::capture;
using cli::weight_bytes_per_token;

struct BenchOptions {
  std::vector<std::string> models;
  int32_t pp = 512, tg = 128, reps = 5, threads = 0;
  bool json_out = false;
  std::string llama_bench;  // "" = look in .cache/llama.cpp; "none" = skip
};

json stats_json(const Stats& s) {
  if (!s.ok()) return nullptr;
  return {{"tokens_per_s", s.median}, {"min", s.min}, {"max", s.max}, {"samples", s.samples}};
}

// Everything a run of the repo's tools needs is found relative to the binary
// (<repo>/build*/velollm): the llama.cpp build and ../shared/models.
fs::path repo_root() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return fs::current_path();
  return exe.parent_path().parent_path();
}

std::string find_llama_bench(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* e = std::getenv("VELO_LLAMA_BENCH")) return e;
  for (const fs::path& root : {repo_root(), fs::current_path()}) {
    fs::path p = root / ".cache" / "llama.cpp" / "build" / "bin" / "llama-bench";
    std::error_code ec;
    if (fs::exists(p, ec)) return p.string();
  }
  return "";
}

struct LlamaFigures {
  Stats pp, tg;
  std::string error;
};

LlamaFigures run_llama_bench(const std::string& bin, const std::string& model, const BenchOptions& o, int threads) {
  LlamaFigures f;
  auto out = capture({bin, "-m", model, "-p", std::to_string(o.pp), "-n", std::to_string(o.tg), "-r",
                      std::to_string(o.reps), "-t", std::to_string(threads), "-o", "json"});
  if (!out.ok()) {
    f.error = out.message();
    return f;
  }
  json j = json::parse(*out, nullptr, false);
  if (!j.is_array()) {
    f.error = "llama-bench printed no JSON";
    return f;
  }
  for (const auto& t : j) {
    std::vector<double> ts;
    if (t.contains("samples_ts") && t["samples_ts"].is_array())
      for (const auto& v : t["samples_ts"])
        if (v.is_number()) ts.push_back(v.get<double>());
    int n_prompt = t.value("n_prompt", 0), n_gen = t.value("n_gen", 0);
    if (n_prompt > 0 && n_gen == 0) f.pp = summarize(ts);
    if (n_gen > 0 && n_prompt == 0) f.tg = summarize(ts);
  }
  return f;
}

struct ModelFigures {
  std::string path;
  uint64_t weight_bytes = 0;
  Stats pp, tg;
  LlamaFigures llama;
};

// One step over `tokens` at positions [0, n) of a fresh sequence.
Result<std::span<const float>> step(ModelRunner& r, StepPlan& plan, std::span<const int32_t> tokens, int32_t pos) {
  auto& s = plan.seqs[0];
  s.tokens.assign(tokens.begin(), tokens.end());
  s.start_pos = pos;
  s.need_logits = true;
  const int32_t end = pos + static_cast<int32_t>(tokens.size());
  const int32_t n_blocks = (end + r.block_size() - 1) / r.block_size();
  s.block_table.resize(static_cast<size_t>(n_blocks));
  for (int32_t b = 0; b < n_blocks; ++b) s.block_table[b] = b;
  return r.execute(plan);
}

Result<ModelFigures> bench_model(const std::string& path, const BenchOptions& o, int threads) {
  ModelFigures mf;
  mf.path = path;
  {
    VELO_ASSIGN_OR_RETURN(auto file, gguf::File::open(path));
    mf.weight_bytes = weight_bytes_per_token(*file);
  }
  RunnerOptions ro;
  ro.device = Device::Cpu;  // the CPU benchmark, beside llama.cpp's CPU build (bench-gpu is the GPU one)
  ro.threads = threads;
  ro.ctx_size = std::max(64, o.pp + o.tg + 1);
  ro.max_seqs = 1;
  ro.max_batch_tokens = std::max(1, o.pp);
  VELO_ASSIGN_OR_RETURN(auto runner, ModelRunner::load(path, ro));
  ModelRunner& r = *runner;
  const int32_t n_vocab = r.tokenizer().n_vocab();
  const int32_t bos = r.tokenizer().adds_bos() ? r.tokenizer().bos() : -1;
  std::mt19937 rng(1234);
  auto random_token = [&] { return static_cast<int32_t>(rng() % static_cast<uint32_t>(n_vocab)); };
  StepPlan plan;
  plan.seqs.resize(1);

  // Warm-up (page in the weights, size the buffers), as llama-bench does.
  std::vector<int32_t> toks(static_cast<size_t>(std::max(1, o.pp)));
  for (auto& t : toks) t = random_token();
  if (o.pp > 0) VELO_TRY(step(r, plan, toks, 0));
  for (int i = 0; i < 2; ++i) VELO_TRY(step(r, plan, std::span<const int32_t>(toks).first(1), i));

  std::vector<double> pp, tg;
  for (int rep = 0; rep < o.reps && o.pp > 0; ++rep) {
    for (auto& t : toks) t = random_token();
    if (bos >= 0) toks[0] = bos;
    auto t0 = Clock::now();
    VELO_TRY(step(r, plan, toks, 0));
    pp.push_back(o.pp / std::chrono::duration<double>(Clock::now() - t0).count());
  }
  for (int rep = 0; rep < o.reps && o.tg > 0; ++rep) {
    int32_t tok = bos >= 0 ? bos : random_token();
    auto t0 = Clock::now();
    for (int32_t i = 0; i < o.tg; ++i) {
      VELO_TRY(step(r, plan, std::span<const int32_t>(&tok, 1), i));
      tok = random_token();
    }
    tg.push_back(o.tg / std::chrono::duration<double>(Clock::now() - t0).count());
  }
  mf.pp = summarize(pp);
  mf.tg = summarize(tg);
  return mf;
}

std::string fmt_stats(const Stats& s) {
  if (!s.ok()) return "-";
  char b[96];
  std::snprintf(b, sizeof b, "%8.1f (%.1f-%.1f)", s.median, s.min, s.max);
  return b;
}

// 1-minute load average (0 when unknown): figures from a busy machine are noisy,
// and llama.cpp's spinning worker threads lose the most when they share cores.
double load_average() {
  double l = 0;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &l) != 1) l = 0;
    std::fclose(f);
  }
  return l;
}

void print_table(const std::vector<ModelFigures>& all, const BenchOptions& o, int threads, double bw, double load) {
  std::printf("velollm bench: %d threads, %d repetitions, median tokens/s (min-max)\n", threads, o.reps);
  if (load > logical_cpus())
    std::printf("note: load average %.1f on %d CPUs: other processes compete for the cores, figures are noisy\n",
                load, logical_cpus());
  if (bw > 0) std::printf("measured memory read bandwidth: %.1f GB/s\n", bw);
  std::printf("\n%-34s %-6s %-26s %-26s %7s %9s %7s\n", "model", "test", "velollm t/s", "llama.cpp t/s", "ratio",
              "GB/s", "% bw");
  for (const auto& m : all) {
    std::string name = fs::path(m.path).filename().string();
    char pp_name[32], tg_name[32];
    std::snprintf(pp_name, sizeof pp_name, "pp%d", o.pp);
    std::snprintf(tg_name, sizeof tg_name, "tg%d", o.tg);
    auto row = [&](const char* test, const Stats& ours, const Stats& theirs, bool gen) {
      char ratio[16] = "-", gbs[16] = "-", pct[16] = "-";
      if (ours.ok() && theirs.ok()) std::snprintf(ratio, sizeof ratio, "%.2fx", ours.median / theirs.median);
      if (gen && ours.ok()) {
        double g = m.weight_bytes * ours.median / 1e9;
        std::snprintf(gbs, sizeof gbs, "%.1f", g);
        if (bw > 0) std::snprintf(pct, sizeof pct, "%.0f%%", 100 * g / bw);
      }
      std::printf("%-34s %-6s %-26s %-26s %7s %9s %7s\n", name.c_str(), test, fmt_stats(ours).c_str(),
                  fmt_stats(theirs).c_str(), ratio, gbs, pct);
    };
    if (o.pp > 0) row(pp_name, m.pp, m.llama.pp, false);
    if (o.tg > 0) row(tg_name, m.tg, m.llama.tg, true);
    std::printf("%-34s weights read per token: %.1f MiB\n", "", m.weight_bytes / 1048576.0);
    if (!m.llama.error.empty()) std::printf("%-34s llama.cpp: %s\n", "", m.llama.error.c_str());
  }
  if (bw > 0 && o.tg > 0)
    std::printf("\nGB/s = weight bytes read per generated token x generation tokens/s (K/V reads not counted)\n");
}

std::vector<std::string> default_models() {
  std::vector<std::string> m;
  if (auto p = cli::default_model_path(); !p.empty()) m.push_back(p);
  if (auto p = cli::cached_model_path("velo-code-40m.Q8_0.gguf"); !p.empty()) {
    m.push_back(p);
    return m;
  }
  for (const fs::path& root : {repo_root(), fs::current_path()}) {
    fs::path p = root.parent_path() / "shared" / "models" / "velo-code-40m.Q8_0.gguf";
    std::error_code ec;
    if (fs::exists(p, ec)) {
      m.push_back(p.string());
      break;
    }
  }
  return m;
}

int bench(const BenchOptions& o) {
  if (o.pp < 0 || o.tg < 0 || o.pp + o.tg == 0) return cli::fail("--pp and --tg must be >= 0 and not both 0");
  if (o.pp > 65536 || o.tg > 65536) return cli::fail("--pp and --tg must be at most 65536");
  if (o.reps < 1 || o.reps > 1000) return cli::fail("--reps must be in [1, 1000], got " + std::to_string(o.reps));
  if (o.threads < 0) return cli::fail("--threads must be >= 0, got " + std::to_string(o.threads));
  std::vector<std::string> models = o.models.empty() ? default_models() : o.models;
  if (models.empty()) return cli::fail("no model given and none of the default models is installed; pass -m FILE.gguf");
  for (const auto& m : models) {
    std::error_code ec;
    if (!fs::is_regular_file(m, ec)) return cli::fail("model file not found: " + m);
  }
  const int threads = o.threads > 0 ? o.threads : physical_cores();
  std::string llama = o.llama_bench == "none" ? "" : find_llama_bench(o.llama_bench);
  if (!o.llama_bench.empty() && o.llama_bench != "none" && access(llama.c_str(), X_OK) != 0)
    return cli::fail("llama-bench not found or not executable: " + llama);

  double bw = 0;
  {
    ThreadPool pool(threads);
    bw = cpu::measure_read_bandwidth_gbs(pool);
  }
  std::vector<ModelFigures> all;
  for (const auto& m : models) {
    if (!o.json_out) std::fprintf(stderr, "velollm: benchmarking %s\n", m.c_str());
    auto f = bench_model(m, o, threads);
    if (!f.ok()) return cli::fail(m + ": " + f.message());
    if (!llama.empty()) {
      if (!o.json_out) std::fprintf(stderr, "velollm: running llama-bench on %s\n", m.c_str());
      f->llama = run_llama_bench(llama, m, o, threads);
    } else {
      f->llama.error = "llama-bench not found (scripts/build_llamacpp.sh builds it)";
    }
    all.push_back(std::move(*f));
  }

  const double load = load_average();
  if (!o.json_out) {
    print_table(all, o, threads, bw, load);
    return 0;
  }
  json j = {{"threads", threads}, {"reps", o.reps}, {"pp", o.pp}, {"tg", o.tg}, {"bandwidth_gbs", bw},
            {"load_average", load}, {"logical_cpus", logical_cpus()}};
  j["models"] = json::array();
  for (const auto& m : all) {
    json e = {{"path", m.path}, {"weight_bytes_per_token", m.weight_bytes}};
    e["velollm"] = {{"pp", stats_json(m.pp)}, {"tg", stats_json(m.tg)}};
    if (m.tg.ok()) {
      double g = m.weight_bytes * m.tg.median / 1e9;
      e["velollm"]["tg_gbs"] = g;
      e["velollm"]["tg_bandwidth_fraction"] = bw > 0 ? g / bw : 0.0;
    }
    e["llama_cpp"] = {{"pp", stats_json(m.llama.pp)}, {"tg", stats_json(m.llama.tg)}};
    if (!m.llama.error.empty()) e["llama_cpp"]["error"] = m.llama.error;
    j["models"].push_back(e);
  }
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

const bool registered = cli::register_command(
    {"bench", "Prompt and generation speed vs llama.cpp and the memory bandwidth", 60,
     [](CLI::App& sub) -> std::function<int()> {
       auto o = std::make_shared<BenchOptions>();
       sub.add_option("-m,--model", o->models, "GGUF model (repeatable; default: SmolLM2-135M and velo-code-40m)");
       sub.add_option("--pp", o->pp, "Prompt tokens processed in one step (0: skip)")->capture_default_str();
       sub.add_option("--tg", o->tg, "Tokens generated one at a time (0: skip)")->capture_default_str();
       sub.add_option("-r,--reps", o->reps, "Repetitions of each test")->capture_default_str();
       sub.add_option("-t,--threads", o->threads, "CPU threads (0: physical cores)")->capture_default_str();
       sub.add_flag("--json", o->json_out, "Print JSON instead of a table");
       sub.add_option("--llama-bench", o->llama_bench,
                      "llama-bench binary (default: .cache/llama.cpp/build/bin/llama-bench; 'none' skips it)");
       return [o] { return bench(*o); };
     }});

}  // namespace
