#include "model/weights.h"

#include <cmath>
#include <string>

#include "quant/quant.h"

namespace velo {
namespace {

std::string dims(const gguf::TensorInfo& t) {
  std::string s = "[";
  for (size_t i = 0; i < t.ne.size(); ++i) s += (i ? ", " : "") + std::to_string(t.ne[i]);
  return s + "]";
}

// Trailing dimensions of 1 do not change a tensor's shape.
bool shape_is(const gguf::TensorInfo& t, std::initializer_list<uint64_t> want) {
  size_t i = 0;
  for (uint64_t w : want) {
    const uint64_t have = i < t.ne.size() ? t.ne[i] : 1;
    if (have != w) return false;
    ++i;
  }
  for (; i < t.ne.size(); ++i)
    if (t.ne[i] != 1) return false;
  return true;
}

class Binder {
 public:
  Binder(const gguf::File& f, ModelWeights& w) : f_(f), w_(w) {}

  Result<const gguf::TensorInfo*> find(const std::string& name, std::initializer_list<uint64_t> shape,
                                       bool required) {
    const gguf::TensorInfo* t = f_.find_tensor(name);
    if (!t) {
      if (!required) return static_cast<const gguf::TensorInfo*>(nullptr);
      return make_error("model: missing tensor '" + name + "'");
    }
    if (!shape_is(*t, shape)) {
      std::string want = "[";
      size_t i = 0;
      for (uint64_t d : shape) want += (i++ ? ", " : "") + std::to_string(d);
      return make_error("model: tensor '" + name + "' has shape " + dims(*t) + ", expected " + want + "]");
    }
    if (!t->data) return make_error("model: tensor '" + name + "' has no data");
    return t;
  }

  // A weight matrix of `rows` x `cols` (GGUF shape [cols, rows]) that matmul can multiply.
  Result<cpu::WeightMatrix> matrix(const std::string& name, int64_t rows, int64_t cols, bool required = true) {
    VELO_ASSIGN_OR_RETURN(const gguf::TensorInfo* t,
                          find(name, {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)}, required));
    if (!t) return cpu::WeightMatrix{GgmlType::F32, nullptr, 0, 0};
    if (!cpu::matmul_supported(t->type))
      return make_error("model: tensor '" + name + "' has type " + type_name(t->type) + ", which is not supported");
    if (!row_bytes(t->type, static_cast<uint64_t>(cols)))
      return make_error("model: tensor '" + name + "' rows are not a whole number of " + type_name(t->type) + " blocks");
    return cpu::WeightMatrix{t->type, t->data, rows, cols};
  }

  // A vector of n values, copied to F32; null when optional and absent.
  Result<const float*> vec(const std::string& name, int64_t n, bool required = true) {
    VELO_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, find(name, {static_cast<uint64_t>(n)}, required));
    if (!t) return static_cast<const float*>(nullptr);
    if (!quant::can_dequantize(t->type))
      return make_error("model: tensor '" + name + "' has type " + type_name(t->type) + ", which is not supported");
    auto buf = std::make_unique<float[]>(n);
    if (auto st = quant::dequantize_row(t->type, t->data, buf.get(), n); !st)
      return make_error("model: tensor '" + name + "': " + st.message());
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(buf[i])) return make_error("model: tensor '" + name + "' contains NaN or Inf");
    w_.owned.push_back(std::move(buf));
    return static_cast<const float*>(w_.owned.back().get());
  }

 private:
  const gguf::File& f_;
  ModelWeights& w_;
};

// llama3 per-frequency divisors, for files that give the scaling in metadata
// instead of a rope_freqs tensor: low frequencies are slowed by `factor`,
// high ones kept, and the band between is blended smoothly.
const float* llama3_factors(const ModelConfig& c, ModelWeights& w) {
  const int n = c.n_rot / 2;
  auto buf = std::make_unique<float[]>(n);
  const double low_wavelen = c.rope_orig_ctx / c.rope_low_freq;
  const double high_wavelen = c.rope_orig_ctx / c.rope_high_freq;
  for (int i = 0; i < n; ++i) {
    const double freq = std::pow(static_cast<double>(c.rope_base), -2.0 * i / c.n_rot);
    const double wavelen = 2 * M_PI / freq;
    double f = 1.0;
    if (wavelen > low_wavelen) {
      f = c.rope_factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (c.rope_orig_ctx / wavelen - c.rope_low_freq) / (c.rope_high_freq - c.rope_low_freq);
      f = 1.0 / ((1 - smooth) / c.rope_factor + smooth);
    }
    buf[i] = static_cast<float>(f);
  }
  w.owned.push_back(std::move(buf));
  return w.owned.back().get();
}

}  // namespace

Result<ModelWeights> bind_weights(const gguf::File& f, ModelConfig& c) {
  ModelWeights w;
  Binder b(f, w);
  const gguf::TensorInfo* emb = f.find_tensor("token_embd.weight");
  if (!emb) return make_error("model: missing tensor 'token_embd.weight'");
  if (emb->ne.size() < 2 || emb->ne[1] == 0 || emb->ne[1] > (1u << 24))
    return make_error("model: tensor 'token_embd.weight' has shape " + dims(*emb) + ", expected [" +
                      std::to_string(c.n_embd) + ", n_vocab]");
  if (c.n_vocab != 0 && static_cast<uint64_t>(c.n_vocab) != emb->ne[1])
    return make_error("model: tensor 'token_embd.weight' has " + std::to_string(emb->ne[1]) +
                      " rows but the vocabulary has " + std::to_string(c.n_vocab) + " tokens");
  c.n_vocab = static_cast<int32_t>(emb->ne[1]);
  const int64_t E = c.n_embd, V = c.n_vocab, Q = c.q_dim(), KV = c.kv_dim(), F = c.n_ff, D = c.head_dim;

  VELO_ASSIGN_OR_RETURN(w.tok_embd, b.matrix("token_embd.weight", V, E));
  if (!quant::can_dequantize(w.tok_embd.type))
    return make_error("model: tensor 'token_embd.weight' has type " + type_name(w.tok_embd.type) +
                      ", which is not supported");
  VELO_ASSIGN_OR_RETURN(w.output_norm, b.vec("output_norm.weight", E));
  VELO_ASSIGN_OR_RETURN(w.output, b.matrix("output.weight", V, E, /*required=*/false));
  if (!w.output.data) {  // tied embeddings
    w.output = w.tok_embd;
    w.tied_output = true;
  }
  VELO_ASSIGN_OR_RETURN(w.rope_freqs, b.vec("rope_freqs.weight", c.n_rot / 2, /*required=*/false));
  if (!w.rope_freqs && c.rope_scaling == RopeScaling::Llama3) w.rope_freqs = llama3_factors(c, w);

  const bool qk_norm = c.arch == Arch::Qwen3 || c.arch == Arch::Gemma3;
  const bool post_norms = c.arch == Arch::Gemma3;
  const bool need_bias = c.arch == Arch::Qwen2;
  w.layers.resize(c.n_layer);
  for (int32_t il = 0; il < c.n_layer; ++il) {
    LayerWeights& l = w.layers[il];
    const std::string p = "blk." + std::to_string(il) + ".";
    VELO_ASSIGN_OR_RETURN(l.attn_norm, b.vec(p + "attn_norm.weight", E));
    VELO_ASSIGN_OR_RETURN(l.wq, b.matrix(p + "attn_q.weight", Q, E));
    VELO_ASSIGN_OR_RETURN(l.wk, b.matrix(p + "attn_k.weight", KV, E));
    VELO_ASSIGN_OR_RETURN(l.wv, b.matrix(p + "attn_v.weight", KV, E));
    VELO_ASSIGN_OR_RETURN(l.bq, b.vec(p + "attn_q.bias", Q, need_bias));
    VELO_ASSIGN_OR_RETURN(l.bk, b.vec(p + "attn_k.bias", KV, need_bias));
    VELO_ASSIGN_OR_RETURN(l.bv, b.vec(p + "attn_v.bias", KV, need_bias));
    if (qk_norm) {
      VELO_ASSIGN_OR_RETURN(l.q_norm, b.vec(p + "attn_q_norm.weight", D));
      VELO_ASSIGN_OR_RETURN(l.k_norm, b.vec(p + "attn_k_norm.weight", D));
    }
    VELO_ASSIGN_OR_RETURN(l.wo, b.matrix(p + "attn_output.weight", E, Q));
    if (post_norms) {
      VELO_ASSIGN_OR_RETURN(l.post_attn_norm, b.vec(p + "post_attention_norm.weight", E));
      VELO_ASSIGN_OR_RETURN(l.post_ffn_norm, b.vec(p + "post_ffw_norm.weight", E));
    }
    VELO_ASSIGN_OR_RETURN(l.ffn_norm, b.vec(p + "ffn_norm.weight", E));
    VELO_ASSIGN_OR_RETURN(l.w_gate, b.matrix(p + "ffn_gate.weight", F, E));
    VELO_ASSIGN_OR_RETURN(l.w_up, b.matrix(p + "ffn_up.weight", F, E));
    VELO_ASSIGN_OR_RETURN(l.w_down, b.matrix(p + "ffn_down.weight", E, F));
  }
  return w;
}

}  // namespace velo
