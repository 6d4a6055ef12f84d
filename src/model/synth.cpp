#include "model/synth.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <numbers>
#include <set>
#include <thread>

#include "core/cpu_info.h"
#include "core/thread_pool.h"
#include "gguf/file_type.h"
#include "gguf/gguf.h"
#include "gguf/writer.h"
#include "quant/quant.h"

namespace velo::synth {
namespace {

// Every value below is from the model's config.json on Hugging Face:
//   https://huggingface.co/<repo>/blob/main/config.json for the repo named above each entry.
// head_dim is config.head_dim where given, else hidden_size / num_attention_heads.
constexpr Preset kPresets[] = {
    // meta-llama/Llama-3.1-8B: rope_scaling {rope_type llama3, factor 8, low 1, high 4, original 8192}
    {.name = "llama-3.1-8b", .arch = Arch::Llama, .n_layer = 32, .n_embd = 4096, .n_ff = 14336, .n_head = 32,
     .n_head_kv = 8, .head_dim = 128, .n_vocab = 128256, .n_ctx = 131072, .rope_base = 500000.0f, .norm_eps = 1e-5f,
     .rope_factor = 8.0f, .rope_low_freq = 1.0f, .rope_high_freq = 4.0f, .rope_orig_ctx = 8192, .tied = false},
    // meta-llama/Llama-3.2-1B: llama3 rope scaling with factor 32, tie_word_embeddings true
    {.name = "llama-3.2-1b", .arch = Arch::Llama, .n_layer = 16, .n_embd = 2048, .n_ff = 8192, .n_head = 32,
     .n_head_kv = 8, .head_dim = 64, .n_vocab = 128256, .n_ctx = 131072, .rope_base = 500000.0f, .norm_eps = 1e-5f,
     .rope_factor = 32.0f, .rope_low_freq = 1.0f, .rope_high_freq = 4.0f, .rope_orig_ctx = 8192, .tied = true},
    // meta-llama/Llama-3.2-3B
    {.name = "llama-3.2-3b", .arch = Arch::Llama, .n_layer = 28, .n_embd = 3072, .n_ff = 8192, .n_head = 24,
     .n_head_kv = 8, .head_dim = 128, .n_vocab = 128256, .n_ctx = 131072, .rope_base = 500000.0f, .norm_eps = 1e-5f,
     .rope_factor = 32.0f, .rope_low_freq = 1.0f, .rope_high_freq = 4.0f, .rope_orig_ctx = 8192, .tied = true},
    // Qwen/Qwen2.5-7B-Instruct (q/k/v biases; max_position_embeddings 32768)
    {.name = "qwen2.5-7b", .arch = Arch::Qwen2, .n_layer = 28, .n_embd = 3584, .n_ff = 18944, .n_head = 28,
     .n_head_kv = 4, .head_dim = 128, .n_vocab = 152064, .n_ctx = 32768, .rope_base = 1000000.0f, .norm_eps = 1e-6f,
     .tied = false},
    // Qwen/Qwen2.5-0.5B-Instruct
    {.name = "qwen2.5-0.5b", .arch = Arch::Qwen2, .n_layer = 24, .n_embd = 896, .n_ff = 4864, .n_head = 14,
     .n_head_kv = 2, .head_dim = 64, .n_vocab = 151936, .n_ctx = 32768, .rope_base = 1000000.0f, .norm_eps = 1e-6f,
     .tied = true},
    // Qwen/Qwen3-8B (per-head q/k RMSNorm, no biases)
    {.name = "qwen3-8b", .arch = Arch::Qwen3, .n_layer = 36, .n_embd = 4096, .n_ff = 12288, .n_head = 32,
     .n_head_kv = 8, .head_dim = 128, .n_vocab = 151936, .n_ctx = 40960, .rope_base = 1000000.0f, .norm_eps = 1e-6f,
     .tied = false},
    // google/gemma-3-1b-it: rope_theta 1e6 (global layers), rope_local_base_freq 1e4 (the loaders'
    // default for sliding layers), sliding_window 512 every 6th layer global (the loaders' default)
    {.name = "gemma3-1b", .arch = Arch::Gemma3, .n_layer = 26, .n_embd = 1152, .n_ff = 6912, .n_head = 4,
     .n_head_kv = 1, .head_dim = 256, .n_vocab = 262144, .n_ctx = 32768, .rope_base = 1000000.0f, .norm_eps = 1e-6f,
     .sliding_window = 512, .tied = true},
    // HuggingFaceTB/SmolLM2-135M-Instruct
    {.name = "smollm2-135m", .arch = Arch::Llama, .n_layer = 30, .n_embd = 576, .n_ff = 1536, .n_head = 9,
     .n_head_kv = 3, .head_dim = 64, .n_vocab = 49152, .n_ctx = 8192, .rope_base = 100000.0f, .norm_eps = 1e-5f,
     .tied = true},
};

struct TypeName {
  std::string_view name;
  GgmlType type;
};
constexpr TypeName kTypes[] = {{"bf16", GgmlType::BF16}, {"f16", GgmlType::F16},   {"q8_0", GgmlType::Q8_0},
                               {"q4_k", GgmlType::Q4_K}, {"q4_0", GgmlType::Q4_0}, {"q6_k", GgmlType::Q6_K}};

constexpr uint64_t kChunkBytes = 32u << 20;  // tensor bytes generated per pipeline step
constexpr int kBuffers = 3;                  // one being filled, one queued, one being written
constexpr float kWeightStd = 0.02f;          // typical init std: activations stay O(1) through all layers
constexpr char kPadPrefix[] = "<|synth_pad_";

bool is_quantized(GgmlType t) { return type_traits(t)->block_elems > 1; }

// llama.cpp's Q4_K_M gives these layers of attn_v/ffn_down more bits: the first
// and last eighth, and every third layer between.
bool more_bits(int il, int n) { return il < n / 8 || il >= 7 * n / 8 || (il - n / 8) % 3 == 2; }

// A type whose blocks fit rows of `cols` (llama.cpp's fallbacks for odd row lengths).
GgmlType fit(GgmlType t, uint64_t cols, std::set<std::string>& notes) {
  while (cols % type_traits(t)->block_elems != 0) {
    const GgmlType next = t == GgmlType::Q4_K ? GgmlType::Q5_0 : t == GgmlType::Q6_K ? GgmlType::Q8_0 : GgmlType::F16;
    notes.insert("rows of " + std::to_string(cols) + " are not whole " + type_name(t) + " blocks: " +
                 type_name(next) + " used instead");
    t = next;
  }
  return t;
}

uint64_t mix(uint64_t& s) {  // splitmix64: a fast, well-distributed 64-bit generator
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// dst[0..n) = center + uniform noise of standard deviation `sd`, a function of `key` only.
void fill_uniform(float* dst, int64_t n, uint64_t key, float center, float sd) {
  const float scale = sd * std::sqrt(3.0f) / 2147483648.0f;  // int32 -> [-sd*sqrt3, sd*sqrt3)
  uint64_t s = key;
  for (int64_t i = 0; i < n; i += 2) {
    const uint64_t r = mix(s);
    dst[i] = center + scale * static_cast<float>(static_cast<int32_t>(r));
    if (i + 1 < n) dst[i + 1] = center + scale * static_cast<float>(static_cast<int32_t>(r >> 32));
  }
}

// llama3 rope scaling as per-frequency divisors (what llama.cpp's converter stores in rope_freqs).
void fill_rope_freqs(float* dst, const Preset& p) {
  const int n = p.head_dim / 2;
  const double low_wavelen = p.rope_orig_ctx / p.rope_low_freq, high_wavelen = p.rope_orig_ctx / p.rope_high_freq;
  for (int i = 0; i < n; ++i) {
    const double wavelen = 2 * std::numbers::pi * std::pow(static_cast<double>(p.rope_base), 2.0 * i / p.head_dim);
    double f = 1.0;
    if (wavelen > low_wavelen) {
      f = p.rope_factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (p.rope_orig_ctx / wavelen - p.rope_low_freq) / (p.rope_high_freq - p.rope_low_freq);
      f = 1.0 / ((1 - smooth) / p.rope_factor + smooth);
    }
    dst[i] = static_cast<float>(f);
  }
}

Status check_preset(const Preset& p) {
  if (p.n_layer < 1 || p.n_layer > 1024 || p.n_embd < 1 || p.n_ff < 1 || p.n_head < 1 || p.n_head_kv < 1 ||
      p.n_vocab < 1 || p.n_ctx < 1 || p.head_dim < 16)
    return make_error("synth: preset '" + std::string(p.name) + "' has a dimension out of range");
  if (p.n_head % p.n_head_kv != 0) return make_error("synth: n_head is not a multiple of n_head_kv");
  if (p.head_dim % 16 != 0) return make_error("synth: head_dim must be a multiple of 16");
  return {};
}

Result<int32_t> token_count(const gguf::File& vocab) {
  const gguf::Value* toks = vocab.find("tokenizer.ggml.tokens");
  if (!toks || toks->type != gguf::ValueType::ARRAY || toks->elem_type != gguf::ValueType::STRING ||
      toks->elems.empty())
    return make_error("vocabulary source " + vocab.path() + " has no tokenizer.ggml.tokens list");
  if (toks->elems.size() > (1u << 24)) return make_error("vocabulary source has too many tokens");
  return static_cast<int32_t>(toks->elems.size());
}

Result<Plan> make_plan(const Options& o, const gguf::File& vocab) {
  const Preset& p = o.preset;
  VELO_TRY(check_preset(p));
  if (!quant::can_quantize(o.type)) return make_error("synth: cannot write type " + type_name(o.type));
  Plan plan;
  VELO_ASSIGN_OR_RETURN(plan.source_tokens, token_count(vocab));
  plan.n_vocab = std::max(p.n_vocab, plan.source_tokens);
  plan.pad_tokens = plan.n_vocab - plan.source_tokens;
  if (plan.pad_tokens > 0)
    plan.notes.push_back("vocabulary: " + std::to_string(plan.source_tokens) + " tokens from " + vocab.path() +
                         ", padded with " + std::to_string(plan.pad_tokens) + " control tokens to " +
                         std::string(p.name) + "'s " + std::to_string(p.n_vocab));
  else if (plan.source_tokens > p.n_vocab)
    plan.notes.push_back("vocabulary: " + vocab.path() + " has " + std::to_string(plan.source_tokens) +
                         " tokens, more than " + std::string(p.name) + "'s " + std::to_string(p.n_vocab) +
                         "; the model uses " + std::to_string(plan.source_tokens));

  std::set<std::string> notes;
  const GgmlType t = o.type;
  // The output projection (token_embd when tied): Q6_K for the 4- and 6-bit types, as llama.cpp.
  const GgmlType out_t = is_quantized(t) && t != GgmlType::Q8_0 ? GgmlType::Q6_K : t;
  const uint64_t E = p.n_embd, F = p.n_ff, V = plan.n_vocab, D = p.head_dim;
  const uint64_t Q = D * p.n_head, KV = D * p.n_head_kv;
  auto add = [&](std::string name, GgmlType type, std::vector<uint64_t> ne, Fill fill) {
    if (ne.size() > 1) type = fit(type, ne[0], notes);
    uint64_t rows = 1;
    for (size_t d = 1; d < ne.size(); ++d) rows *= ne[d];
    const uint64_t bytes = *row_bytes(type, ne[0]) * rows;
    plan.n_params += ne[0] * rows;
    plan.data_bytes += bytes;
    plan.tensors.push_back({std::move(name), type, std::move(ne), bytes, fill});
  };
  add("token_embd.weight", p.tied ? out_t : t, {E, V}, Fill::Weight);
  if (p.rope_factor > 0) add("rope_freqs.weight", GgmlType::F32, {D / 2}, Fill::RopeFreqs);
  add("output_norm.weight", GgmlType::F32, {E}, Fill::Norm);
  if (!p.tied) add("output.weight", out_t, {E, V}, Fill::Weight);
  const bool m = t == GgmlType::Q4_K;  // Q4_K_M mix
  for (int il = 0; il < p.n_layer; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    const GgmlType more = m && more_bits(il, p.n_layer) ? GgmlType::Q6_K : t;
    add(b + "attn_norm.weight", GgmlType::F32, {E}, Fill::Norm);
    add(b + "attn_q.weight", t, {E, Q}, Fill::Weight);
    add(b + "attn_k.weight", t, {E, KV}, Fill::Weight);
    add(b + "attn_v.weight", more, {E, KV}, Fill::Weight);
    if (p.arch == Arch::Qwen2) {
      add(b + "attn_q.bias", GgmlType::F32, {Q}, Fill::Bias);
      add(b + "attn_k.bias", GgmlType::F32, {KV}, Fill::Bias);
      add(b + "attn_v.bias", GgmlType::F32, {KV}, Fill::Bias);
    }
    if (p.arch == Arch::Qwen3 || p.arch == Arch::Gemma3) {
      add(b + "attn_q_norm.weight", GgmlType::F32, {D}, Fill::Norm);
      add(b + "attn_k_norm.weight", GgmlType::F32, {D}, Fill::Norm);
    }
    add(b + "attn_output.weight", t, {Q, E}, Fill::Weight);
    if (p.arch == Arch::Gemma3) add(b + "post_attention_norm.weight", GgmlType::F32, {E}, Fill::Norm);
    add(b + "ffn_norm.weight", GgmlType::F32, {E}, Fill::Norm);
    add(b + "ffn_gate.weight", t, {E, F}, Fill::Weight);
    add(b + "ffn_up.weight", t, {E, F}, Fill::Weight);
    add(b + "ffn_down.weight", more, {F, E}, Fill::Weight);
    if (p.arch == Arch::Gemma3) add(b + "post_ffw_norm.weight", GgmlType::F32, {E}, Fill::Norm);
  }
  plan.notes.insert(plan.notes.end(), notes.begin(), notes.end());
  return plan;
}

// Metadata: the architecture keys our loader and llama.cpp read, and the tokenizer.* keys of
// the vocabulary source with the token lists padded to plan.n_vocab.
void set_metadata(gguf::Writer& w, const Options& o, const Plan& plan, const gguf::File& vocab) {
  using gguf::OwnedValue;
  const Preset& p = o.preset;
  const std::string a = std::string(arch_name(p.arch)) + ".";
  w.set("general.architecture", OwnedValue::string(arch_name(p.arch)));
  w.set("general.name", OwnedValue::string("synth-" + std::string(p.name)));
  w.set("general.description", OwnedValue::string("random weights (velollm synth, seed " + std::to_string(o.seed) +
                                                   "): for benchmarks, not a trained model"));
  const uint32_t ftype = o.type == GgmlType::Q4_K ? 15u /* MOSTLY_Q4_K_M */ : gguf::file_type_for(o.type).value_or(0);
  w.set("general.file_type", OwnedValue::u32(ftype));
  if (is_quantized(o.type)) w.set("general.quantization_version", OwnedValue::u32(2));
  w.set(a + "context_length", OwnedValue::u32(p.n_ctx));
  w.set(a + "embedding_length", OwnedValue::u32(p.n_embd));
  w.set(a + "block_count", OwnedValue::u32(p.n_layer));
  w.set(a + "feed_forward_length", OwnedValue::u32(p.n_ff));
  w.set(a + "attention.head_count", OwnedValue::u32(p.n_head));
  w.set(a + "attention.head_count_kv", OwnedValue::u32(p.n_head_kv));
  w.set(a + "attention.key_length", OwnedValue::u32(p.head_dim));
  w.set(a + "attention.value_length", OwnedValue::u32(p.head_dim));
  w.set(a + "attention.layer_norm_rms_epsilon", OwnedValue::f32(p.norm_eps));
  w.set(a + "rope.dimension_count", OwnedValue::u32(p.head_dim));
  w.set(a + "rope.freq_base", OwnedValue::f32(p.rope_base));
  if (p.sliding_window > 0) w.set(a + "attention.sliding_window", OwnedValue::u32(p.sliding_window));
  w.set(a + "vocab_size", OwnedValue::u32(plan.n_vocab));

  for (const auto& kv : vocab.metadata()) {
    if (!kv.key.starts_with("tokenizer.")) continue;
    OwnedValue v = OwnedValue::from(kv.value);
    const bool per_token = v.type == gguf::ValueType::ARRAY && v.elems.size() == static_cast<size_t>(plan.source_tokens);
    if (per_token && kv.key == "tokenizer.ggml.tokens") {
      // Named by token id, so pads stay unique even when the source is itself a padded synth file.
      for (int32_t id = plan.source_tokens; id < plan.n_vocab; ++id)
        v.elems.push_back(OwnedValue::string(kPadPrefix + std::to_string(id) + "|>"));
    } else if (per_token && kv.key == "tokenizer.ggml.token_type") {
      for (int32_t id = plan.source_tokens; id < plan.n_vocab; ++id) v.elems.push_back(OwnedValue::i32(3));  // CONTROL
    } else if (per_token && kv.key == "tokenizer.ggml.scores") {
      for (int32_t id = plan.source_tokens; id < plan.n_vocab; ++id) v.elems.push_back(OwnedValue::f32(0.0f));
    }
    w.set(std::string(kv.key), std::move(v));
  }
  if (plan.pad_tokens > 0 && !vocab.find("tokenizer.ggml.token_type")) {  // pads must be marked CONTROL
    std::vector<int32_t> types(plan.n_vocab, 1);                          // NORMAL
    std::fill(types.begin() + plan.source_tokens, types.end(), 3);
    w.set("tokenizer.ggml.token_type", OwnedValue::i32_array(types));
  }
}

// Generates the tensor data in file order on a background thread (rows split over the
// pool), kBuffers chunks of at most kChunkBytes in flight, while the caller writes.
class Producer {
 public:
  struct Chunk {
    size_t tensor = 0;
    uint64_t bytes = 0;
    std::vector<uint8_t> buf;
  };

  Producer(const Options& o, const Plan& plan, int threads) : o_(o), plan_(plan), pool_(threads) {
    uint64_t max_row = 0;
    for (const auto& t : plan.tensors) max_row = std::max<uint64_t>(max_row, t.ne[0]);
    scratch_.assign(pool_.size(), std::vector<float>(max_row));
    for (int i = 0; i < kBuffers; ++i) free_.emplace_back(kChunkBytes);
    thread_ = std::thread([this] { run(); });
  }
  ~Producer() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  // The next chunk in file order; hand it back with recycle() once written.
  Result<Chunk> next() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return !ready_.empty() || !error_.ok(); });
    if (!error_.ok()) return make_error(error_.message());
    Chunk c = std::move(ready_.front());
    ready_.pop_front();
    return c;
  }
  void recycle(Chunk c) {
    {
      std::lock_guard lk(mu_);
      free_.push_back(std::move(c.buf));
    }
    cv_.notify_all();
  }

 private:
  void run() {
    for (size_t ti = 0; ti < plan_.tensors.size(); ++ti) {
      const TensorPlan& t = plan_.tensors[ti];
      const uint64_t row = t.bytes / rows_of(t), rows = rows_of(t);
      const uint64_t per_chunk = std::max<uint64_t>(1, kChunkBytes / row);
      for (uint64_t r0 = 0; r0 < rows; r0 += per_chunk) {
        Chunk c{ti, (std::min(rows, r0 + per_chunk) - r0) * row, {}};
        {
          std::unique_lock lk(mu_);
          cv_.wait(lk, [&] { return stop_ || !free_.empty(); });
          if (stop_) return;
          c.buf = std::move(free_.back());
          free_.pop_back();
        }
        Status st = fill(ti, r0, r0 + c.bytes / row, c.buf.data());
        {
          std::lock_guard lk(mu_);
          if (!st.ok()) error_ = st;
          ready_.push_back(std::move(c));
        }
        cv_.notify_all();
        if (!st.ok()) return;
      }
    }
  }

  static uint64_t rows_of(const TensorPlan& t) {
    uint64_t r = 1;
    for (size_t d = 1; d < t.ne.size(); ++d) r *= t.ne[d];
    return r;
  }

  // Rows [r0, r1) of tensor ti into out. Each row's values depend only on (seed, tensor, row).
  Status fill(size_t ti, uint64_t r0, uint64_t r1, uint8_t* out) {
    const TensorPlan& t = plan_.tensors[ti];
    const int64_t n = static_cast<int64_t>(t.ne[0]);
    const uint64_t row = *row_bytes(t.type, t.ne[0]);
    const int64_t parts = std::min<int64_t>(static_cast<int64_t>(r1 - r0), 4 * pool_.size());
    std::atomic<bool> failed{false};
    pool_.parallel_chunks(parts, [&](int64_t part, int thread) {
      float* x = scratch_[thread].data();
      const uint64_t span = r1 - r0, a = r0 + span * part / parts, b = r0 + span * (part + 1) / parts;
      for (uint64_t r = a; r < b; ++r) {
        uint64_t key = o_.seed ^ (static_cast<uint64_t>(ti) << 40) ^ r;
        key = mix(key);
        switch (t.fill) {
          case Fill::Weight: fill_uniform(x, n, key, 0.0f, kWeightStd); break;
          case Fill::Bias: fill_uniform(x, n, key, 0.0f, kWeightStd); break;
          case Fill::Norm: fill_uniform(x, n, key, 1.0f, 0.01f); break;
          case Fill::RopeFreqs: fill_rope_freqs(x, o_.preset); break;
        }
        if (!quant::quantize_row(t.type, x, out + (r - r0) * row, n).ok()) failed = true;
      }
    });
    if (failed) return make_error("synth: cannot quantize tensor '" + t.name + "' to " + type_name(t.type));
    return {};
  }

  const Options& o_;
  const Plan& plan_;
  ThreadPool pool_;
  std::vector<std::vector<float>> scratch_;  // [threads][longest row]
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Chunk> ready_;
  std::vector<std::vector<uint8_t>> free_;  // [kBuffers][kChunkBytes], reused
  Status error_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after everything above exists
};

Status check_destination(const std::string& tmp, const std::string& out, uint64_t need) {
  std::error_code ec;
  if (std::filesystem::is_directory(out, ec)) return make_error("cannot write " + out + ": it is a directory");
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return make_error("cannot write " + out + ": " + std::strerror(errno));
  std::fclose(f);
  std::filesystem::path dir = std::filesystem::path(tmp).parent_path();
  if (dir.empty()) dir = ".";
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) == 0) {
    const uint64_t avail = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    if (avail < need) {
      std::remove(tmp.c_str());
      char msg[256];
      std::snprintf(msg, sizeof msg, "not enough free space in %s: the model needs %.2f GiB, %.2f GiB available",
                    dir.c_str(), need / 1073741824.0, avail / 1073741824.0);
      return make_error(msg);
    }
  }
  return {};
}

}  // namespace

std::span<const Preset> presets() { return kPresets; }

const Preset* find_preset(std::string_view name) {
  for (const auto& p : kPresets)
    if (p.name == name) return &p;
  return nullptr;
}

std::string preset_names() {
  std::string s;
  for (const auto& p : kPresets) s += (s.empty() ? "" : ", ") + std::string(p.name);
  return s;
}

std::optional<GgmlType> parse_type(std::string_view name) {
  for (const auto& t : kTypes)
    if (t.name == name) return t.type;
  return std::nullopt;
}

std::string type_names() {
  std::string s;
  for (const auto& t : kTypes) s += (s.empty() ? "" : ", ") + std::string(t.name);
  return s;
}

Result<Plan> plan(const Options& o) {
  auto vocab = gguf::File::open(o.vocab_from);
  if (!vocab.ok()) return make_error("vocabulary source: " + vocab.message());
  return make_plan(o, **vocab);
}

Result<Plan> write_model(const Options& o) {
  auto vocab_file = gguf::File::open(o.vocab_from);
  if (!vocab_file.ok()) return make_error("vocabulary source: " + vocab_file.message());
  const gguf::File& vocab = **vocab_file;
  VELO_ASSIGN_OR_RETURN(Plan plan, make_plan(o, vocab));

  gguf::Writer w;
  set_metadata(w, o, plan, vocab);
  for (const auto& t : plan.tensors) VELO_TRY(w.declare_tensor(t.name, t.type, t.ne));

  // Header estimate: the source's metadata, the pad tokens, tensor infos and alignment.
  const uint64_t need = plan.data_bytes + vocab.data_offset() + uint64_t{48} * plan.pad_tokens +
                        uint64_t{160} * plan.tensors.size() + (1u << 20);
  const std::string tmp = o.out + ".tmp-" + std::to_string(::getpid());
  VELO_TRY(check_destination(tmp, o.out, need));

  Status st;
  {
    Producer producer(o, plan, o.threads > 0 ? o.threads : logical_cpus());
    uint64_t done = 0;
    st = w.write_streaming(tmp, [&](size_t i, const gguf::Writer::Emit& emit) -> Status {
      for (uint64_t left = plan.tensors[i].bytes; left > 0;) {
        VELO_ASSIGN_OR_RETURN(auto c, producer.next());
        if (c.tensor != i || c.bytes > left) return make_error("synth: internal error: chunk out of order");
        Status e = emit({c.buf.data(), c.bytes});
        left -= c.bytes;
        done += c.bytes;
        producer.recycle(std::move(c));
        VELO_TRY(e);
        if (o.progress) o.progress(done, plan.data_bytes);
      }
      return {};
    });
  }
  if (st.ok()) {
    std::error_code ec;
    std::filesystem::rename(tmp, o.out, ec);
    if (ec) st = make_error("cannot move " + tmp + " to " + o.out + ": " + ec.message());
  }
  if (!st.ok()) {
    std::remove(tmp.c_str());
    if (std::strstr(st.message().c_str(), "No space left"))
      return make_error("disk full while writing " + o.out + " (" + st.message() + ")");
    return make_error(st.message());
  }
  return plan;
}

}  // namespace velo::synth
