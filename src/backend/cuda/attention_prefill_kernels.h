// Kernels of PrefillAttention (attention_prefill.cu), which runs the two
// GEMMs with cuBLAS in between. Internal to the CUDA backend.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/ops.h"

namespace velo::cuda::prefill {

// Gathers keys [k0, k1) of one sequence from the paged cache into contiguous
// fp16 kc / vc [n_kv_heads][ctx_stride][head_dim] (key j at row j), and converts
// its n query rows to fp16 qh [n_kv_heads][n][group][head_dim] (the q heads of
// one kv head adjacent, so that S for a kv head is one GEMM of n*group rows).
void gather(const KvLayer& kv, const int32_t* block_table, int k0, int k1, int ctx_stride, const float* q,
            int64_t q_stride, int n, int n_heads, uint16_t* qh, uint16_t* kc, uint16_t* vc, cudaStream_t stream);

// One tile of query tokens: S = Q.K^T for keys key0 .. key0+width-1, rows
// (kv head, token, group) at s + kvh*head_stride + (t*group + g)*ld floats.
// Replaced in place by P as fp16 (row r at the same address, ld*2 halves apart):
// the CPU's softmax (soft cap, scale, causal/window mask, fp16-rounded
// probabilities) over each row's visible keys, 0 elsewhere in [0, width).
struct SoftmaxTile {
  float* s = nullptr;
  int64_t head_stride = 0;  // floats between kv heads' S blocks
  int ld = 0;               // floats per S row, a multiple of 32
  int rows = 0;             // rows per kv head (tokens * group)
  int n_kv_heads = 0;
  int group = 0;
  int pos0 = 0;             // position of the tile's first query token
  int key0 = 0;             // key of column 0, a multiple of 16
  int width = 0;            // columns the P.V GEMM reads
  float scale = 1.0f, softcap = 0.0f;
  int window = 0;
};
void softmax(const SoftmaxTile& t, cudaStream_t stream);

// out[t*q_stride + h*head_dim + d] = o[kvh][t][g][d] for h = kvh*group + g, t < n.
void scatter(const float* o, int n, int n_heads, int n_kv_heads, int head_dim, float* out, int64_t q_stride,
             cudaStream_t stream);

}  // namespace velo::cuda::prefill
