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
// once (16-byte loads, LK lanes per row) for all of them.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

#include "backend/cuda/attention_math.cuh"
#include "backend/cuda/ops.h"

namespace velo::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kMinSplitKeys = 32;                  // no split gets fewer keys (fewer splits run instead)
constexpr int kTargetCtas = 512;                   // ~4 CTAs per SM on an H100
constexpr int kMaxSplits = 256;
constexpr uint64_t kMaxScoreBytes = 64ull << 20;   // above: pass 2 recomputes q.K instead of storing s

struct Plan {
  int lk = 0;       // lanes per K/V row (8 halves each): 8, 16 or 32
  int gt = 0;       // q heads per CTA (template width): 1, 2, 4 or 8
  int tiles = 0;    // CTAs per kv head = ceil(group / gt)
  int splits = 0;
  bool scores = false;
  uint64_t stats_off = 0, partial_off = 0, scores_off = 0, bytes = 0;
};

uint64_t align256(uint64_t x) { return (x + 255) & ~uint64_t{255}; }

Plan make_plan(const AttnArgs& a, int64_t T, int max_ctx) {
  Plan p;
  const int group = a.n_heads / a.n_kv_heads;
  p.lk = a.head_dim <= 64 ? 8 : a.head_dim <= 128 ? 16 : 32;
  p.gt = group == 1 ? 1 : group == 2 ? 2 : group <= 4 ? 4 : 8;
  p.tiles = (group + p.gt - 1) / p.gt;
  const int64_t ctas = T * a.n_kv_heads * p.tiles;
  const int64_t by_len = (std::max(max_ctx, 1) + kMinSplitKeys - 1) / kMinSplitKeys;
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

struct Params {
  const float* q;
  float* out;
  int64_t q_stride;
  const uint16_t* k;
  const uint16_t* v;
  const int32_t* tok_seq;
  const int32_t* tok_pos;
  const int32_t* block_tables;
  int max_blocks;
  int block_size, bs_shift;  // bs_shift >= 0: block_size == 1 << bs_shift
  int n_heads, n_kv_heads, group, head_dim, tiles, splits, max_ctx, window;
  float scale, softcap, inv_cap;
  float2* stats;    // [T][n_heads][splits] (max, sum of exp(s - max)) per split
  float* partial;   // [T][n_heads][splits][head_dim] normalised p.V per split (splits > 1)
  float* scores;    // [T][n_heads][max_ctx] logits, or null (recompute)
};

// Keys [begin, end) of split `split` for a query at `pos`; empty when begin >= end.
struct Range {
  int begin, end, active;  // active: how many splits are non-empty
};
__device__ __forceinline__ Range split_range(const Params& p, int pos, int split) {
  const int lo = p.window > 0 ? max(0, pos - p.window + 1) : 0;
  const int n = pos + 1 - lo;
  const int per = max(kMinSplitKeys, ((n + p.splits - 1) / p.splits + 7) & ~7);
  const int begin = lo + split * per;
  return {begin, min(begin + per, pos + 1), (n + per - 1) / per};
}

// Halves offset of key `key`'s row for kv head 0 (the token's sequence table given).
__device__ __forceinline__ int64_t row_of(const Params& p, const int32_t* table, int key) {
  int blk, slot;
  if (p.bs_shift >= 0) {
    blk = key >> p.bs_shift;
    slot = key & (p.block_size - 1);
  } else {
    blk = key / p.block_size;
    slot = key - blk * p.block_size;
  }
  return (static_cast<int64_t>(__ldg(table + blk)) * p.block_size + slot) * p.n_kv_heads * p.head_dim;
}

__device__ __forceinline__ uint4 load16(const uint16_t* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

// q rows of this CTA's heads, dims [8*lane, 8*lane+8), rounded to fp16 like the CPU.
template <int GT>
__device__ __forceinline__ void load_q(const Params& p, int t, int h0, int gn, int lane, bool on, float (&q)[GT][8]) {
#pragma unroll
  for (int g = 0; g < GT; ++g) {
    const float* src = p.q + t * p.q_stride + static_cast<int64_t>(h0 + g) * p.head_dim + lane * 8;
#pragma unroll
    for (int e = 0; e < 8; ++e) q[g][e] = (on && g < gn) ? attn::round_f16(src[e]) : 0.0f;
  }
}

// The logit of this lane group's key for head `lane` (lanes >= GT get head GT-1's, unused):
// per-lane dot over 8 dims, butterfly over the LK lanes of the row.
template <int LK, int GT>
__device__ __forceinline__ float lane_logit(const Params& p, const float (&q)[GT][8], const uint4& kraw, int lane) {
  float k[8];
  attn::unpack8(kraw, k);
  float sel = 0.0f;
#pragma unroll
  for (int g = 0; g < GT; ++g) {
    float d = __fmul_rn(q[g][0], k[0]);
#pragma unroll
    for (int e = 1; e < 8; ++e) d = __fmaf_rn(q[g][e], k[e], d);
#pragma unroll
    for (int off = LK / 2; off > 0; off >>= 1) d = __fadd_rn(d, __shfl_xor_sync(0xffffffffu, d, off));
    if (g == lane || (g == GT - 1 && lane >= GT)) sel = d;
  }
  return attn::logit(sel, p.softcap, p.inv_cap, p.scale);
}

// Adds logit s to a running (max m, sum l of exp(x - m)).
__device__ __forceinline__ void push_ml(float& m, float& l, float s) {
  if (s > m) {
    l = __fadd_rn(__fmul_rn(l, expf(m - s)), 1.0f);
    m = s;
  } else {
    l = __fadd_rn(l, expf(s - m));
  }
}

// (m, l) <- merge of two (max, sum of exp(x - max)) pairs.
__device__ __forceinline__ void merge_ml(float& m, float& l, float m2, float l2) {
  const float mx = fmaxf(m, m2);
  if (mx == -INFINITY) return;  // both empty
  l = __fadd_rn(__fmul_rn(l, expf(m - mx)), __fmul_rn(l2, expf(m2 - mx)));
  m = mx;
}

struct Cta {
  int t, kvh, h0, gn, split, pos;
  Range r;
};
template <int GT>
__device__ __forceinline__ Cta cta_of(const Params& p) {
  Cta c;
  c.t = blockIdx.x;
  c.kvh = blockIdx.y / p.tiles;
  const int tile = blockIdx.y % p.tiles;
  c.h0 = c.kvh * p.group + tile * GT;
  c.gn = min(GT, p.group - tile * GT);
  c.split = blockIdx.z;
  c.pos = p.tok_pos[c.t];
  c.r = split_range(p, c.pos, c.split);
  return c;
}

// Pass 1: logits of the split's keys -> (max, sum) per head (+ the logits when p.scores).
template <int LK, int GT>
__global__ void __launch_bounds__(kThreads) attn_split_stats(const Params p) {
  constexpr int kSlots = kThreads / LK, kUnroll = 4;
  const Cta c = cta_of<GT>(p);
  if (c.r.begin >= c.r.end) return;  // empty split: pass 2 and combine skip it too
  const int lane = threadIdx.x % LK, slot = threadIdx.x / LK;
  const bool on = lane * 8 < p.head_dim;
  float q[GT][8];
  load_q<GT>(p, c.t, c.h0, c.gn, lane, on, q);
  const int32_t* table = p.block_tables + static_cast<int64_t>(p.tok_seq[c.t]) * p.max_blocks;
  const uint16_t* kbase = p.k + c.kvh * p.head_dim + lane * 8;
  float* srow = p.scores && lane < c.gn
                    ? p.scores + (static_cast<int64_t>(c.t) * p.n_heads + c.h0 + lane) * p.max_ctx
                    : nullptr;
  float m = -INFINITY, l = 0.0f;  // over this thread's keys, for head `lane`
  for (int base = c.r.begin; base < c.r.end; base += kSlots * kUnroll) {
    uint4 kr[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int key = base + u * kSlots + slot;
      kr[u] = on && key < c.r.end ? load16(kbase + row_of(p, table, key)) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int key = base + u * kSlots + slot;
      const float s = lane_logit<LK, GT>(p, q, kr[u], lane);
      if (key < c.r.end && lane < c.gn) {
        if (srow) srow[key] = s;
        push_ml(m, l, s);
      }
    }
  }
  // Merge the slots: in the warp, then across warps.
#pragma unroll
  for (int off = LK; off < 32; off <<= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, off), l2 = __shfl_xor_sync(0xffffffffu, l, off);
    merge_ml(m, l, m2, l2);
  }
  __shared__ float2 red[kWarps][GT];
  const int warp = threadIdx.x / 32;
  if (threadIdx.x % 32 < LK && lane < GT) red[warp][lane] = make_float2(m, l);
  __syncthreads();
  if (threadIdx.x < c.gn) {
    float mm = red[0][threadIdx.x].x, ll = red[0][threadIdx.x].y;
    for (int w = 1; w < kWarps; ++w) merge_ml(mm, ll, red[w][threadIdx.x].x, red[w][threadIdx.x].y);
    p.stats[(static_cast<int64_t>(c.t) * p.n_heads + c.h0 + threadIdx.x) * p.splits + c.split] = make_float2(mm, ll);
  }
}

// Pass 2: p = fp16(exp(s - max) * (1 / sum)) with the token's global max and sum, times V.
template <int LK, int GT>
__global__ void __launch_bounds__(kThreads) attn_split_pv(const Params p) {
  constexpr int kSlots = kThreads / LK, kUnroll = GT >= 8 ? 2 : 4;
  const Cta c = cta_of<GT>(p);
  if (c.r.begin >= c.r.end) return;
  __shared__ float s_max[GT], s_inv[GT];
  __shared__ float red[kWarps][GT][LK * 8];
  if (threadIdx.x < 32) {  // global max and 1/sum of each head from the split stats
    const int l32 = threadIdx.x;
    for (int g = 0; g < c.gn; ++g) {
      const float2* st = p.stats + (static_cast<int64_t>(c.t) * p.n_heads + c.h0 + g) * p.splits;
      float mx = -INFINITY;
      for (int s = l32; s < c.r.active; s += 32) mx = fmaxf(mx, st[s].x);
      for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
      double sum = 0;
      for (int s = l32; s < c.r.active; s += 32) sum += static_cast<double>(st[s].y * expf(st[s].x - mx));
      for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
      if (l32 == 0) {
        s_max[g] = mx;
        s_inv[g] = static_cast<float>(1.0 / sum);  // as cpu::softmax
      }
    }
  }
  __syncthreads();
  const int lane = threadIdx.x % LK, slot = threadIdx.x / LK;
  const bool on = lane * 8 < p.head_dim;
  const float mx = lane < c.gn ? s_max[lane] : 0.0f, inv = lane < c.gn ? s_inv[lane] : 0.0f;
  float q[GT][8];
  if (!p.scores) load_q<GT>(p, c.t, c.h0, c.gn, lane, on, q);
  const int32_t* table = p.block_tables + static_cast<int64_t>(p.tok_seq[c.t]) * p.max_blocks;
  const int64_t hoff = c.kvh * p.head_dim + lane * 8;
  const float* srow = p.scores && lane < c.gn
                          ? p.scores + (static_cast<int64_t>(c.t) * p.n_heads + c.h0 + lane) * p.max_ctx
                          : nullptr;
  float o[GT][8];
#pragma unroll
  for (int g = 0; g < GT; ++g)
#pragma unroll
    for (int e = 0; e < 8; ++e) o[g][e] = 0.0f;

  for (int base = c.r.begin; base < c.r.end; base += kSlots * kUnroll) {
    uint4 vr[kUnroll], kr[kUnroll];
    float sc[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int key = base + u * kSlots + slot;
      const bool valid = key < c.r.end;
      const int64_t row = valid ? row_of(p, table, key) : 0;
      vr[u] = on && valid ? load16(p.v + row + hoff) : make_uint4(0, 0, 0, 0);
      if (p.scores) {
        sc[u] = srow && valid ? srow[key] : 0.0f;
      } else {
        kr[u] = on && valid ? load16(p.k + row + hoff) : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int key = base + u * kSlots + slot;
      const float s = p.scores ? sc[u] : lane_logit<LK, GT>(p, q, kr[u], lane);
      float pr = 0.0f;  // this lane's head's probability for this key
      if (key < c.r.end && lane < c.gn) pr = attn::round_f16(__fmul_rn(attn::exp_cpu(__fsub_rn(s, mx)), inv));
      float v[8];
      attn::unpack8(vr[u], v);
#pragma unroll
      for (int g = 0; g < GT; ++g) {
        const float pg = __shfl_sync(0xffffffffu, pr, g, LK);
#pragma unroll
        for (int e = 0; e < 8; ++e) o[g][e] = __fmaf_rn(pg, v[e], o[g][e]);
      }
    }
  }
  // Sum the slots: in the warp, then across warps in a fixed order.
#pragma unroll
  for (int off = LK; off < 32; off <<= 1)
#pragma unroll
    for (int g = 0; g < GT; ++g)
#pragma unroll
      for (int e = 0; e < 8; ++e) o[g][e] += __shfl_xor_sync(0xffffffffu, o[g][e], off);
  const int warp = threadIdx.x / 32;
  if (threadIdx.x % 32 < LK)
#pragma unroll
    for (int g = 0; g < GT; ++g)
#pragma unroll
      for (int e = 0; e < 8; ++e) red[warp][g][lane * 8 + e] = o[g][e];
  __syncthreads();
  for (int i = threadIdx.x; i < c.gn * p.head_dim; i += kThreads) {
    const int g = i / p.head_dim, d = i - g * p.head_dim;
    float sum = red[0][g][d];
    for (int w = 1; w < kWarps; ++w) sum += red[w][g][d];
    const int h = c.h0 + g;
    if (p.splits == 1)
      p.out[c.t * p.q_stride + static_cast<int64_t>(h) * p.head_dim + d] = sum;
    else
      p.partial[((static_cast<int64_t>(c.t) * p.n_heads + h) * p.splits + c.split) * p.head_dim + d] = sum;
  }
}

// Pass 3: out[t][h] = sum over the token's non-empty splits of their partials. Grid (T, n_heads).
__global__ void __launch_bounds__(kThreads) attn_combine(const Params p) {
  const int t = blockIdx.x, h = blockIdx.y;
  const int active = split_range(p, p.tok_pos[t], 0).active;
  const float* part = p.partial + (static_cast<int64_t>(t) * p.n_heads + h) * p.splits * p.head_dim;
  float* out = p.out + t * p.q_stride + static_cast<int64_t>(h) * p.head_dim;
  for (int d = threadIdx.x; d < p.head_dim; d += kThreads) {
    float sum = 0.0f;
    for (int s = 0; s < active; ++s) sum += part[static_cast<int64_t>(s) * p.head_dim + d];
    out[d] = sum;
  }
}

template <int LK, int GT>
void launch(const Params& p, dim3 grid, cudaStream_t stream) {
  attn_split_stats<LK, GT><<<grid, kThreads, 0, stream>>>(p);
  attn_split_pv<LK, GT><<<grid, kThreads, 0, stream>>>(p);
}

template <int LK>
void launch_gt(int gt, const Params& p, dim3 grid, cudaStream_t stream) {
  switch (gt) {
    case 1: launch<LK, 1>(p, grid, stream); break;
    case 2: launch<LK, 2>(p, grid, stream); break;
    case 4: launch<LK, 4>(p, grid, stream); break;
    default: launch<LK, 8>(p, grid, stream); break;
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

  const dim3 grid(static_cast<unsigned>(T), static_cast<unsigned>(a.n_kv_heads * pl.tiles),
                  static_cast<unsigned>(pl.splits));
  switch (pl.lk) {
    case 8: launch_gt<8>(pl.gt, p, grid, stream); break;
    case 16: launch_gt<16>(pl.gt, p, grid, stream); break;
    default: launch_gt<32>(pl.gt, p, grid, stream); break;
  }
  if (pl.splits > 1)
    attn_combine<<<dim3(static_cast<unsigned>(T), static_cast<unsigned>(a.n_heads)), kThreads, 0, stream>>>(p);
}

}  // namespace velo::cuda
