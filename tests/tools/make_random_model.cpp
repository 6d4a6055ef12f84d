// tool_make_random_model: writes a small random-weight GGUF for the fidelity
// tests, with the vocabulary (every tokenizer.* key) copied from a real model
// so that llama.cpp loads it.
//   tool_make_random_model VOCAB_SOURCE.gguf OUT.gguf [--arch llama|qwen2|qwen3|gemma3]
//     [--type F16|Q8_0|Q4_0|...] [--embd N] [--ff N] [--layers N] [--heads N] [--kv-heads N]
//     [--head-dim N] [--swa N] [--rope-base F] [--rope-linear FACTOR] [--rope-freqs] [--seed N]
// Weight matrices use --type (quantized with quant::quantize_row); the token
// embedding is Q8_0 (F16 when --type is F16); norms, biases and rope factors are F32.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "gguf/gguf.h"
#include "gguf/writer.h"
#include "quant/quant.h"

using namespace velo;

namespace {

int fail(const std::string& msg) {
  std::fprintf(stderr, "tool_make_random_model: %s\n", msg.c_str());
  return 1;
}

struct Gen {
  std::mt19937 rng;
  std::normal_distribution<float> nd{0.0f, 1.0f};
  std::vector<float> normal(size_t n, float mean, float stddev) {
    std::vector<float> v(n);
    for (auto& x : v) x = mean + stddev * nd(rng);
    return v;
  }
};

Status add_f32(gguf::Writer& w, const std::string& name, const std::vector<float>& v) {
  return w.add_tensor(name, GgmlType::F32, {v.size()},
                      std::span(reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4));
}

// rows x cols matrix (GGUF shape [cols, rows]) of N(0, 1/cols) values in `type`.
Status add_matrix(gguf::Writer& w, Gen& g, const std::string& name, GgmlType type, uint64_t rows, uint64_t cols,
                  float gain = 1.0f) {
  const auto rb = row_bytes(type, cols);
  if (!rb) return make_error(name + ": " + std::to_string(cols) + " columns are not whole " + type_name(type) + " blocks");
  std::vector<uint8_t> bytes(*rb * rows);
  const float sd = gain / std::sqrt(static_cast<float>(cols));
  for (uint64_t r = 0; r < rows; ++r) {
    const auto row = g.normal(cols, 0.0f, sd);
    VELO_TRY(quant::quantize_row(type, row.data(), bytes.data() + r * *rb, static_cast<int64_t>(cols)));
  }
  return w.add_tensor(name, type, {cols, rows}, bytes);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return fail("usage: tool_make_random_model VOCAB_SOURCE.gguf OUT.gguf [options]");
  std::string arch = "llama", type_s = "F16";
  int embd = 256, ff = 512, layers = 2, heads = 4, kv_heads = 2, head_dim = 0, swa = 0, seed = 1;
  float rope_base = 10000.0f, rope_linear = 0;
  bool rope_freqs = false;
  for (int i = 3; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--rope-freqs") { rope_freqs = true; continue; }
    if (i + 1 >= argc) return fail("missing value for " + k);
    const std::string v = argv[++i];
    if (k == "--arch") arch = v;
    else if (k == "--type") type_s = v;
    else if (k == "--embd") embd = std::atoi(v.c_str());
    else if (k == "--ff") ff = std::atoi(v.c_str());
    else if (k == "--layers") layers = std::atoi(v.c_str());
    else if (k == "--heads") heads = std::atoi(v.c_str());
    else if (k == "--kv-heads") kv_heads = std::atoi(v.c_str());
    else if (k == "--head-dim") head_dim = std::atoi(v.c_str());
    else if (k == "--swa") swa = std::atoi(v.c_str());
    else if (k == "--rope-base") rope_base = std::strtof(v.c_str(), nullptr);
    else if (k == "--rope-linear") rope_linear = std::strtof(v.c_str(), nullptr);
    else if (k == "--seed") seed = std::atoi(v.c_str());
    else return fail("unknown option " + k);
  }
  if (arch != "llama" && arch != "qwen2" && arch != "qwen3" && arch != "gemma3") return fail("unknown arch " + arch);
  const auto type = type_from_name(type_s);
  if (!type || !quant::can_quantize(*type)) return fail("unsupported type " + type_s);
  if (embd <= 0 || ff <= 0 || layers <= 0 || heads <= 0 || kv_heads <= 0 || heads % kv_heads) return fail("bad dims");
  if (head_dim == 0) head_dim = embd / heads;

  auto src = gguf::File::open(argv[1]);
  if (!src) return fail(src.message());
  const gguf::Value* toks = (*src)->find("tokenizer.ggml.tokens");
  if (!toks) return fail("vocabulary source has no tokenizer.ggml.tokens");
  const uint64_t vocab = toks->elems.size();

  gguf::Writer w;
  w.set("general.architecture", gguf::OwnedValue::string(arch));
  w.set("general.name", gguf::OwnedValue::string("random-" + arch + "-" + type_s));
  for (const auto& kv : (*src)->metadata())
    if (kv.key.starts_with("tokenizer.")) w.set(std::string(kv.key), gguf::OwnedValue::from(kv.value));
  const std::string a = arch + ".";
  w.set(a + "context_length", gguf::OwnedValue::u32(4096));
  w.set(a + "embedding_length", gguf::OwnedValue::u32(embd));
  w.set(a + "block_count", gguf::OwnedValue::u32(layers));
  w.set(a + "feed_forward_length", gguf::OwnedValue::u32(ff));
  w.set(a + "attention.head_count", gguf::OwnedValue::u32(heads));
  w.set(a + "attention.head_count_kv", gguf::OwnedValue::u32(kv_heads));
  w.set(a + "attention.key_length", gguf::OwnedValue::u32(head_dim));
  w.set(a + "attention.value_length", gguf::OwnedValue::u32(head_dim));
  w.set(a + "rope.dimension_count", gguf::OwnedValue::u32(head_dim));
  w.set(a + "rope.freq_base", gguf::OwnedValue::f32(rope_base));
  w.set(a + "attention.layer_norm_rms_epsilon", gguf::OwnedValue::f32(1e-6f));
  if (swa > 0) w.set(a + "attention.sliding_window", gguf::OwnedValue::u32(swa));
  if (rope_linear > 0) {
    w.set(a + "rope.scaling.type", gguf::OwnedValue::string("linear"));
    w.set(a + "rope.scaling.factor", gguf::OwnedValue::f32(rope_linear));
  }

  Gen g{std::mt19937(seed)};
  const uint64_t E = embd, F = ff, Q = static_cast<uint64_t>(heads) * head_dim, KV = static_cast<uint64_t>(kv_heads) * head_dim;
  const GgmlType emb_type = *type == GgmlType::F16 ? GgmlType::F16 : GgmlType::Q8_0;
  auto check = [](const Status& s) {
    if (!s) std::exit(fail(s.message()));
  };
  // Unit-variance input embeddings; gemma3 ties them to the output (and scales
  // its input by sqrt(n_embd)), so there they are smaller to keep logits spread ~4.
  const float emb_gain = arch == "gemma3" ? 4.0f : std::sqrt(static_cast<float>(E));
  check(add_matrix(w, g, "token_embd.weight", emb_type, vocab, E, emb_gain));
  check(add_f32(w, "output_norm.weight", g.normal(E, 1.0f, 0.1f)));
  if (arch != "gemma3") check(add_matrix(w, g, "output.weight", *type == GgmlType::F16 ? GgmlType::F16 : GgmlType::Q8_0, vocab, E, 4.0f));
  if (rope_freqs) {
    std::vector<float> f(head_dim / 2);
    for (size_t i = 0; i < f.size(); ++i) f[i] = 1.0f + 7.0f * static_cast<float>(i) / f.size();
    check(add_f32(w, "rope_freqs.weight", f));
  }
  for (int il = 0; il < layers; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    check(add_f32(w, p + "attn_norm.weight", g.normal(E, 1.0f, 0.1f)));
    check(add_matrix(w, g, p + "attn_q.weight", *type, Q, E, 2.0f));
    check(add_matrix(w, g, p + "attn_k.weight", *type, KV, E, 2.0f));
    check(add_matrix(w, g, p + "attn_v.weight", *type, KV, E));
    if (arch == "qwen2") {
      check(add_f32(w, p + "attn_q.bias", g.normal(Q, 0.0f, 0.1f)));
      check(add_f32(w, p + "attn_k.bias", g.normal(KV, 0.0f, 0.1f)));
      check(add_f32(w, p + "attn_v.bias", g.normal(KV, 0.0f, 0.1f)));
    }
    if (arch == "qwen3" || arch == "gemma3") {
      check(add_f32(w, p + "attn_q_norm.weight", g.normal(head_dim, 1.0f, 0.1f)));
      check(add_f32(w, p + "attn_k_norm.weight", g.normal(head_dim, 1.0f, 0.1f)));
    }
    check(add_matrix(w, g, p + "attn_output.weight", *type, E, Q));
    if (arch == "gemma3") {
      check(add_f32(w, p + "post_attention_norm.weight", g.normal(E, 1.0f, 0.1f)));
      check(add_f32(w, p + "post_ffw_norm.weight", g.normal(E, 1.0f, 0.1f)));
    }
    check(add_f32(w, p + "ffn_norm.weight", g.normal(E, 1.0f, 0.1f)));
    check(add_matrix(w, g, p + "ffn_gate.weight", *type, F, E, 2.0f));
    check(add_matrix(w, g, p + "ffn_up.weight", *type, F, E));
    check(add_matrix(w, g, p + "ffn_down.weight", *type, E, F));
  }
  if (auto s = w.write(argv[2]); !s) return fail(s.message());
  return 0;
}
