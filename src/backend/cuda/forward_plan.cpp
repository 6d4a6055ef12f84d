#include "backend/cuda/forward_plan.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "backend/cuda/device_model.h"
#include "backend/cuda/devices.h"

namespace velo::cuda {
namespace {

// Left free for the CUDA context, cuBLAS's own allocations and fragmentation.
constexpr uint64_t kReserveBytes = uint64_t{768} << 20;
// Bound on the prefill attention's score matrix (n_heads x chunk x ctx floats + fp16 P).
constexpr uint64_t kPrefillScoreBytes = uint64_t{512} << 20;

std::string gib(uint64_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f GiB", static_cast<double>(b) / 1073741824.0);
  return s;
}

}  // namespace

ForwardShape::ForwardShape(const ModelConfig& c, const TransformerLimits& l) : cfg(c), lim(l) {
  max_blocks = (lim.ctx_size + lim.block_size - 1) / lim.block_size;
  const uint64_t per_query = static_cast<uint64_t>(c.n_head) * static_cast<uint64_t>(lim.ctx_size) * 6;
  int64_t chunk = static_cast<int64_t>(kPrefillScoreBytes / std::max<uint64_t>(per_query, 1));
  chunk = std::clamp<int64_t>(chunk, 16, 512);
  // The fused kernel materialises no score matrix, and one call over the whole chunk fills
  // the GPU better than several (measured: 6.4 vs 10.9 ms for a 2048-token 8B prompt).
  const bool flash = PrefillAttention::resolve(attn_args(false), PrefillPath::Auto) == PrefillPath::Flash &&
                     (c.sliding_window <= 0 ||
                      PrefillAttention::resolve(attn_args(true), PrefillPath::Auto) == PrefillPath::Flash);
  if (flash) chunk = lim.max_batch_tokens;
  prefill_chunk = static_cast<int32_t>(std::min<int64_t>(chunk, lim.max_batch_tokens));
}

AttnArgs ForwardShape::attn_args(bool swa) const {
  return AttnArgs{cfg.n_head, cfg.n_head_kv, cfg.head_dim, cfg.attn_scale, cfg.attn_softcap,
                  swa ? cfg.sliding_window : 0};
}

cpu::RopeParams ForwardShape::rope_params(bool swa, const float* freq_factors) const {
  if (swa) return cpu::RopeParams{cfg.n_rot, cfg.rope_base_swa, 1.0f, nullptr, cfg.rope_layout};
  return cpu::RopeParams{cfg.n_rot, cfg.rope_base, cfg.rope_freq_scale, freq_factors, cfg.rope_layout};
}

uint64_t ForwardShape::rope_table_bytes() const {
  const uint64_t one = RopeTable::bytes(rope_params(false, nullptr), lim.ctx_size);
  return cfg.sliding_window > 0 ? 2 * one : one;
}

MatmulLimits ForwardShape::matmul_limits(const ModelWeights& w, int gpu_layers) const {
  MatmulLimits m;
  m.max_cols = std::max({cfg.n_embd, cfg.q_dim(), cfg.n_ff});
  m.max_tokens = std::max(lim.max_batch_tokens, lim.max_seqs);
  int64_t elems = 0;
  for (int il = 0; il < gpu_layers; ++il)
    for (const cpu::WeightMatrix* x : {&w.layers[il].wq, &w.layers[il].wk, &w.layers[il].wv, &w.layers[il].wo,
                                       &w.layers[il].w_gate, &w.layers[il].w_up, &w.layers[il].w_down})
      if (x->data && needs_dequant(x->type)) elems = std::max(elems, x->rows * x->cols);
  m.max_weight_elems = elems;
  return m;
}

int64_t ForwardShape::kv_layer_halves() const {
  return static_cast<int64_t>(lim.num_kv_blocks) * lim.block_size * cfg.kv_dim();
}
uint64_t ForwardShape::kv_bytes(int gpu_layers) const {
  return static_cast<uint64_t>(gpu_layers) * 2 * static_cast<uint64_t>(kv_layer_halves()) * sizeof(uint16_t);
}

uint64_t ForwardShape::act_bytes() const {
  const uint64_t T = lim.max_batch_tokens, S = lim.max_seqs;
  const uint64_t floats = T * (3 * uint64_t(cfg.n_embd) + 2 * uint64_t(cfg.q_dim()) + 2 * uint64_t(cfg.kv_dim()) +
                               2 * uint64_t(cfg.n_ff)) +
                          S * (uint64_t(cfg.n_embd) + uint64_t(cfg.n_vocab));
  return floats * sizeof(float);
}
uint64_t ForwardShape::meta_bytes() const {
  const uint64_t T = lim.max_batch_tokens, S = lim.max_seqs;
  return (4 * T + S + S * uint64_t(max_blocks)) * sizeof(int32_t);
}
uint64_t ForwardShape::host_bytes() const {
  return meta_bytes() + (uint64_t(lim.max_batch_tokens) * cfg.n_embd + uint64_t(lim.max_seqs) * cfg.n_vocab) * 4;
}
uint64_t ForwardShape::paged_scratch_bytes() const {
  // The kernel splits keys more finely when fewer tokens fill the GPU, so the
  // scratch a step needs is not monotonic in its token count: take the largest.
  uint64_t b = 256;
  for (int32_t t = 1; t <= lim.max_batch_tokens; ++t)
    b = std::max(b, paged_attention_scratch_bytes(attn_args(false), t, lim.ctx_size));
  return b;
}

uint64_t ForwardShape::scratch_bytes(const ModelWeights& w, int gpu_layers) const {
  uint64_t b = act_bytes() + meta_bytes() + paged_scratch_bytes() + Matmul::scratch_bytes(matmul_limits(w, gpu_layers));
  b += rope_table_bytes();
  const int variants = cfg.sliding_window > 0 ? 2 : 1;
  b += variants * PrefillAttention::scratch_bytes(attn_args(false), prefill_chunk, lim.ctx_size);
  return b;
}

uint64_t ForwardShape::f16_cache_bytes(const ModelWeights& w, int gpu_layers) const {
  uint64_t b = 0;
  for (int il = 0; il < gpu_layers; ++il)
    for (const cpu::WeightMatrix* x : {&w.layers[il].wq, &w.layers[il].wk, &w.layers[il].wv, &w.layers[il].wo,
                                       &w.layers[il].w_gate, &w.layers[il].w_up, &w.layers[il].w_down})
      if (x->data && needs_dequant(x->type) && x->type != GgmlType::F32)
        b += (static_cast<uint64_t>(x->rows) * x->cols * 2 + 255) / 256 * 256;
  return b;
}

Result<MemoryPlan> plan_device_memory(const ModelConfig& cfg, const ModelWeights& w, const TransformerLimits& lim,
                                      const Placement& where) {
  std::string why;
  const auto devs = list_devices(&why);
  if (devs.empty()) return make_error("no CUDA GPU is usable (" + why + "); run with --device cpu");
  if (where.device < 0 || where.device >= static_cast<int>(devs.size()))
    return make_error("CUDA device " + std::to_string(where.device) + " does not exist (" +
                      std::to_string(devs.size()) + " found)");
  return plan_for_free_memory(cfg, w, lim, where, devs[where.device].free_bytes);
}

Result<MemoryPlan> plan_for_free_memory(const ModelConfig& cfg, const ModelWeights& w, const TransformerLimits& lim,
                                        const Placement& where, uint64_t free_b) {
  for (const auto& L : w.layers)
    for (const cpu::WeightMatrix* x : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
      if (x->data && !matmul_supported(x->type))
        return make_error("the CUDA backend cannot multiply " + type_name(x->type) + " weights; run with --device cpu");
  if (!matmul_supported(w.output.type) || !matmul_supported(w.tok_embd.type))
    return make_error("the CUDA backend cannot use " + type_name(w.output.type) + " output weights; run with --device cpu");

  const ForwardShape shape(cfg, lim);
  auto plan_for = [&](int n) {
    MemoryPlan p;
    p.gpu_layers = n;
    p.head_on_gpu = n == cfg.n_layer;
    p.weight_bytes = device_model_bytes(cfg, w, n, p.head_on_gpu);
    p.kv_bytes = shape.kv_bytes(n);
    p.scratch_bytes = shape.scratch_bytes(w, n);
    p.free_bytes = free_b;
    return p;
  };
  auto fits = [&](const MemoryPlan& p) { return p.total() + kReserveBytes <= free_b; };
  int most = -1;  // most layers that fit
  for (int n = cfg.n_layer; n >= 0; --n)
    if (fits(plan_for(n))) {
      most = n;
      break;
    }

  // With room to spare, F16 copies of the quantized weights make prompt and batched
  // steps run at the speed of an F16 model (no dequantization per step).
  auto with_cache = [&](MemoryPlan p) {
    const uint64_t c = where.f16_cache ? shape.f16_cache_bytes(w, p.gpu_layers) : 0;
    if (c > 0 && p.total() + c + kReserveBytes <= free_b) p.f16_cache_bytes = c;
    return p;
  };
  if (where.gpu_layers < 0) {  // autopilot: everything that fits
    if (most <= 0)
      return make_error("the model does not fit on cuda:" + std::to_string(where.device) + " (" + gib(free_b) +
                        " free; one layer with its scratch needs " + gib(plan_for(1).total()) +
                        "); run with --device cpu or a smaller --ctx-size");
    return with_cache(plan_for(most));
  }
  const int n = std::min(where.gpu_layers, cfg.n_layer);
  MemoryPlan p = plan_for(n);
  if (!fits(p)) {
    std::string hint = most > 0 ? "use --gpu-layers " + std::to_string(most) + " (the most that fit)"
                                : "use --device cpu";
    return make_error("the model needs " + gib(p.total() + kReserveBytes) + " on cuda:" + std::to_string(where.device) +
                      " for " + std::to_string(n) + " layers (weights " + gib(p.weight_bytes) + ", KV cache " +
                      gib(p.kv_bytes) + ", scratch " + gib(p.scratch_bytes) + ") but " + gib(free_b) +
                      " is free; " + hint + ", or a smaller --ctx-size");
  }
  return with_cache(p);
}

}  // namespace velo::cuda
