// `velollm bench-gpu -m MODEL...`: the GPU figures that matter, each against
// the hardware limit it is bound by and beside llama.cpp's CUDA build on the
// same file in the same run:
//   decode, batch 1     tokens/s; weight bytes x tokens/s as % of measured copy bandwidth
//   time to first token  one prompt of N tokens; FLOPs / time as % of measured BF16 GEMM peak
//   concurrent decode    generated tokens/s with 8, 32, 64 sequences decoding together
//                        (--sample: none feeds random tokens, like llama-batched-bench; cpu
//                        copies the logits back and runs the CPU Sampler; gpu samples on the
//                        device so only token ids come back: the A/B of GPU sampling)
// Ceilings are measured on the device (roofline.h), not taken from a datasheet.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "command.h"
#include "device_flags.h"
#include "engine/sampler.h"
#include "model/config.h"
#if defined(VELO_WITH_CUDA)
#include "backend/cuda/roofline.h"
#endif

namespace {

using namespace velo;
using cli::Stats;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Opts {
  std::vector<std::string> models;
  int tg = 128, reps = 3, conc_prompt = 128, conc_gen = 64;
  std::vector<int> ttft = {512, 2048};
  std::vector<int> conc = {8, 32, 64};
  std::string llama_bin_dir;  // holds llama-bench and llama-batched-bench; "none" skips
  std::string json_path;
  std::string sample = "none";  // concurrent decode: none | cpu | gpu
  cli::DeviceFlags dev;
};

double secs(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// FLOPs of one prompt of n tokens: every matmul (2 per weight per token), the causal
// attention (q.k and p.v over n^2/2 pairs per head), and the LM head for the last token.
double prompt_flops(const ModelConfig& c, int n) {
  const double E = c.n_embd, QD = c.q_dim(), KVD = c.kv_dim(), F = c.n_ff;
  const double per_layer = E * QD + 2 * E * KVD + QD * E + 3 * E * F;
  const double attn = 2.0 * c.n_layer * c.n_head * c.head_dim * double(n) * n;  // 2 matmuls x n^2/2 x 2 flops
  return 2.0 * n * per_layer * c.n_layer + attn + 2.0 * c.n_vocab * E;
}

struct Ours {
  Stats tg;                       // tokens/s
  std::vector<Stats> ttft_ms;     // per --ttft
  std::vector<Stats> conc_tps;    // per --concurrency
  std::string device;
};

Result<Ours> measure(const std::string& path, const Opts& o) {
  const int max_ttft = *std::max_element(o.ttft.begin(), o.ttft.end());
  const int max_conc = *std::max_element(o.conc.begin(), o.conc.end());
  RunnerOptions ro;
  ro.max_seqs = max_conc;
  ro.ctx_size = std::max({max_ttft + 1, o.tg + 2, o.conc_prompt + o.conc_gen});
  ro.max_batch_tokens = std::max({max_ttft, max_conc, o.conc_prompt});
  const int bs = ro.kv_block_size;
  const int per_conc = (o.conc_prompt + o.conc_gen + bs - 1) / bs;
  ro.num_kv_blocks = std::max((ro.ctx_size + bs - 1) / bs, max_conc * per_conc);
  VELO_TRY(cli::apply_device_flags(o.dev, ro));
  VELO_ASSIGN_OR_RETURN(auto runner, ModelRunner::load(path, ro));
  ModelRunner& r = *runner;
  Ours out;
  out.device = r.device();
  std::mt19937 rng(1234);
  const int32_t V = r.tokenizer().n_vocab();
  auto random_tokens = [&](int n) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(V));
    return t;
  };
  StepPlan plan;
  auto one = [&](std::span<const int32_t> toks, int32_t pos) -> Status {
    plan.seqs.resize(1);
    cli::fill_seq(plan.seqs[0], 1, toks, pos, 0, bs);
    VELO_TRY(r.execute(plan));
    return {};
  };

  // Decode at batch 1 (after one warm-up pass that also captures the graph).
  for (int rep = -1; rep < o.reps; ++rep) {
    auto toks = random_tokens(o.tg);
    const auto t0 = Clock::now();
    for (int i = 0; i < o.tg; ++i) VELO_TRY(one(std::span<const int32_t>(&toks[i], 1), i));
    if (rep >= 0) out.tg.samples.push_back(o.tg / secs(t0));
  }
  out.tg = cli::summarize(out.tg.samples);

  // Time to first token: the whole prompt in one step, logits of its last token back on the host.
  for (int n : o.ttft) {
    std::vector<double> ms;
    for (int rep = -1; rep < o.reps; ++rep) {
      auto toks = random_tokens(n);
      const auto t0 = Clock::now();
      VELO_TRY(one(toks, 0));
      if (rep >= 0) ms.push_back(secs(t0) * 1e3);
    }
    out.ttft_ms.push_back(cli::summarize(ms));
  }

  // N sequences decoding together: prompts first (not timed), then conc_gen steps of N tokens.
  // With --sample cpu/gpu each sequence samples its next token (default SamplingParams, seeded).
  if (o.sample == "gpu" && r.max_sample_penalty_tokens() < 0)
    return make_error("--sample gpu needs the whole model on the GPU (sampling on the device is off: " + r.device() +
                      ")");
  std::vector<Sampler> samplers;
  std::vector<SampleArgs> sargs;
  std::vector<int32_t> pen_tok, pen_cnt, next;
  auto decode_step = [&](int n) -> Status {
    if (o.sample == "none") {
      VELO_TRY(r.execute(plan));
      return {};
    }
    next.assign(static_cast<size_t>(n), 0);
    if (o.sample == "gpu") {
      sargs.clear(), pen_tok.clear(), pen_cnt.clear();
      for (int s = 0; s < n; ++s) sargs.push_back(samplers[s].device_args(pen_tok, pen_cnt));
      VELO_TRY(r.execute_sample(plan, SampleBatch{sargs, pen_tok, pen_cnt}, next));
    } else {
      VELO_ASSIGN_OR_RETURN(auto logits, r.execute(plan));
      const size_t V = static_cast<size_t>(r.n_vocab());
      for (int s = 0; s < n; ++s) {
        VELO_ASSIGN_OR_RETURN(next[s], samplers[s].sample(logits.subspan(s * V, V)));
      }
    }
    for (int s = 0; s < n; ++s) samplers[s].accept(next[s]);
    return {};
  };
  for (int n : o.conc) {
    std::vector<double> tps;
    for (int rep = -1; rep < o.reps; ++rep) {
      for (int s = 0; s < n; ++s) {
        auto toks = random_tokens(o.conc_prompt);
        plan.seqs.resize(1);
        cli::fill_seq(plan.seqs[0], s + 1, toks, 0, s * per_conc, bs);
        VELO_TRY(r.execute(plan));
      }
      plan.seqs.resize(static_cast<size_t>(n));
      samplers.clear();
      SamplingParams sp;
      for (int s = 0; s < n; ++s) {
        sp.seed = static_cast<uint64_t>(s + 1);
        samplers.emplace_back(sp, r.n_vocab());
      }
      auto toks = random_tokens(n);
      const auto t0 = Clock::now();
      for (int i = 0; i < o.conc_gen; ++i) {
        if (i > 0 && o.sample != "none") toks = next;
        else if (i > 0) toks = random_tokens(n);
        for (int s = 0; s < n; ++s)
          cli::fill_seq(plan.seqs[s], s + 1, std::span<const int32_t>(&toks[s], 1), o.conc_prompt + i, s * per_conc, bs);
        VELO_TRY(decode_step(n));
      }
      if (rep >= 0) tps.push_back(double(n) * o.conc_gen / secs(t0));
    }
    out.conc_tps.push_back(cli::summarize(tps));
  }
  return out;
}

struct Theirs {
  double tg = 0;                 // tokens/s
  std::vector<double> ttft_ms;   // n / prompt tokens/s
  std::vector<double> conc_tps;  // speed_tg
  std::string error;
};

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

Theirs llama_cpp(const std::string& dir, const std::string& model, const Opts& o) {
  Theirs t;
  t.ttft_ms.assign(o.ttft.size(), 0);
  t.conc_tps.assign(o.conc.size(), 0);
  auto bench = cli::capture({dir + "/llama-bench", "-m", model, "-p", join(o.ttft), "-n", std::to_string(o.tg), "-r",
                             std::to_string(o.reps), "-ngl", "99", "-fa", "1", "-b", "4096", "-ub", "2048", "-o",
                             "json"});
  if (!bench.ok()) {
    t.error = bench.message();
  } else if (json j = json::parse(*bench, nullptr, false); j.is_array()) {
    for (const auto& e : j) {
      const int np = e.value("n_prompt", 0), ng = e.value("n_gen", 0);
      const double ts = e.value("avg_ts", 0.0);
      if (ng > 0 && np == 0) t.tg = ts;
      for (size_t i = 0; i < o.ttft.size(); ++i)
        if (np == o.ttft[i] && ng == 0 && ts > 0) t.ttft_ms[i] = 1e3 * np / ts;
    }
  }
  const int ctx = *std::max_element(o.conc.begin(), o.conc.end()) * (o.conc_prompt + o.conc_gen) + 64;
  auto batched = cli::capture({dir + "/llama-batched-bench", "-m", model, "-c", std::to_string(ctx), "-b", "2048",
                               "-ub", "512", "-npp", std::to_string(o.conc_prompt), "-ntg", std::to_string(o.conc_gen),
                               "-npl", join(o.conc), "-ngl", "99", "-fa", "on", "--output-format", "jsonl"},
                              true);
  if (!batched.ok()) {
    t.error += (t.error.empty() ? "" : "; ") + batched.message();
    return t;
  }
  std::istringstream lines(*batched);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;
    json j = json::parse(line, nullptr, false);
    if (!j.is_object()) continue;
    for (size_t i = 0; i < o.conc.size(); ++i)
      if (j.value("pl", 0) == o.conc[i]) t.conc_tps[i] = j.value("speed_tg", 0.0);
  }
  return t;
}

std::string ratio(double ours, double theirs, bool higher_better = true) {
  if (ours <= 0 || theirs <= 0) return "-";
  char b[16];
  std::snprintf(b, sizeof b, "%.2fx", higher_better ? ours / theirs : theirs / ours);
  return b;
}

int bench_gpu(const Opts& o) {
  if (o.models.empty()) return cli::fail("give at least one model with -m (velollm synth writes benchmark models)");
  if (o.ttft.empty() || o.conc.empty()) return cli::fail("--ttft and --concurrency need at least one value");
  for (int v : o.ttft)
    if (v < 1 || v > 65536) return cli::fail("--ttft values must be in [1, 65536]");
  for (int v : o.conc)
    if (v < 1 || v > 1024) return cli::fail("--concurrency values must be in [1, 1024]");
  double bw = 0, peak = 0;
#if defined(VELO_WITH_CUDA)
  if (o.dev.device != "cpu") {
    auto roof = cuda::measure_roofline(0);
    if (!roof.ok()) return cli::fail(roof.message());
    bw = roof->copy_gbs;
    peak = roof->bf16_tflops;
  }
#endif
  std::printf("measured: copy bandwidth %.0f GB/s (read + write), BF16 GEMM %.0f TFLOP/s\n", bw, peak);
  json report = {{"copy_gbs", bw}, {"bf16_tflops", peak}, {"models", json::array()}};
  for (const auto& m : o.models) {
    std::error_code ec;
    if (!fs::is_regular_file(m, ec)) return cli::fail("model file not found: " + m);
    std::fprintf(stderr, "velollm: benchmarking %s\n", m.c_str());
    auto ours = measure(m, o);
    if (!ours.ok()) return cli::fail(m + ": " + ours.message());
    Theirs theirs;
    if (o.llama_bin_dir != "none" && !o.llama_bin_dir.empty()) {
      std::fprintf(stderr, "velollm: running llama.cpp on %s\n", m.c_str());
      theirs = llama_cpp(o.llama_bin_dir, m, o);
    } else {
      theirs.error = "llama.cpp not run (pass --llama-bin DIR)";
      theirs.ttft_ms.assign(o.ttft.size(), 0);
      theirs.conc_tps.assign(o.conc.size(), 0);
    }
    uint64_t wbytes = 0;
    ModelConfig cfg;
    {
      auto f = gguf::File::open(m);
      if (!f.ok()) return cli::fail(f.message());
      wbytes = cli::weight_bytes_per_token(**f);
      auto c = parse_config(**f);
      if (!c.ok()) return cli::fail(c.message());
      cfg = *c;
    }
    const std::string name = fs::path(m).filename().string();
    std::printf("\n%s on %s (%.2f GiB of weights per token)\n", name.c_str(), ours->device.c_str(),
                wbytes / 1073741824.0);
    std::printf("  %-26s %12s %12s %8s %22s\n", "test", "velollm", "llama.cpp", "ratio", "vs hardware limit");
    json jm = {{"model", name}, {"device", ours->device}, {"weight_bytes", wbytes}, {"sample", o.sample}};
    const double gbs = wbytes * ours->tg.median / 1e9;
    std::printf("  %-26s %8.1f t/s %8.1f t/s %8s %6.0f GB/s = %3.0f%% bw\n", "decode batch 1", ours->tg.median,
                theirs.tg, ratio(ours->tg.median, theirs.tg).c_str(), gbs, bw > 0 ? 100 * gbs / bw : 0);
    jm["decode"] = {{"tokens_per_s", ours->tg.median}, {"samples", ours->tg.samples}, {"gbs", gbs},
                    {"bandwidth_fraction", bw > 0 ? gbs / bw : 0}, {"llama_cpp_tokens_per_s", theirs.tg}};
    jm["ttft"] = json::array();
    for (size_t i = 0; i < o.ttft.size(); ++i) {
      const double ms = ours->ttft_ms[i].median, tf = prompt_flops(cfg, o.ttft[i]) / (ms * 1e-3) / 1e12;
      char test[40];
      std::snprintf(test, sizeof test, "time to first token %d", o.ttft[i]);
      std::printf("  %-26s %9.1f ms %9.1f ms %8s %6.0f TFLOP/s = %3.0f%% peak\n", test, ms, theirs.ttft_ms[i],
                  ratio(ms, theirs.ttft_ms[i], false).c_str(), tf, peak > 0 ? 100 * tf / peak : 0);
      jm["ttft"].push_back({{"prompt", o.ttft[i]}, {"ms", ms}, {"samples", ours->ttft_ms[i].samples}, {"tflops", tf},
                            {"peak_fraction", peak > 0 ? tf / peak : 0}, {"llama_cpp_ms", theirs.ttft_ms[i]}});
    }
    jm["concurrent"] = json::array();
    for (size_t i = 0; i < o.conc.size(); ++i) {
      char test[40];
      if (o.sample == "none") std::snprintf(test, sizeof test, "decode, %d sequences", o.conc[i]);
      else std::snprintf(test, sizeof test, "decode, %d seqs, %s sampling", o.conc[i], o.sample.c_str());
      const double tps = ours->conc_tps[i].median;
      std::printf("  %-26s %8.0f t/s %8.0f t/s %8s %6.0f GB/s of weights\n", test, tps, theirs.conc_tps[i],
                  ratio(tps, theirs.conc_tps[i]).c_str(), wbytes * tps / o.conc[i] / 1e9);
      jm["concurrent"].push_back({{"sequences", o.conc[i]}, {"tokens_per_s", tps},
                                  {"samples", ours->conc_tps[i].samples}, {"llama_cpp_tokens_per_s", theirs.conc_tps[i]}});
    }
    if (!theirs.error.empty()) std::printf("  llama.cpp: %s\n", theirs.error.c_str());
    jm["llama_cpp_error"] = theirs.error;
    report["models"].push_back(jm);
  }
  if (!o.json_path.empty()) std::ofstream(o.json_path) << report.dump(2) << "\n";
  return 0;
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) v.push_back(std::atoi(item.c_str()));
  return v;
}

const bool registered = cli::register_command(
    {"bench-gpu", "GPU speed: decode vs bandwidth, first-token latency vs BF16 peak, concurrency, vs llama.cpp", 61,
     [](CLI::App& sub) -> std::function<int()> {
       auto o = std::make_shared<Opts>();
       auto ttft = std::make_shared<std::string>("512,2048");
       auto conc = std::make_shared<std::string>("8,32,64");
       sub.add_option("-m,--model", o->models, "GGUF model (repeatable)")->required();
       sub.add_option("--tg", o->tg, "Tokens generated one at a time for the batch-1 figure")->capture_default_str();
       sub.add_option("--ttft", *ttft, "Prompt lengths for time to first token (comma-separated)")->capture_default_str();
       sub.add_option("--concurrency", *conc, "Sequences decoding together (comma-separated)")->capture_default_str();
       sub.add_option("--conc-prompt", o->conc_prompt, "Prompt tokens per sequence before concurrent decode")
           ->capture_default_str();
       sub.add_option("--conc-gen", o->conc_gen, "Decode steps timed per concurrency level")->capture_default_str();
       sub.add_option("-r,--reps", o->reps, "Repetitions (median reported)")->capture_default_str();
       sub.add_option("--llama-bin", o->llama_bin_dir,
                      "Folder with llama.cpp's CUDA llama-bench and llama-batched-bench ('none' skips)");
       sub.add_option("--json", o->json_path, "Also write the figures as JSON to this file");
       sub.add_option("--sample", o->sample,
                      "Concurrent decode: none (random tokens), cpu (logits back, CPU sampler) or gpu (sampled on "
                      "the device)")
           ->check(CLI::IsMember({"none", "cpu", "gpu"}))
           ->capture_default_str();
       cli::add_device_flags(sub, o->dev);
       return [o, ttft, conc] {
         o->ttft = parse_list(*ttft);
         o->conc = parse_list(*conc);
         if (o->reps < 1 || o->tg < 1 || o->conc_prompt < 1 || o->conc_gen < 1)
           return cli::fail("--reps, --tg, --conc-prompt and --conc-gen must be >= 1");
         return bench_gpu(*o);
       };
     }});

}  // namespace
