// The forward pass on an NVIDIA GPU (plain C++ header: the runner includes it).
//
// Placement: layers [0, gpu_layers) run on the GPU with their weights and KV
// cache in device memory; when every layer is there, so are the token
// embeddings, the final norm and the LM head. Otherwise the remaining layers
// and the head run on the CPU backend (a cpu Transformer with first_layer =
// gpu_layers), the hidden state crossing once per step. Memory is planned
// before anything is allocated, so a card that is too small gives an error
// that says how many layers fit, never an out-of-memory crash mid-load.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/result.h"
#include "core/thread_pool.h"
#include "model/config.h"
#include "model/forward.h"
#include "model/weights.h"

namespace velo::cuda {

struct Placement {
  int device = 0;        // CUDA device index
  int gpu_layers = -1;   // -1: as many as fit (all when they do); else exactly this many
  bool graphs = true;    // capture decode steps into CUDA graphs
  bool f16_cache = true; // keep F16 copies of quantized weights for prompt/batched steps when memory allows
  bool exact_order = false;  // steps of <= 8 tokens bit-identical to the CPU backend (matvec_q32.cu,
                             // paged_attention_exact.cu); off: the faster kernels, within tolerance
};

// Device bytes the model needs with the first `gpu_layers` layers on the GPU.
struct MemoryPlan {
  int gpu_layers = 0;        // layers placed (after resolving -1)
  bool head_on_gpu = false;  // embeddings + head on the GPU (all layers there)
  uint64_t weight_bytes = 0;
  uint64_t kv_bytes = 0;
  uint64_t scratch_bytes = 0;  // activations, matmul/attention scratch, cuBLAS workspaces
  uint64_t f16_cache_bytes = 0;  // F16 copies of the GPU layers' quantized matrices (0: none kept)
  uint64_t free_bytes = 0;     // what the device reported free
  uint64_t total() const { return weight_bytes + kv_bytes + scratch_bytes + f16_cache_bytes; }
};

// Resolves the placement against the device's free memory. Errors: no GPU, a
// gpu_layers count that does not fit (naming the count that would), an
// unsupported weight type.
Result<MemoryPlan> plan_memory(const ModelConfig& cfg, const ModelWeights& w, const TransformerLimits& lim,
                               const Placement& where);

// Uploads the weights and builds the forward pass. cfg, w and pool must outlive it.
Result<std::unique_ptr<Forward>> create_forward(const ModelConfig& cfg, const ModelWeights& w,
                                                const TransformerLimits& lim, const Placement& where,
                                                ThreadPool& pool);

}  // namespace velo::cuda
