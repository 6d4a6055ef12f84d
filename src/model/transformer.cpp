#include "model/transformer.h"

#include <algorithm>
#include <climits>
#include <new>
#include <string>

#include "backend/cpu/matmul.h"
#include "backend/cpu/ops.h"
#include "quant/quant.h"

namespace velo {

using cpu::matmul;

Result<std::unique_ptr<Transformer>> Transformer::create(const ModelConfig& cfg, const ModelWeights& w,
                                                         const TransformerLimits& lim, ThreadPool& pool,
                                                         int32_t first_layer) {
  if (lim.max_batch_tokens < 1 || lim.max_seqs < 1 || lim.ctx_size < 1 || lim.block_size < 1 || lim.num_kv_blocks < 1)
    return make_error("transformer limits must be positive");
  if (first_layer < 0 || first_layer > cfg.n_layer) return make_error("first_layer out of range");
  // Row offsets inside activation buffers are computed in 32-bit ints.
  const int64_t widest = std::max({cfg.n_embd, cfg.n_ff, cfg.q_dim()});
  if (widest * lim.max_batch_tokens > INT32_MAX || static_cast<int64_t>(cfg.n_vocab) * lim.max_seqs > INT32_MAX)
    return make_error("max_batch_tokens or max_seqs too large for this model");
  std::unique_ptr<Transformer> t(new Transformer(cfg, w, lim, pool, first_layer));
  // At least one layer of storage keeps the cache valid when every layer runs elsewhere.
  VELO_ASSIGN_OR_RETURN(t->kv_, cpu::KvCache::create(std::max(1, cfg.n_layer - first_layer), lim.num_kv_blocks,
                                                     lim.block_size, cfg.n_head_kv, cfg.head_dim));
  t->rope_global_ = cpu::RopeParams{cfg.n_rot, cfg.rope_base, cfg.rope_freq_scale, w.rope_freqs, cfg.rope_layout};
  t->rope_swa_ = cpu::RopeParams{cfg.n_rot, cfg.rope_base_swa, 1.0f, nullptr, cfg.rope_layout};

  const size_t T = lim.max_batch_tokens, S = lim.max_seqs;
  try {
    t->tok_.resize(T);
    t->pos_.resize(T);
    t->tok_seq_.resize(T);
    t->x_.resize(T * cfg.n_embd);
    t->xb_.resize(T * cfg.n_embd);
    t->xb2_.resize(T * cfg.n_embd);
    t->q_.resize(T * cfg.q_dim());
    t->k_.resize(T * cfg.kv_dim());
    t->v_.resize(T * cfg.kv_dim());
    t->att_.resize(T * cfg.q_dim());
    t->hg_.resize(T * cfg.n_ff);
    t->hu_.resize(T * cfg.n_ff);
    t->cs_global_.resize(T * cfg.n_rot);
    if (cfg.sliding_window > 0) t->cs_swa_.resize(T * cfg.n_rot);
    t->attn_scratch_.resize(cpu::attention_scratch_floats(pool.size(), lim.ctx_size, cfg.head_dim));
    t->attn_seqs_.reserve(S);
    t->last_.resize(S * cfg.n_embd);
    t->logits_.resize(S * cfg.n_vocab);
  } catch (const std::bad_alloc&) {
    return make_error("out of memory allocating activation buffers: reduce max_batch_tokens or max_seqs");
  }
  return t;
}

template <class Fn>
void Transformer::for_rows(int32_t n, Fn&& fn) {
  if (n <= 1 || pool_.size() == 1) {
    for (int32_t r = 0; r < n; ++r) fn(r);
    return;
  }
  pool_.parallel_for(n, [&fn](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) fn(static_cast<int32_t>(r));
  });
}

void Transformer::layer(int32_t il, int32_t T) {
  const LayerWeights& L = w_.layers[il];
  const ModelConfig& c = cfg_;
  const int E = c.n_embd, QD = c.q_dim(), KVD = c.kv_dim(), D = c.head_dim, F = c.n_ff;
  const bool swa = c.is_swa(il);
  const cpu::RopeParams& rope = swa ? rope_swa_ : rope_global_;
  const float* cs = swa ? cs_swa_.data() : cs_global_.data();
  const cpu::KvLayerView kv = kv_.layer(il - first_layer_);

  // Attention input norm: xb = rmsnorm(x) * attn_norm                      [T, E]
  for_rows(T, [&](int32_t t) { cpu::rmsnorm(&x_[t * E], L.attn_norm, &xb_[t * E], E, c.norm_eps); });

  // Projections: q = xb Wq^T [T, QD], k = xb Wk^T, v = xb Wv^T [T, KVD]
  matmul(L.wq, xb_.data(), T, q_.data(), pool_);
  matmul(L.wk, xb_.data(), T, k_.data(), pool_);
  matmul(L.wv, xb_.data(), T, v_.data(), pool_);

  // Per token: biases (qwen2), per-head q/k RMSNorm (qwen3, gemma3), RoPE,
  // query pre-scale (gemma3), then K/V into the paged cache at the token's position.
  for_rows(T, [&](int32_t t) {
    float* q = &q_[t * QD];
    float* k = &k_[t * KVD];
    float* v = &v_[t * KVD];
    if (L.bq) cpu::add(q, L.bq, QD);
    if (L.bk) cpu::add(k, L.bk, KVD);
    if (L.bv) cpu::add(v, L.bv, KVD);
    if (L.q_norm) {
      for (int h = 0; h < c.n_head; ++h) cpu::rmsnorm(q + h * D, L.q_norm, q + h * D, D, c.norm_eps);
      for (int h = 0; h < c.n_head_kv; ++h) cpu::rmsnorm(k + h * D, L.k_norm, k + h * D, D, c.norm_eps);
    }
    cpu::rope_apply(rope, cs + static_cast<int64_t>(t) * c.n_rot, q, c.n_head, D);
    cpu::rope_apply(rope, cs + static_cast<int64_t>(t) * c.n_rot, k, c.n_head_kv, D);
    if (c.query_pre_scale != 1.0f) cpu::scale(q, c.query_pre_scale, QD);
    cpu::kv_store(kv, attn_seqs_[tok_seq_[t]].blocks, pos_[t], k, v);
  });

  // Causal attention of every sequence over its cached keys/values     att [T, QD]
  const cpu::AttnParams ap{c.n_head, c.n_head_kv, D, c.attn_scale, c.attn_softcap, swa ? c.sliding_window : 0};
  cpu::paged_attention(ap, kv, attn_seqs_, QD, QD, lim_.ctx_size, attn_scratch_.data(), pool_);

  // Output projection and residual: x += [post_norm](att Wo^T)          [T, E]
  matmul(L.wo, att_.data(), T, xb2_.data(), pool_);
  for_rows(T, [&](int32_t t) {
    if (L.post_attn_norm) cpu::rmsnorm(&xb2_[t * E], L.post_attn_norm, &xb2_[t * E], E, c.norm_eps);
    cpu::add(&x_[t * E], &xb2_[t * E], E);
    // FFN input norm: xb = rmsnorm(x) * ffn_norm                          [T, E]
    cpu::rmsnorm(&x_[t * E], L.ffn_norm, &xb_[t * E], E, c.norm_eps);
  });

  // Gated FFN: h = act(xb Wg^T) * (xb Wu^T)  [T, F];  x += [post_norm](h Wd^T)
  matmul(L.w_gate, xb_.data(), T, hg_.data(), pool_);
  matmul(L.w_up, xb_.data(), T, hu_.data(), pool_);
  const bool gelu = c.arch == Arch::Gemma3;
  for_rows(T, [&](int32_t t) {
    float* g = &hg_[static_cast<int64_t>(t) * F];
    const float* u = &hu_[static_cast<int64_t>(t) * F];
    if (gelu) cpu::geglu(g, u, g, F);
    else cpu::swiglu(g, u, g, F);
  });
  matmul(L.w_down, hg_.data(), T, xb2_.data(), pool_);
  for_rows(T, [&](int32_t t) {
    if (L.post_ffn_norm) cpu::rmsnorm(&xb2_[t * E], L.post_ffn_norm, &xb2_[t * E], E, c.norm_eps);
    cpu::add(&x_[t * E], &xb2_[t * E], E);
  });
}

std::string Transformer::describe() const { return "cpu (" + std::to_string(pool_.size()) + " threads)"; }

Result<std::span<const float>> Transformer::run(const StepPlan& plan, bool all_logits, const float* x_in) {
  VELO_TRY(validate_plan(plan, lim_, cfg_.n_vocab));
  const ModelConfig& c = cfg_;
  const int E = c.n_embd;

  // Flatten the plan: token ids, positions and owning sequence per row.
  int32_t T = 0;
  attn_seqs_.clear();
  for (size_t si = 0; si < plan.seqs.size(); ++si) {
    const ScheduledSeq& s = plan.seqs[si];
    const int32_t n = static_cast<int32_t>(s.tokens.size());
    attn_seqs_.push_back(cpu::AttnSeq{&q_[static_cast<int64_t>(T) * c.q_dim()],
                                      &att_[static_cast<int64_t>(T) * c.q_dim()], n, s.start_pos,
                                      s.block_table.data()});
    for (int32_t i = 0; i < n; ++i, ++T) {
      tok_[T] = s.tokens[i];
      pos_[T] = s.start_pos + i;
      tok_seq_[T] = static_cast<int32_t>(si);
    }
  }
  if (T == 0) return std::span<const float>();

  // Token embeddings (one dequantized row each), gemma scales by sqrt(n_embd).  x [T, E]
  const uint64_t row = *row_bytes(w_.tok_embd.type, E);
  const auto* emb = static_cast<const uint8_t*>(w_.tok_embd.data);
  // RoPE cos/sin per token position for the global (and sliding-window) base.  [T, n_rot]
  for_rows(T, [&](int32_t t) {
    // Cannot fail: the type was checked at load and E is a whole number of blocks.
    if (x_in) {
      std::copy_n(x_in + static_cast<int64_t>(t) * E, E, &x_[static_cast<int64_t>(t) * E]);
    } else {
      (void)quant::dequantize_row(w_.tok_embd.type, emb + tok_[t] * row, &x_[t * E], E);
      if (c.embd_scale != 1.0f) cpu::scale(&x_[t * E], c.embd_scale, E);
    }
    cpu::rope_cos_sin(rope_global_, pos_[t], &cs_global_[static_cast<int64_t>(t) * c.n_rot]);
    if (!cs_swa_.empty()) cpu::rope_cos_sin(rope_swa_, pos_[t], &cs_swa_[static_cast<int64_t>(t) * c.n_rot]);
  });

  for (int32_t il = first_layer_; il < c.n_layer; ++il) layer(il, T);

  // Final norm of the tokens that want logits (every token for forward_all).  h [n_out, E]
  float* h = last_.data();
  float* logits = logits_.data();
  int32_t n_out = 0;
  if (all_logits) {
    if (logits_all_.empty()) {
      try {
        logits_all_.resize(static_cast<size_t>(lim_.max_batch_tokens) * c.n_vocab);
      } catch (const std::bad_alloc&) {
        return make_error("out of memory allocating logits for every token");
      }
    }
    h = x_.data();
    logits = logits_all_.data();
    n_out = T;
  } else {
    int32_t end = 0;
    for (const auto& s : plan.seqs) {
      end += static_cast<int32_t>(s.tokens.size());
      if (s.need_logits) std::copy_n(&x_[(end - 1) * static_cast<int64_t>(E)], E, &last_[n_out++ * static_cast<int64_t>(E)]);
    }
  }
  if (n_out == 0) return std::span<const float>();
  for_rows(n_out, [&](int32_t i) { cpu::rmsnorm(&h[i * E], w_.output_norm, &h[i * E], E, c.norm_eps); });

  // LM head: logits = h Wout^T (+ final soft cap)                         [n_out, n_vocab]
  matmul(w_.output, h, n_out, logits, pool_);
  const int64_t n_logits = static_cast<int64_t>(n_out) * c.n_vocab;
  if (c.final_softcap > 0) cpu::softcap(logits, c.final_softcap, static_cast<int>(n_logits));
  return std::span<const float>(logits, n_logits);
}

}  // namespace velo
