// Shared by the paged (decode) attention kernels: their parameters and the
// split of a token's keys. Internal to the CUDA backend (paged_attention.cu
// launches; paged_attention_split.cu holds the two split kernels).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace velo::cuda::paged {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kHeadsPerCta = 8;    // q heads of one kv head per CTA (the mma's n = 8)
constexpr int kMinSplitKeys = 64;  // no split gets fewer keys (fewer splits run instead)

struct Params {
  const float* q;  // [T][q_stride], head h at h*head_dim
  float* out;      // [T][q_stride]
  int64_t q_stride;
  const uint16_t* k;  // [blocks][block_size][n_kv_heads][head_dim] fp16
  const uint16_t* v;
  const int32_t* tok_seq;       // [T]
  const int32_t* tok_pos;       // [T]
  const int32_t* block_tables;  // [n_seqs][max_blocks]
  int max_blocks;
  int block_size, bs_shift;  // bs_shift >= 0: block_size == 1 << bs_shift
  int n_heads, n_kv_heads, group, head_dim, tiles, splits, max_ctx, window;
  float scale, softcap, inv_cap;
  float2* stats;   // [T][n_heads][splits] (max, sum of exp(s - max)) of each split
  float* partial;  // [T][n_heads][splits][head_dim] normalised p.V of each split (splits > 1)
  float* scores;   // [T][n_heads][max_ctx] logits, or null (pass 2 recomputes them)
};

// Keys [begin, end) of split `split` for a query at `pos` (empty when begin >= end):
// the visible keys in `splits` equal runs of a multiple of 16 keys, at least kMinSplitKeys.
struct Range {
  int begin, end, active;  // active: how many splits are non-empty
};
__device__ __forceinline__ Range split_range(const Params& p, int pos, int split) {
  const int lo = p.window > 0 ? max(0, pos - p.window + 1) : 0;
  const int n = pos + 1 - lo;
  const int per = max(kMinSplitKeys, ((n + p.splits - 1) / p.splits + 15) & ~15);
  const int begin = lo + split * per;
  return {begin, min(begin + per, pos + 1), (n + per - 1) / per};
}

// Enqueues the exact-order kernel (paged_attention_exact.cu) on grid (T, n_heads) when
// the score scratch exists and its shared memory fits; false: nothing was enqueued.
// gemm: the step has more than one query token (the CPU's 16-lane order).
bool launch_exact(const Params& p, bool gemm, int T, cudaStream_t stream);

// Enqueues the two split passes for head_dim <= dm (64, 128 or 256) on grid
// (T, n_kv_heads * tiles, splits).
void launch_split_passes(const Params& p, int dm, dim3 grid, cudaStream_t stream);

}  // namespace velo::cuda::paged
