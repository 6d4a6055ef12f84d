// Paged attention for decode tokens and short chunks, split-K ("flash decoding").
//
// The CPU oracle rounds each probability to fp16 AFTER normalising it
// (p = fp16(exp(s - max) * (1 / sum))), so a one-pass online softmax, which
// rounds unnormalised weights, would differ by ~1e-3. We normalise first:
//   1. stats:   each split of a token's visible keys computes its logits s
//               (q.K, soft cap, scale) and their max m and sum l of exp(s - m);
//               when the scratch allows, it also stores s (scores buffer).
//   2. pv:      each split merges all splits' (m, l) into the global max and
//               1/sum, re-reads (or recomputes) s, rounds p like the CPU and
//               accumulates p.V over its keys: an already normalised partial.
//   3. combine: the partials of a token/head are summed (when > 1 split).
// Pass 1 reads K and pass 2 reads V, so K/V bytes are read once, as in one-pass
// flash decoding; only the logits (4 bytes per key and q head) travel twice.
//
// Grid: (token, kv head x head tile, split). The split count depends on T, the
// head counts and max_ctx only; each split takes an equal share of the token's
// actual visible keys (read from tok_pos on the device), so the work spreads
// over all CTAs whatever the length, and a step can be captured in a graph.
// One CTA serves up to 8 q heads of one kv head (GQA): each K/V row is loaded
// once for all of them, and both products run on the tensor cores
// (paged_attention_split.cu).
#include <algorithm>
#include <cmath>

#include "backend/cuda/ops.h"
#include "backend/cuda/paged_attention.cuh"

namespace velo::cuda {
namespace {
using paged::kThreads;
using paged::Params;

constexpr int kTargetCtas = 512;                  // ~4 CTAs per SM on an H100
constexpr int kMaxSplits = 256;
constexpr uint64_t kMaxScoreBytes = 64ull << 20;  // above: pass 2 recomputes q.K instead of storing s

struct Plan {
  int dm = 0;       // kernel's head_dim bound: 64, 128 or 256
  int tiles = 0;    // CTAs per kv head = ceil(group / 8)
  int splits = 0;
  bool scores = false;
  uint64_t stats_off = 0, partial_off = 0, scores_off = 0, bytes = 0;
};

uint64_t align256(uint64_t x) { return (x + 255) & ~uint64_t{255}; }

Plan make_plan(const AttnArgs& a, int64_t T, int max_ctx) {
  Plan p;
  const int group = a.n_heads / a.n_kv_heads;
  p.dm = a.head_dim <= 64 ? 64 : a.head_dim <= 128 ? 128 : 256;
  p.tiles = (group + paged::kHeadsPerCta - 1) / paged::kHeadsPerCta;
  const int64_t ctas = T * a.n_kv_heads * p.tiles;
  const int64_t by_len = (std::max(max_ctx, 1) + paged::kMinSplitKeys - 1) / paged::kMinSplitKeys;
  const int64_t by_occupancy = (kTargetCtas + ctas - 1) / ctas;
  p.splits = static_cast<int>(std::max<int64_t>(1, std::min({by_len, by_occupancy, int64_t{kMaxSplits}})));
  const uint64_t rows = static_cast<uint64_t>(T) * a.n_heads;  // (token, q head) pairs
  const uint64_t score_bytes = rows * static_cast<uint64_t>(std::max(max_ctx, 1)) * 4;
  p.scores = score_bytes <= kMaxScoreBytes;
  p.stats_off = 0;                                                           // float2 [T][n_heads][splits]
  p.partial_off = align256(rows * p.splits * 8);                             // float [T][n_heads][splits][head_dim]
  const uint64_t partial = p.splits > 1 ? rows * p.splits * a.head_dim * 4 : 0;
  p.scores_off = p.partial_off + align256(partial);                          // float [T][n_heads][max_ctx]
  p.bytes = p.scores_off + (p.scores ? align256(score_bytes) : 0);
  return p;
}

// Pass 3: out[t][h] = sum of the token's non-empty split partials. Grid (T, n_heads,
// head_dim / 32): a CTA owns 32 dims (8 float4 columns) and its 16 thread groups take
// every 16th split, so a thread's loads are few and independent.
constexpr int kCombineDims = 32, kCombineGroups = kThreads / (kCombineDims / 4);
__global__ void __launch_bounds__(kThreads) attn_combine(const Params p) {
  const int t = blockIdx.x, h = blockIdx.y;
  const int active = paged::split_range(p, p.tok_pos[t], 0).active;
  const int quads = p.head_dim / 4;
  const int qd = blockIdx.z * (kCombineDims / 4) + threadIdx.x % (kCombineDims / 4);
  const int grp = threadIdx.x / (kCombineDims / 4);
  const float4* part =
      reinterpret_cast<const float4*>(p.partial + (static_cast<int64_t>(t) * p.n_heads + h) * p.splits * p.head_dim);
  auto add = [](float4& a, const float4& x) {
    a.x += x.x;
    a.y += x.y;
    a.z += x.z;
    a.w += x.w;
  };
  float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (qd < quads) {
    int s = grp;
    for (; s + 3 * kCombineGroups < active; s += 4 * kCombineGroups) {
      float4 x[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) x[i] = part[static_cast<int64_t>(s + i * kCombineGroups) * quads + qd];
#pragma unroll
      for (int i = 0; i < 4; ++i) add(acc, x[i]);
    }
    for (; s < active; s += kCombineGroups) add(acc, part[static_cast<int64_t>(s) * quads + qd]);
  }
  __shared__ float4 red[kThreads];
  red[threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.x < kCombineDims / 4 && qd < quads) {
    float4 sum = red[threadIdx.x];
    for (int g = 1; g < kCombineGroups; ++g) add(sum, red[g * (kCombineDims / 4) + threadIdx.x]);
    float* out = p.out + t * p.q_stride + static_cast<int64_t>(h) * p.head_dim + 4 * qd;
    out[0] = sum.x;
    out[1] = sum.y;
    out[2] = sum.z;
    out[3] = sum.w;
  }
}

}  // namespace

uint64_t paged_attention_scratch_bytes(const AttnArgs& a, int64_t T, int max_ctx) {
  if (T <= 0 || a.n_heads <= 0 || a.n_kv_heads <= 0) return 0;
  return make_plan(a, T, max_ctx).bytes;
}

void paged_attention(const AttnArgs& a, const KvLayer& kv, const AttnBatch& b, const float* q, float* out,
                     int64_t T, int64_t q_stride, int max_ctx, void* scratch, cudaStream_t stream) {
  if (T <= 0) return;
  const Plan pl = make_plan(a, T, max_ctx);
  Params p{};
  p.q = q;
  p.out = out;
  p.q_stride = q_stride;
  p.k = kv.k;
  p.v = kv.v;
  p.tok_seq = b.tok_seq;
  p.tok_pos = b.tok_pos;
  p.block_tables = b.block_tables;
  p.max_blocks = b.max_blocks;
  p.block_size = kv.block_size;
  p.bs_shift = -1;
  for (int s = 0; s < 31; ++s)
    if (kv.block_size == (1 << s)) p.bs_shift = s;
  p.n_heads = a.n_heads;
  p.n_kv_heads = a.n_kv_heads;
  p.group = a.n_heads / a.n_kv_heads;
  p.head_dim = a.head_dim;
  p.tiles = pl.tiles;
  p.splits = pl.splits;
  p.max_ctx = max_ctx;
  p.window = a.window;
  p.scale = a.scale;
  p.softcap = a.softcap;
  p.inv_cap = a.softcap > 0 ? 1.0f / a.softcap : 0.0f;
  auto* base = static_cast<char*>(scratch);
  p.stats = reinterpret_cast<float2*>(base + pl.stats_off);
  p.partial = pl.splits > 1 ? reinterpret_cast<float*>(base + pl.partial_off) : nullptr;
  p.scores = pl.scores ? reinterpret_cast<float*>(base + pl.scores_off) : nullptr;

  // Exact order: steps of up to kMaxMatvecTokens tokens, like the exact matvecs (larger
  // steps run GEMMs, so exactness would buy nothing there). Its one CTA per (token, head)
  // is 3-30x slower than the split kernel as contexts grow (512-8192 keys), hence opt-in.
  const int64_t step_tokens = b.step_tokens > 0 ? b.step_tokens : T;
  if (b.exact_order && step_tokens <= kMaxMatvecTokens &&
      paged::launch_exact(p, step_tokens > 1, static_cast<int>(T), stream))
    return;

  const dim3 grid(static_cast<unsigned>(T), static_cast<unsigned>(a.n_kv_heads * pl.tiles),
                  static_cast<unsigned>(pl.splits));
  paged::launch_split_passes(p, pl.dm, grid, stream);
  if (pl.splits > 1)
    attn_combine<<<dim3(static_cast<unsigned>(T), static_cast<unsigned>(a.n_heads),
                           static_cast<unsigned>((a.head_dim + kCombineDims - 1) / kCombineDims)),
                      kThreads, 0, stream>>>(p);
}

}  // namespace velo::cuda
