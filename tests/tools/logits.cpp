// tool_logits: full logits of a token sequence, for the llama.cpp fidelity test.
//   tool_logits MODEL OUT.bin TOKENS [--mode batch|incremental] [--generate N]
//               [--threads N] [--ctx N] [--block-size N] [--chunk N]
// TOKENS is a comma-separated id list. OUT.bin gets float32 [n_tokens][n_vocab]:
// the logits after each prompt token. `batch` runs the prompt through one
// forward (chunks of --chunk tokens when given), `incremental` one token per
// forward (the decode path). --generate N then decodes N greedy tokens one at
// a time and prints their ids, comma-separated, on stdout. The KV block table
// is a shuffled permutation so paging is exercised.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "gguf/gguf.h"
#include "model/config.h"
#include "model/transformer.h"
#include "model/weights.h"

using namespace velo;

static int fail(const std::string& msg) {
  std::fprintf(stderr, "tool_logits: %s\n", msg.c_str());
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 4) return fail("usage: tool_logits MODEL OUT.bin TOKENS [--mode batch|incremental] [--generate N] ...");
  const std::string model = argv[1], out_path = argv[2];
  std::vector<int32_t> tokens;
  for (const char* p = argv[3]; *p;) {
    char* end;
    tokens.push_back(static_cast<int32_t>(std::strtol(p, &end, 10)));
    if (end == p) return fail("bad token list");
    p = *end == ',' ? end + 1 : end;
  }
  std::string mode = "batch";
  int generate = 0, threads = 2, ctx = 0, block = 16, chunk = 0;
  for (int i = 4; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--mode") mode = v;
    else if (k == "--generate") generate = std::atoi(v.c_str());
    else if (k == "--threads") threads = std::atoi(v.c_str());
    else if (k == "--ctx") ctx = std::atoi(v.c_str());
    else if (k == "--block-size") block = std::atoi(v.c_str());
    else if (k == "--chunk") chunk = std::atoi(v.c_str());
    else return fail("unknown option " + k);
  }
  if (mode != "batch" && mode != "incremental") return fail("--mode must be batch or incremental");
  const int n_prompt = static_cast<int>(tokens.size());
  if (ctx == 0) ctx = n_prompt + generate;
  if (chunk <= 0) chunk = n_prompt;
  if (block <= 0) return fail("--block-size must be positive");

  auto file = gguf::File::open(model);
  if (!file) return fail(file.message());
  auto cfg = parse_config(**file);
  if (!cfg) return fail(cfg.message());
  auto weights = bind_weights(**file, *cfg);
  if (!weights) return fail(weights.message());
  ThreadPool pool(threads);
  TransformerLimits lim;
  lim.ctx_size = ctx;
  lim.block_size = block;
  lim.num_kv_blocks = (ctx + block - 1) / block;
  lim.max_seqs = 1;
  lim.max_batch_tokens = std::max(1, chunk);
  auto tf = Transformer::create(*cfg, *weights, lim, pool);
  if (!tf) return fail(tf.message());

  StepPlan plan;
  plan.seqs.resize(1);
  ScheduledSeq& seq = plan.seqs[0];
  seq.block_table.resize(lim.num_kv_blocks);
  std::iota(seq.block_table.begin(), seq.block_table.end(), 0);
  std::shuffle(seq.block_table.begin(), seq.block_table.end(), std::mt19937(1234));

  const int64_t V = cfg->n_vocab;
  std::vector<float> out(static_cast<size_t>(n_prompt) * V);
  const int step = mode == "batch" ? chunk : 1;
  for (int start = 0; start < n_prompt; start += step) {
    const int n = std::min(step, n_prompt - start);
    seq.tokens.assign(tokens.begin() + start, tokens.begin() + start + n);
    seq.start_pos = start;
    seq.need_logits = true;
    auto r = (*tf)->forward_all(plan);
    if (!r) return fail(r.message());
    std::copy(r->begin(), r->end(), out.begin() + start * V);
  }
  FILE* f = std::fopen(out_path.c_str(), "wb");
  if (!f || std::fwrite(out.data(), sizeof(float), out.size(), f) != out.size()) return fail("cannot write " + out_path);
  std::fclose(f);

  // Greedy continuation through the single-token decode path (timed on stderr).
  std::vector<float> last(out.end() - V, out.end());
  const auto t0 = std::chrono::steady_clock::now();
  for (int g = 0; g < generate; ++g) {
    const int32_t next = static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
    std::printf("%s%d", g ? "," : "", next);
    if (g + 1 == generate) break;
    seq.tokens.assign(1, next);
    seq.start_pos = n_prompt + g;
    auto r = (*tf)->forward(plan);
    if (!r) return fail(r.message());
    std::copy(r->begin(), r->end(), last.begin());
  }
  std::printf("\n");
  if (generate > 1) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "decode: %d tokens in %.3f s, %.1f tok/s (%d threads)\n", generate - 1, s,
                 (generate - 1) / s, threads);
  }
  return 0;
}
