// Causal self-attention over a paged F16 KV cache, for a flat batch of
// sequences. Numerics mirror llama.cpp's non-flash CPU path: q is rounded to
// F16 before q.k, scores are softmaxed in F32, and the probabilities are
// rounded to F16 before they weight V (all sums in F32, in the oracle's order).
// head_dim must be a multiple of 16.
#pragma once
#include <cstdint>
#include <span>

#include "backend/cpu/kv_cache.h"
#include "core/thread_pool.h"

namespace velo::cpu {

struct AttnParams {
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;   // n_heads % n_kv_heads == 0 (GQA groups)
  int32_t head_dim = 0;
  float scale = 1.0f;       // applied to q.k after the soft cap
  float softcap = 0.0f;     // 0: none; else scores = cap * tanh(q.k / cap) before scaling
  int32_t window = 0;       // 0: full causal; else a query at p sees keys at p-window+1 .. p
};

// One sequence's share of the batch.
struct AttnSeq {
  const float* q = nullptr;  // [n_tokens][q_stride], head h at q + h*head_dim (already roped)
  float* out = nullptr;      // [n_tokens][out_stride], head h written at out + h*head_dim
  int32_t n_tokens = 0;
  int32_t start_pos = 0;     // position of the first token; keys cover [0, start_pos + n_tokens)
  const int32_t* blocks = nullptr;  // block table covering those positions
};

// Scratch the kernel needs per thread: q, 64 lanes of p.V accumulators, `max_kv` scores.
inline int64_t attention_scratch_floats(int32_t threads, int32_t max_kv, int32_t head_dim) {
  return static_cast<int64_t>(threads) * (65 * static_cast<int64_t>(head_dim) + max_kv + 32);
}

// Computes every (sequence, token, head) with the pool; K/V of these tokens must be stored already.
void paged_attention(const AttnParams& p, const KvLayerView& kv, std::span<const AttnSeq> seqs,
                     int64_t q_stride, int64_t out_stride, int32_t max_kv, float* scratch,
                     ThreadPool& pool);

}  // namespace velo::cpu
