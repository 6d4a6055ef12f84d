// ModelConfig: every hyperparameter the forward pass needs, read once from
// GGUF metadata (<arch>.* keys) and validated, so the forward pass never
// looks at strings or trusts a size it did not check.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend/cpu/ops.h"
#include "core/result.h"
#include "gguf/gguf.h"

namespace velo {

enum class Arch : uint8_t {
  Llama,   // Llama 2/3, Mistral, SmolLM2, velo-code: RMSNorm, SwiGLU, NORM rope
  Qwen2,   // llama + q/k/v biases, NEOX rope
  Qwen3,   // llama + per-head q/k RMSNorm before rope, NEOX rope
  Gemma3,  // pre+post norms, GeGLU, scaled embedding, sliding-window layers, NEOX rope
};
const char* arch_name(Arch a);

enum class RopeScaling : uint8_t { None, Linear, Llama3 };

struct ModelConfig {
  Arch arch = Arch::Llama;
  std::string name;             // general.name (may be empty)
  int32_t n_vocab = 0;
  int32_t n_ctx_train = 0;      // <arch>.context_length
  int32_t n_embd = 0;
  int32_t n_layer = 0;
  int32_t n_ff = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;
  int32_t head_dim = 0;         // <arch>.attention.key_length, default n_embd / n_head
  int32_t n_rot = 0;            // <arch>.rope.dimension_count, default head_dim
  float norm_eps = 1e-5f;       // RMSNorm epsilon

  // Rotary embedding
  cpu::RopeLayout rope_layout = cpu::RopeLayout::Norm;
  float rope_base = 10000.0f;      // global (or only) layers
  float rope_base_swa = 10000.0f;  // sliding-window layers (gemma3)
  float rope_freq_scale = 1.0f;    // 1 / rope.scaling.factor for linear scaling
  RopeScaling rope_scaling = RopeScaling::None;
  // llama3 scaling parameters (used when the file has no rope_freqs tensor).
  float rope_factor = 1.0f, rope_low_freq = 1.0f, rope_high_freq = 4.0f;
  int32_t rope_orig_ctx = 8192;

  // Attention
  float attn_scale = 0.0f;       // q.k multiplier; gemma3 pre-scales q instead
  float query_pre_scale = 1.0f;  // multiplies q before attention (gemma3: 1/sqrt(head_dim))
  float attn_softcap = 0.0f;     // 0: none
  float final_softcap = 0.0f;    // 0: none
  int32_t sliding_window = 0;    // 0: none
  std::vector<uint8_t> layer_swa;  // [n_layer] 1 where the layer uses the sliding window

  float embd_scale = 1.0f;       // gemma3: sqrt(n_embd)

  int32_t q_dim() const { return n_head * head_dim; }
  int32_t kv_dim() const { return n_head_kv * head_dim; }
  bool is_swa(int32_t il) const { return !layer_swa.empty() && layer_swa[il] != 0; }
};

// Reads and validates the configuration. Unsupported architectures and
// missing/out-of-range keys are one-line errors naming the key.
Result<ModelConfig> parse_config(const gguf::File& f);

}  // namespace velo
