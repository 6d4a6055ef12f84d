// Sizes of everything the GPU forward pass allocates, in one place, so the
// memory plan made before loading and the allocations made while loading
// cannot disagree.
#pragma once
#include <cstdint>

#include "backend/cuda/cuda_forward.h"
#include "backend/cuda/matmul.h"
#include "backend/cuda/ops.h"

namespace velo::cuda {

// A sequence with at least this many new tokens in a step takes the tensor-core
// (cuBLAS) attention path; shorter ones (decode) take the paged kernel.
constexpr int32_t kPrefillMinTokens = 32;

// Types the GEMM path dequantizes into its F16 scratch (F16/BF16 are used in place).
inline bool needs_dequant(GgmlType t) { return t != GgmlType::F16 && t != GgmlType::BF16; }

struct ForwardShape {
  ForwardShape(const ModelConfig& cfg, const TransformerLimits& lim);

  const ModelConfig& cfg;
  TransformerLimits lim;
  int32_t max_blocks = 0;     // block-table row length: ctx_size / block_size rounded up
  int32_t prefill_chunk = 0;  // queries per PrefillAttention call (bounds its S matrix)

  AttnArgs attn_args(bool swa) const;
  // RoPE of global (swa = false) or sliding-window layers; freq_factors: host [n_rot/2] or null.
  cpu::RopeParams rope_params(bool swa, const float* freq_factors) const;
  uint64_t rope_table_bytes() const;      // the cos/sin tables (RopeTable) of both variants
  MatmulLimits matmul_limits(const ModelWeights& w, int gpu_layers) const;

  int64_t kv_layer_halves() const;        // K (or V) of one layer
  uint64_t kv_bytes(int gpu_layers) const;
  uint64_t act_bytes() const;             // activations (device)
  uint64_t meta_bytes() const;            // per-step int32 metadata (device and pinned host)
  uint64_t host_bytes() const;            // pinned host: metadata + hidden state + logits
  uint64_t paged_scratch_bytes() const;
  uint64_t scratch_bytes(const ModelWeights& w, int gpu_layers) const;  // everything but weights and KV
  // F16 copies of the quantized matrices of layers [0, gpu_layers), each 256-byte aligned.
  uint64_t f16_cache_bytes(const ModelWeights& w, int gpu_layers) const;
};

// The plan for `where` when the device has `free_bytes` free (no device needed:
// the planner's decisions are tested on machines without a GPU).
Result<MemoryPlan> plan_for_free_memory(const ModelConfig& cfg, const ModelWeights& w, const TransformerLimits& lim,
                                        const Placement& where, uint64_t free_bytes);

// The plan for `where` against the device's free memory (see plan_memory()).
Result<MemoryPlan> plan_device_memory(const ModelConfig& cfg, const ModelWeights& w, const TransformerLimits& lim,
                                      const Placement& where);

}  // namespace velo::cuda
