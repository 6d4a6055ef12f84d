// The two split passes of paged attention (see paged_attention.cu), on the
// tensor cores. A CTA serves up to 8 q heads of one kv head over one split;
// its 4 warps take 16-key tiles in turn. Per tile a warp computes
//   S (8 heads x 16 keys)  = Q.K^T   as mma m16n8k16 (heads = M, padded to 16; keys = N)
//   O^T (dims x 8 heads)  += V^T.P^T as mma m16n8k16 (dims = M, heads = N, keys = K)
// S's accumulator fragment (thread: head g = lane/4, keys 2j, 2j+1 with j = lane%4)
// is exactly P's B fragment, so probabilities never leave registers. Operands
// come straight from global memory in 16-byte loads: the order in which the
// head dims meet in the q.k sum is permuted identically for Q and K (any order
// is a valid dot product), and V^T's fragments are assembled from two keys'
// rows with byte permutes. Inputs are fp16 (K, V, q rounded like the CPU, p
// rounded like the CPU) and products are summed in f32.
#include <cuda_fp16.h>

#include "backend/cuda/attention_math.cuh"
#include "backend/cuda/paged_attention.cuh"

namespace velo::cuda::paged {
namespace {

__device__ __forceinline__ void mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);  // round to nearest even, like the CPU
  return *reinterpret_cast<const uint32_t*>(&h);
}

// Halves offset of key `key`'s row (kv head 0) through the sequence's block table.
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

struct Cta {
  int t, kvh, h0, gn, split;
  Range r;
  const int32_t* table;
};
__device__ __forceinline__ Cta cta_of(const Params& p) {
  Cta c;
  c.t = blockIdx.x;
  c.kvh = blockIdx.y / p.tiles;
  const int tile = blockIdx.y % p.tiles;
  c.h0 = c.kvh * p.group + tile * kHeadsPerCta;
  c.gn = min(kHeadsPerCta, p.group - tile * kHeadsPerCta);
  c.split = blockIdx.z;
  c.r = split_range(p, p.tok_pos[c.t], c.split);
  c.table = p.block_tables + static_cast<int64_t>(p.tok_seq[c.t]) * p.max_blocks;
  return c;
}

// Q as the A operand (rows = heads g; rows g+8 are padding, zero): qa[u] holds
// head g's dims 32u+8j .. 32u+8j+7 in fp16. k-step 2u uses .x/.y, 2u+1 uses .z/.w;
// K's B operand is loaded with the same dim order (load_k).
template <int KU>
__device__ __forceinline__ void load_q(const Params& p, const Cta& c, int g, int j, uint4 (&qa)[KU]) {
#pragma unroll
  for (int u = 0; u < KU; ++u) {
    const int d0 = 32 * u + 8 * j;
    if (g < c.gn && d0 < p.head_dim) {
      const float* s = p.q + c.t * p.q_stride + static_cast<int64_t>(c.h0 + g) * p.head_dim + d0;
      qa[u] = make_uint4(pack_half2(s[0], s[1]), pack_half2(s[2], s[3]), pack_half2(s[4], s[5]),
                         pack_half2(s[6], s[7]));
    } else {
      qa[u] = make_uint4(0, 0, 0, 0);
    }
  }
}

// K's B operand for one 8-key n-tile: this thread's key is the tile's key g (row < 0: none).
template <int KU>
__device__ __forceinline__ void load_k(const Params& p, const uint16_t* kh, int64_t row, int j, uint4 (&kb)[KU]) {
#pragma unroll
  for (int u = 0; u < KU; ++u) {
    const int d0 = 32 * u + 8 * j;
    kb[u] = row >= 0 && d0 < p.head_dim ? load16(kh + row + d0) : make_uint4(0, 0, 0, 0);
  }
}

// s[head g][keys 2j, 2j+1 of the n-tile] in c[0], c[1] (c[2], c[3]: padding rows).
template <int KU>
__device__ __forceinline__ void qk_tile(const Params& p, const uint4 (&qa)[KU], const uint4 (&kb)[KU], float (&c)[4]) {
  c[0] = c[1] = c[2] = c[3] = 0.0f;
#pragma unroll
  for (int u = 0; u < KU; ++u) {
    if (32 * u >= p.head_dim) break;
    mma16816(c, qa[u].x, 0u, qa[u].y, 0u, kb[u].x, kb[u].y);
    mma16816(c, qa[u].z, 0u, qa[u].w, 0u, kb[u].z, kb[u].w);
  }
}

// Key of this thread's logit e (0..3) in the 16-key tile at kt: kt + {2j, 2j+1, 8+2j, 9+2j}.
__device__ __forceinline__ int key_of(int kt, int j, int e) { return kt + 8 * (e >> 1) + 2 * j + (e & 1); }

// The logits of this thread's head (g) for its 4 keys of the tile at kt (raw q.k, before logit()).
template <int KU>
__device__ __forceinline__ void tile_qk(const Params& p, const Cta& c, const uint4 (&qa)[KU], int kt, int g, int j,
                                        float (&s)[4]) {
  const uint16_t* kh = p.k + c.kvh * p.head_dim;
  uint4 k0[KU], k1[KU];
  const int key0 = kt + g, key1 = kt + 8 + g;
  load_k<KU>(p, kh, key0 < c.r.end ? row_of(p, c.table, key0) : -1, j, k0);
  load_k<KU>(p, kh, key1 < c.r.end ? row_of(p, c.table, key1) : -1, j, k1);
  float c0[4], c1[4];
  qk_tile<KU>(p, qa, k0, c0);
  qk_tile<KU>(p, qa, k1, c1);
  s[0] = c0[0];
  s[1] = c0[1];
  s[2] = c1[0];
  s[3] = c1[1];
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

// Pass 1: logits of the split's keys -> (max, sum of exp) per head (+ the logits when p.scores).
template <int DM>
__global__ void __launch_bounds__(kThreads) attn_split_stats(const Params p) {
  constexpr int KU = DM / 32;
  const Cta c = cta_of(p);
  if (c.r.begin >= c.r.end) return;  // empty split: pass 2 and combine skip it too
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, j = lane % 4;
  uint4 qa[KU];
  load_q<KU>(p, c, g, j, qa);
  float* srow = p.scores && g < c.gn ? p.scores + (static_cast<int64_t>(c.t) * p.n_heads + c.h0 + g) * p.max_ctx
                                     : nullptr;
  float m = -INFINITY, l = 0.0f;  // head g over this thread's keys
  const int n_tiles = (c.r.end - c.r.begin + 15) / 16;
  for (int ti = warp; ti < n_tiles; ti += kWarps) {
    const int kt = c.r.begin + 16 * ti;
    float s[4];
    tile_qk<KU>(p, c, qa, kt, g, j, s);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int key = key_of(kt, j, e);
      if (g < c.gn && key < c.r.end) {
        const float x = attn::logit(s[e], p.softcap, p.inv_cap, p.scale);
        if (srow) srow[key] = x;
        push_ml(m, l, x);
      }
    }
  }
  // Merge the 4 threads of a head, then the warps.
#pragma unroll
  for (int off = 1; off < 4; off <<= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, off), l2 = __shfl_xor_sync(0xffffffffu, l, off);
    merge_ml(m, l, m2, l2);
  }
  __shared__ float2 red[kWarps][kHeadsPerCta];
  if (j == 0) red[warp][g] = make_float2(m, l);
  __syncthreads();
  if (threadIdx.x < c.gn) {
    float mm = red[0][threadIdx.x].x, ll = red[0][threadIdx.x].y;
    for (int w = 1; w < kWarps; ++w) merge_ml(mm, ll, red[w][threadIdx.x].x, red[w][threadIdx.x].y);
    p.stats[(static_cast<int64_t>(c.t) * p.n_heads + c.h0 + threadIdx.x) * p.splits + c.split] = make_float2(mm, ll);
  }
}

// Pass 2: p = fp16(exp(s - max) * (1 / sum)) with the token's global max and sum (as
// cpu::softmax rounds them), times V, over the split's keys.
template <int DM>
__global__ void __launch_bounds__(kThreads) attn_split_pv(const Params p) {
  constexpr int KU = DM / 32, MB = DM / 64, MT = 4 * MB;
  const Cta c = cta_of(p);
  if (c.r.begin >= c.r.end) return;
  __shared__ float s_max[kHeadsPerCta], s_inv[kHeadsPerCta];
  __shared__ float red[kWarps][kHeadsPerCta][DM];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, j = lane % 4;
  for (int h = warp; h < c.gn; h += kWarps) {  // global max and 1/sum per head from the split stats
    const float2* st = p.stats + (static_cast<int64_t>(c.t) * p.n_heads + c.h0 + h) * p.splits;
    float mx = -INFINITY;
    for (int s = lane; s < c.r.active; s += 32) mx = fmaxf(mx, st[s].x);
    for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    double sum = 0;
    for (int s = lane; s < c.r.active; s += 32) sum += static_cast<double>(st[s].y * expf(st[s].x - mx));
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (lane == 0) {
      s_max[h] = mx;
      s_inv[h] = static_cast<float>(1.0 / sum);  // as cpu::softmax
    }
  }
  __syncthreads();
  const float mx = g < c.gn ? s_max[g] : 0.0f, inv = g < c.gn ? s_inv[g] : 0.0f;
  uint4 qa[KU];
  if (!p.scores) load_q<KU>(p, c, g, j, qa);
  const float* srow = p.scores && g < c.gn
                          ? p.scores + (static_cast<int64_t>(c.t) * p.n_heads + c.h0 + g) * p.max_ctx
                          : nullptr;
  const uint16_t* vh = p.v + c.kvh * p.head_dim;
  float o[MT][4];  // O^T: dims (64b + 8g + 2i, +1) x heads (2j, 2j+1) for m-tile 4b + i
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) o[mt][0] = o[mt][1] = o[mt][2] = o[mt][3] = 0.0f;

  const int n_tiles = (c.r.end - c.r.begin + 15) / 16;
  for (int ti = warp; ti < n_tiles; ti += kWarps) {
    const int kt = c.r.begin + 16 * ti;
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (!p.scores) {  // first, so that K's registers are free again before V's are loaded
      tile_qk<KU>(p, c, qa, kt, g, j, s);
#pragma unroll
      for (int e = 0; e < 4; ++e) s[e] = attn::logit(s[e], p.softcap, p.inv_cap, p.scale);
    }
    // V rows of this thread's 4 keys (the A operand's k index is the tile's key order).
    uint4 va[4][MB];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int key = key_of(kt, j, e);
      const int64_t row = key < c.r.end ? row_of(p, c.table, key) : -1;
#pragma unroll
      for (int b = 0; b < MB; ++b) {
        const int d0 = 64 * b + 8 * g;
        va[e][b] = row >= 0 && d0 < p.head_dim ? load16(vh + row + d0) : make_uint4(0, 0, 0, 0);
      }
      if (srow && key < c.r.end) s[e] = srow[key];
    }
    float pr[4];
#pragma unroll
    for (int e = 0; e < 4; ++e)
      pr[e] = g < c.gn && key_of(kt, j, e) < c.r.end ? __fmul_rn(attn::exp_cpu(__fsub_rn(s[e], mx)), inv) : 0.0f;
    const uint32_t pb0 = pack_half2(pr[0], pr[1]), pb1 = pack_half2(pr[2], pr[3]);
#pragma unroll
    for (int b = 0; b < MB; ++b) {
      if (64 * b >= p.head_dim) break;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        // dims 64b+8g+2i (row g) and +1 (row g+8), keys 2j, 2j+1 (a0, a1) and 8+2j, 9+2j (a2, a3)
        const uint32_t x0 = word(va[0][b], i), x1 = word(va[1][b], i);
        const uint32_t x2 = word(va[2][b], i), x3 = word(va[3][b], i);
        mma16816(o[4 * b + i], __byte_perm(x0, x1, 0x5410), __byte_perm(x0, x1, 0x7632),
                 __byte_perm(x2, x3, 0x5410), __byte_perm(x2, x3, 0x7632), pb0, pb1);
      }
    }
  }
  // Sum the warps in a fixed order, then write out (one split) or the split's partial.
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    const int d = 64 * (mt / 4) + 8 * g + 2 * (mt % 4);
    if (d < p.head_dim) {
      red[warp][2 * j][d] = o[mt][0];
      red[warp][2 * j + 1][d] = o[mt][1];
      red[warp][2 * j][d + 1] = o[mt][2];
      red[warp][2 * j + 1][d + 1] = o[mt][3];
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < c.gn * p.head_dim; i += kThreads) {
    const int h = i / p.head_dim, d = i - h * p.head_dim;
    float sum = red[0][h][d];
    for (int w = 1; w < kWarps; ++w) sum += red[w][h][d];
    if (p.splits == 1)
      p.out[c.t * p.q_stride + static_cast<int64_t>(c.h0 + h) * p.head_dim + d] = sum;
    else
      p.partial[((static_cast<int64_t>(c.t) * p.n_heads + c.h0 + h) * p.splits + c.split) * p.head_dim + d] = sum;
  }
}

template <int DM>
void launch(const Params& p, dim3 grid, cudaStream_t stream) {
  attn_split_stats<DM><<<grid, kThreads, 0, stream>>>(p);
  attn_split_pv<DM><<<grid, kThreads, 0, stream>>>(p);
}

}  // namespace

void launch_split_passes(const Params& p, int dm, dim3 grid, cudaStream_t stream) {
  switch (dm) {
    case 64: launch<64>(p, grid, stream); break;
    case 128: launch<128>(p, grid, stream); break;
    default: launch<256>(p, grid, stream); break;
  }
}

}  // namespace velo::cuda::paged
