#include "model/config.h"

#include <cmath>
#include <string_view>

namespace velo {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::Llama: return "llama";
    case Arch::Qwen2: return "qwen2";
    case Arch::Qwen3: return "qwen3";
    case Arch::Gemma3: return "gemma3";
  }
  return "?";
}

namespace {

// Bounds that keep every derived size far from overflow and allocation sane.
constexpr int64_t kMaxDim = 1 << 20;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxVocab = 1 << 24;

class Keys {
 public:
  Keys(const gguf::File& f, std::string prefix) : f_(f), p_(std::move(prefix)) {}
  std::string key(std::string_view k) const { return p_ + "." + std::string(k); }

  // A required positive integer in [1, max].
  Result<int32_t> need(std::string_view k, int64_t max) const {
    auto v = f_.get_uint(key(k));
    if (!v) return make_error("model: " + v.message());
    return check(k, static_cast<int64_t>(*v), max);
  }
  Result<int32_t> opt(std::string_view k, int64_t fallback, int64_t max) const {
    if (!f_.find(key(k))) return static_cast<int32_t>(fallback);
    return need(k, max);
  }
  // An optional float; `fallback` when absent.
  Result<float> optf(std::string_view k, double fallback) const {
    auto v = f_.get_float_or(key(k), fallback);
    if (!v) return make_error("model: " + v.message());
    if (!std::isfinite(*v)) return make_error("model: key '" + key(k) + "' is not finite");
    return static_cast<float>(*v);
  }

 private:
  Result<int32_t> check(std::string_view k, int64_t v, int64_t max) const {
    if (v < 1 || v > max)
      return make_error("model: key '" + key(k) + "' = " + std::to_string(v) + " is out of range [1, " +
                        std::to_string(max) + "]");
    return static_cast<int32_t>(v);
  }
  const gguf::File& f_;
  std::string p_;
};

Result<Arch> parse_arch(std::string_view s) {
  if (s == "llama") return Arch::Llama;
  if (s == "qwen2") return Arch::Qwen2;
  if (s == "qwen3") return Arch::Qwen3;
  if (s == "gemma3") return Arch::Gemma3;
  return make_error("unsupported model architecture '" + std::string(s) +
                    "' (supported: llama, qwen2, qwen3, gemma3)");
}

// Which layers use the sliding window: an explicit per-layer array, or a
// period n where every n-th layer (il % n == n-1) is global.
Status parse_swa_layers(const gguf::File& f, const Keys& k, ModelConfig& c) {
  c.layer_swa.assign(c.n_layer, 0);
  if (c.sliding_window <= 0) return {};
  const std::string pat_key = k.key("attention.sliding_window_pattern");
  const gguf::Value* pat = f.find(pat_key);
  if (pat && pat->type == gguf::ValueType::ARRAY) {
    if (pat->elems.size() < static_cast<size_t>(c.n_layer))
      return make_error("model: key '" + pat_key + "' has fewer entries than layers");
    for (int32_t il = 0; il < c.n_layer; ++il) c.layer_swa[il] = pat->elems[il].num.u != 0;
    return {};
  }
  VELO_ASSIGN_OR_RETURN(int32_t period, k.opt("attention.sliding_window_pattern", 6, kMaxLayers));
  for (int32_t il = 0; il < c.n_layer; ++il) c.layer_swa[il] = (il % period) < (period - 1);
  return {};
}

}  // namespace

Result<ModelConfig> parse_config(const gguf::File& f) {
  auto arch_s = f.get_string("general.architecture");
  if (!arch_s) return make_error("model: " + arch_s.message());
  ModelConfig c;
  VELO_ASSIGN_OR_RETURN(c.arch, parse_arch(*arch_s));
  if (auto n = f.get_string("general.name"); n.ok()) c.name = std::string(*n);
  const Keys k(f, std::string(*arch_s));

  VELO_ASSIGN_OR_RETURN(c.n_embd, k.need("embedding_length", kMaxDim));
  VELO_ASSIGN_OR_RETURN(c.n_layer, k.need("block_count", kMaxLayers));
  VELO_ASSIGN_OR_RETURN(c.n_ff, k.need("feed_forward_length", kMaxDim));
  VELO_ASSIGN_OR_RETURN(c.n_head, k.need("attention.head_count", kMaxDim));
  VELO_ASSIGN_OR_RETURN(c.n_head_kv, k.opt("attention.head_count_kv", c.n_head, kMaxDim));
  VELO_ASSIGN_OR_RETURN(c.n_ctx_train, k.opt("context_length", 2048, int64_t{1} << 24));
  if (c.n_head % c.n_head_kv != 0)
    return make_error("model: attention.head_count (" + std::to_string(c.n_head) +
                      ") is not a multiple of head_count_kv (" + std::to_string(c.n_head_kv) + ")");
  VELO_ASSIGN_OR_RETURN(c.head_dim, k.opt("attention.key_length", c.n_embd / c.n_head, 4096));
  VELO_ASSIGN_OR_RETURN(int32_t v_dim, k.opt("attention.value_length", c.head_dim, 4096));
  if (v_dim != c.head_dim)
    return make_error("model: attention.value_length != key_length is not supported");
  if (c.head_dim % 16 != 0)
    return make_error("model: head dimension " + std::to_string(c.head_dim) + " is not a multiple of 16 (unsupported)");
  VELO_ASSIGN_OR_RETURN(c.n_rot, k.opt("rope.dimension_count", c.head_dim, c.head_dim));
  if (c.n_rot % 2 != 0) return make_error("model: key '" + k.key("rope.dimension_count") + "' is odd");

  // Vocabulary size: <arch>.vocab_size, else the tokenizer's token list (checked against token_embd later).
  if (f.find(k.key("vocab_size"))) {
    VELO_ASSIGN_OR_RETURN(c.n_vocab, k.need("vocab_size", kMaxVocab));
  } else if (const gguf::Value* toks = f.find("tokenizer.ggml.tokens")) {
    c.n_vocab = static_cast<int32_t>(std::min<size_t>(toks->elems.size(), kMaxVocab));
  }

  VELO_ASSIGN_OR_RETURN(c.norm_eps, k.optf("attention.layer_norm_rms_epsilon", 1e-5));
  if (!(c.norm_eps > 0)) return make_error("model: RMSNorm epsilon must be positive");
  VELO_ASSIGN_OR_RETURN(c.rope_base, k.optf("rope.freq_base", 10000.0));
  VELO_ASSIGN_OR_RETURN(c.rope_base_swa, k.optf("rope.freq_base_swa", 10000.0));
  if (!(c.rope_base > 0) || !(c.rope_base_swa > 0)) return make_error("model: rope.freq_base must be positive");

  // RoPE scaling: linear (positions divided by factor) or llama3 (per-frequency factors).
  if (const gguf::Value* st = f.find(k.key("rope.scaling.type"))) {
    if (st->type != gguf::ValueType::STRING) return make_error("model: rope.scaling.type is not a string");
    VELO_ASSIGN_OR_RETURN(c.rope_factor, k.optf("rope.scaling.factor", 1.0));
    if (!(c.rope_factor > 0)) return make_error("model: rope.scaling.factor must be positive");
    if (st->str == "none") {
      c.rope_scaling = RopeScaling::None;
    } else if (st->str == "linear") {
      c.rope_scaling = RopeScaling::Linear;
      c.rope_freq_scale = 1.0f / c.rope_factor;
    } else if (st->str == "llama3") {
      c.rope_scaling = RopeScaling::Llama3;
      VELO_ASSIGN_OR_RETURN(c.rope_low_freq, k.optf("rope.scaling.low_freq_factor", 1.0));
      VELO_ASSIGN_OR_RETURN(c.rope_high_freq, k.optf("rope.scaling.high_freq_factor", 4.0));
      VELO_ASSIGN_OR_RETURN(c.rope_orig_ctx, k.opt("rope.scaling.original_context_length", 8192, 1 << 24));
      if (!(c.rope_high_freq > c.rope_low_freq)) return make_error("model: llama3 rope high_freq_factor <= low_freq_factor");
    } else {
      return make_error("unsupported rope scaling type '" + std::string(st->str) + "'");
    }
  }

  VELO_ASSIGN_OR_RETURN(c.attn_softcap, k.optf("attn_logit_softcapping", 0.0));
  VELO_ASSIGN_OR_RETURN(c.final_softcap, k.optf("final_logit_softcapping", 0.0));
  if (c.attn_softcap < 0 || c.final_softcap < 0) return make_error("model: soft-capping values must be >= 0");
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

  switch (c.arch) {
    case Arch::Llama: c.rope_layout = cpu::RopeLayout::Norm; break;
    case Arch::Qwen2:
    case Arch::Qwen3: c.rope_layout = cpu::RopeLayout::Neox; break;
    case Arch::Gemma3:
      c.rope_layout = cpu::RopeLayout::Neox;
      c.embd_scale = std::sqrt(static_cast<float>(c.n_embd));
      // Gemma scales q by 1/sqrt(head_dim) (27B: 1/sqrt(n_embd/n_head)) and uses scale 1 in softmax.
      c.query_pre_scale = c.n_layer == 62 ? 1.0f / std::sqrt(static_cast<float>(c.n_embd / c.n_head))
                                          : 1.0f / std::sqrt(static_cast<float>(c.head_dim));
      c.attn_scale = 1.0f;
      if (auto w = f.get_uint_or(k.key("attention.sliding_window"), 0); !w) {
        return make_error("model: " + w.message());
      } else if (*w > (uint64_t{1} << 24)) {
        return make_error("model: key '" + k.key("attention.sliding_window") + "' is out of range");
      } else {
        c.sliding_window = static_cast<int32_t>(*w);
      }
      break;
  }
  // Mistral-style sliding window on llama-family files is not modelled; refuse rather than be wrong.
  if (c.arch != Arch::Gemma3 && f.find(k.key("attention.sliding_window")))
    return make_error("unsupported: attention.sliding_window on a " + std::string(arch_name(c.arch)) + " model");
  VELO_TRY(parse_swa_layers(f, k, c));
  return c;
}

}  // namespace velo
