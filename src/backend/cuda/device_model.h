// A model's weights in device memory: the layers placed on the GPU and, when
// all of them are, the embeddings and the LM head. One allocation holds every
// tensor (256-byte aligned), uploaded once at load through pinned staging
// buffers; matrices keep their GGUF block layout.
#pragma once
#include <cstdint>
#include <vector>

#include "backend/cuda/common.h"
#include "backend/cuda/matmul.h"
#include "model/config.h"
#include "model/weights.h"

namespace velo::cuda {

struct DevLayer {
  const float* attn_norm = nullptr;           // [n_embd]
  DevMatrix wq, wk, wv;                       // [q_dim x n_embd], [kv_dim x n_embd] x2
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr;  // [q_dim], [kv_dim] x2 or null
  const float *q_norm = nullptr, *k_norm = nullptr;         // [head_dim] or null
  DevMatrix wo;                               // [n_embd x q_dim]
  const float* post_attn_norm = nullptr;      // [n_embd] or null
  const float* ffn_norm = nullptr;            // [n_embd]
  DevMatrix w_gate, w_up;                     // [n_ff x n_embd]
  DevMatrix w_down;                           // [n_embd x n_ff]
  const float* post_ffn_norm = nullptr;       // [n_embd] or null
};

struct DevModel {
  DeviceBuffer arena;               // every tensor below points into it
  std::vector<DevLayer> layers;     // [gpu_layers]
  bool head = false;                // tok_embd, output_norm, output are set
  DevMatrix tok_embd, output;       // [n_vocab x n_embd] (output == tok_embd when tied)
  const float* output_norm = nullptr;
  const float* rope_freqs = nullptr;  // [n_rot/2] or null
};

// Bytes upload_model() will allocate for the first gpu_layers layers (+ the head).
uint64_t device_model_bytes(const ModelConfig& cfg, const ModelWeights& w, int gpu_layers, bool head);

// Copies the tensors to the device, printing progress to stderr when `progress`.
Result<DevModel> upload_model(const ModelConfig& cfg, const ModelWeights& w, int gpu_layers, bool head,
                              cudaStream_t stream, bool progress);

}  // namespace velo::cuda
