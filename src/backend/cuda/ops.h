// Element-wise, row and attention kernels of the forward pass on the GPU.
// Each launcher only enqueues on `stream` (no allocation, no sync), and its
// grid depends only on the shapes given, never on data such as sequence
// lengths (those are read from device memory), so a decode step can be
// captured once into a CUDA graph and replayed. Numerics follow the CPU
// backend (src/backend/cpu/ops.h, attention.h), which is their oracle.
// One kernel per .cu file; all pointers are device pointers unless noted.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>

#include "backend/cpu/ops.h"
#include "backend/cuda/common.h"
#include "backend/cuda/matmul.h"

namespace velo::cuda {

// ---- rows ---------------------------------------------------------------
// y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * (w ? w : 1) for `rows` rows of n. x and y may alias.
void rmsnorm(const float* x, const float* w, float* y, int64_t rows, int n, float eps, cudaStream_t stream);
// Residual add fused with the next norm: x[r] += d[r]; then y[r] = rmsnorm(x[r]) * w.
// d_w (may be null): d[r] is first normed with d_w (gemma3's post-norms): x += rmsnorm(d) * d_w.
void add_rmsnorm(float* x, const float* d, const float* d_w, const float* w, float* y, int64_t rows, int n,
                 float eps, cudaStream_t stream);
// x[i] += y[i]
void add(float* x, const float* y, int64_t n, cudaStream_t stream);
// x[r][i] += b[i] for rows x n
void add_bias(float* x, const float* b, int64_t rows, int n, cudaStream_t stream);
// x[i] *= s
void scale(float* x, float s, int64_t n, cudaStream_t stream);
// x[i] = cap * tanh(x[i] / cap)
void softcap(float* x, float cap, int64_t n, cudaStream_t stream);

// out[r][i] = act(gate[r][i]) * up[r][i]; SiLU (llama, qwen) or tanh-GELU (gemma3, via the
// same fp16-table semantics as cpu::geglu). out may alias gate.
enum class Glu : uint8_t { SiLU, GeLU };
void glu(Glu kind, const float* gate, const float* up, float* out, int64_t rows, int n, cudaStream_t stream);

// x[t] = dequantized row tokens[t] of `table` * scale, for t < T (rows of table.cols floats).
void embed(const DevMatrix& table, const int32_t* tokens, int64_t T, float* x, float scale, cudaStream_t stream);

// ---- RoPE ---------------------------------------------------------------
struct RopeArgs {
  int n_rot = 0;                  // rotated dims per head (even, <= head_dim)
  bool neox = false;              // false: adjacent pairs (llama); true: halves (qwen, gemma)
  const float* table = nullptr;   // device [max_pos][n_rot]: cos, sin of pair i at 2i, 2i+1
  int max_pos = 0;
};
// The cos/sin table of one RoPE variant for positions [0, max_pos), computed on the host by
// cpu::rope_cos_sin itself (so the GPU uses the CPU's libm roundings) and uploaded once.
class RopeTable {
 public:
  static uint64_t bytes(const cpu::RopeParams& p, int max_pos);
  static Result<RopeTable> build(const cpu::RopeParams& p, int max_pos);
  const RopeArgs& args() const { return args_; }

 private:
  DeviceBuffer buf_;
  RopeArgs args_;
};
// Rotates, in place, n_heads heads of head_dim at x + t*row_stride for each token t < T at
// position pos[t] (< a.max_pos): bit-identical to cpu::rope_apply with cpu::rope_cos_sin.
void rope(const RopeArgs& a, const int32_t* pos, float* x, int64_t T, int n_heads, int head_dim,
          int64_t row_stride, cudaStream_t stream);

// ---- paged KV cache -------------------------------------------------------
// One layer's K and V: [num_blocks][block_size][n_kv_heads][head_dim] fp16 bits, like cpu::KvLayerView.
struct KvLayer {
  uint16_t* k = nullptr;
  uint16_t* v = nullptr;
  int block_size = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
};
// Stores token t's K and V rows (f32, row t at k + t*stride, n_kv_heads*head_dim values) at
// physical slot slots[t] (= block * block_size + offset), rounding to fp16.
void kv_store(const KvLayer& kv, const int32_t* slots, const float* k, const float* v, int64_t T,
              int64_t stride, cudaStream_t stream);

// The decode step's rope(q), rope(k), q *= q_scale and kv_store(k, v) in one launch, bit for
// bit those kernels in that order: q (token t at q + t*q_stride, n_heads heads of
// kv.head_dim) rotated in place and then, unless q_scale == 1, scaled; k (row t at
// k + t*kv_stride, kv.n_kv_heads heads) rotated in place; k and v stored at slots[t] as
// fp16 (a negative slot skips the store). A programmatic dependent launch (it waits for
// the kernel before it ahead of any access). kv.head_dim must be even.
void rope_store(const RopeArgs& a, const int32_t* pos, float* q, int n_heads, int64_t q_stride, float q_scale,
                float* k, const float* v, int64_t kv_stride, const KvLayer& kv, const int32_t* slots, int64_t T,
                cudaStream_t stream);

// ---- attention ------------------------------------------------------------
struct AttnArgs {
  int n_heads = 0;
  int n_kv_heads = 0;    // n_heads % n_kv_heads == 0
  int head_dim = 0;      // multiple of 16, <= 256
  float scale = 1.0f;    // applied to q.k after the soft cap
  float softcap = 0.0f;  // 0: none
  int window = 0;        // 0: causal; else query at p sees keys p-window+1 .. p
};
// Where each query token's keys are. Device arrays.
struct AttnBatch {
  const int32_t* tok_seq = nullptr;       // [T] sequence index of token t
  const int32_t* tok_pos = nullptr;       // [T] position of token t (its keys are positions <= it)
  const int32_t* block_tables = nullptr;  // [n_seqs][max_blocks] physical block ids
  int max_blocks = 0;                     // row length of block_tables
  int step_tokens = 0;                    // query tokens of the whole step (> 1: the CPU sums in its
                                          // GEMM order); 0: this call's T
  bool exact_order = false;               // steps of <= 8 tokens in the CPU's exact float order
                                          // (paged_attention_exact.cu); else the split kernel
};
// Paged attention for T query tokens (decode tokens, or short prefill chunks), every head:
// out[t] (heads concatenated, row stride q_stride floats like q) = softmax(q.K^T) V over
// the token's visible keys, read through its sequence's block table. Numerics as
// cpu::paged_attention (q and the probabilities rounded to fp16, sums in f32).
// The keys of these tokens must already be stored. max_ctx bounds any position + 1
// (it fixes the grid, e.g. the number of key splits); `scratch` holds
// paged_attention_scratch_bytes(a, T, max_ctx) bytes (split-K partials).
void paged_attention(const AttnArgs& a, const KvLayer& kv, const AttnBatch& b, const float* q, float* out,
                     int64_t T, int64_t q_stride, int max_ctx, void* scratch, cudaStream_t stream);
uint64_t paged_attention_scratch_bytes(const AttnArgs& a, int64_t T, int max_ctx);

// Attention for one sequence's long prompt chunk on the tensor cores. Two implementations:
//   Flash   one fused kernel (attention_flash.cu): K/V tiles read from the paged cache,
//           online softmax, P = fp16(exp(s - running max)) normalised at the end; no
//           scratch. head_dim 64 and 128.
//   Cublas  K/V gathered into contiguous fp16, S = Q.K^T and O = P.V as cuBLAS batched
//           GEMMs (F16 in, F32 accumulate) with a causal (and window / soft-cap) softmax
//           between, rounding the normalised P to fp16 like the CPU; any head_dim.
// Auto picks Flash where it applies unless the environment sets VELO_PREFILL_ATTN=cublas.
// Shapes come from the host: run eagerly, not in graphs.
enum class PrefillPath : uint8_t { Auto, Flash, Cublas };
class PrefillAttention {
 public:
  // Scratch for up to max_tokens queries over up to max_ctx keys (none for Flash); cuBLAS
  // bound to `stream`. Asking for Flash where it does not apply is an error.
  static Result<std::unique_ptr<PrefillAttention>> create(const AttnArgs& a, int max_tokens, int max_ctx,
                                                          cudaStream_t stream, PrefillPath path = PrefillPath::Auto);
  static uint64_t scratch_bytes(const AttnArgs& a, int max_tokens, int max_ctx, PrefillPath path = PrefillPath::Auto);
  // The implementation `path` resolves to for these shapes (Flash or Cublas).
  static PrefillPath resolve(const AttnArgs& a, PrefillPath path);
  PrefillPath path() const;
  ~PrefillAttention();
  PrefillAttention(const PrefillAttention&) = delete;
  PrefillAttention& operator=(const PrefillAttention&) = delete;

  // n query tokens at positions start_pos .. start_pos+n-1 (rows of q / out, q_stride floats
  // apart, heads concatenated); keys 0 .. start_pos+n-1 through block_table (device, covering them).
  // The K/V of these n tokens must already be stored.
  void run(const KvLayer& kv, const int32_t* block_table, int start_pos, int n, const float* q, float* out,
           int64_t q_stride);

 private:
  struct Impl;
  explicit PrefillAttention(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace velo::cuda
