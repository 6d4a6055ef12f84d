// Weight binding: every tensor the forward pass reads, looked up by its GGUF
// name with type and shape checked against the ModelConfig. Matrices stay in
// the mmapped file; small vectors (norms, biases, rope factors) are copied to
// F32 so kernels never see another type.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/cpu/matmul.h"
#include "core/result.h"
#include "gguf/gguf.h"
#include "model/config.h"

namespace velo {

struct LayerWeights {
  const float* attn_norm = nullptr;     // [n_embd]
  cpu::WeightMatrix wq{}, wk{}, wv{};   // [q_dim x n_embd], [kv_dim x n_embd] x2
  const float* bq = nullptr;            // [q_dim]  (qwen2; optional elsewhere)
  const float* bk = nullptr;            // [kv_dim]
  const float* bv = nullptr;            // [kv_dim]
  const float* q_norm = nullptr;        // [head_dim] (qwen3, gemma3)
  const float* k_norm = nullptr;        // [head_dim]
  cpu::WeightMatrix wo{};               // [n_embd x q_dim]
  const float* post_attn_norm = nullptr;  // [n_embd] (gemma3)
  const float* ffn_norm = nullptr;      // [n_embd]
  cpu::WeightMatrix w_gate{}, w_up{};   // [n_ff x n_embd]
  cpu::WeightMatrix w_down{};           // [n_embd x n_ff]
  const float* post_ffn_norm = nullptr;   // [n_embd] (gemma3)
};

struct ModelWeights {
  cpu::WeightMatrix tok_embd{};         // [n_vocab x n_embd], rows dequantized on lookup
  const float* output_norm = nullptr;   // [n_embd]
  cpu::WeightMatrix output{};           // [n_vocab x n_embd]; tok_embd when tied
  bool tied_output = false;
  const float* rope_freqs = nullptr;    // [n_rot/2] angle divisors, or null
  std::vector<LayerWeights> layers;
  std::vector<std::unique_ptr<float[]>> owned;  // storage of the F32 copies above
};

// Binds the weights for `cfg` (whose n_vocab is set from token_embd). Errors
// name the tensor: missing, wrong shape, unsupported type, or bad data.
Result<ModelWeights> bind_weights(const gguf::File& f, ModelConfig& cfg);

}  // namespace velo
