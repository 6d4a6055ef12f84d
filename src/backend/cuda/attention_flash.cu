// Fused prefill attention (flash attention 2 style) on the tensor cores.
//
// A CTA takes 4 warps x 16*MT query rows of one kv head. Rows are (token, q
// head of the group) pairs, the group's heads adjacent, so each K/V tile loaded
// serves all q heads sharing it (grouped-query attention for free); the causal /
// window mask is per row (a row's position is its token's). Each warp owns
// MT m16 tiles of rows (MT = 2 reuses each K/V fragment read from shared memory
// twice) and walks the visible keys in tiles of kBN (64; 32 for head_dim 128 at
// MT = 2, where S's registers would not fit beside O's):
//   S = Q.K^T     mma m16n8k16 (Q fragments in registers at MT = 1, K from shared memory)
//   logits        soft cap, scale, mask (only on tiles the mask cuts)
//   online softmax running max m and sum l per row; O and l rescaled by exp(m_old - m)
//   O += P.V      P = fp16(exp(s - m)) straight from S's accumulator registers
// and write O / l. K/V tiles come from the paged cache by cp.async into a
// double buffer (the next tile loads while this one is used); shared rows are
// XOR-swizzled in 16-byte chunks so ldmatrix reads are conflict-free.
//
// Numerics: q rounded to fp16 like the CPU, K/V fp16 as stored, products
// summed in f32. Unlike cpu::softmax, P is rounded to fp16 before it is
// normalised (the row's final max and sum are not known yet): each term then
// carries its own fp16 rounding error (<= 2^-11 relative, as the CPU's does),
// not the same one; the tests bound the difference.
#include <cuda_fp16.h>

#include <cmath>
#include <cstdio>

#include "backend/cuda/attention_flash.h"
#include "backend/cuda/attention_math.cuh"

namespace velo::cuda::prefill {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr float kLog2e = 1.4426950408889634f;

struct Params {
  const float* q;
  float* out;
  int64_t q_stride;
  const uint16_t* k;
  const uint16_t* v;
  const int32_t* table;
  int block_size, bs_shift;  // bs_shift >= 0: block_size == 1 << bs_shift
  int n_kv_heads, start, group, rows;  // rows = n tokens * group (per kv head)
  int window;
  float scale, softcap, inv_cap;
  bool out_pairs;  // out rows allow 8-byte stores (out 8-byte aligned, q_stride even)
};

// Keys per tile: 64, or 32 where S's registers would not fit beside O's (head_dim 128, 32 rows per warp).
constexpr int keys_per_tile(int hd, int mt) { return hd * mt > 128 ? 32 : 64; }
constexpr int smem_bytes(int hd, int mt) {
  return (16 * mt * kWarps + 4 * keys_per_tile(hd, mt)) * hd * 2;  // Q + 2 stages of (K, V), fp16
}

// Halves offset of 16-byte chunk c of row `row` in a [rows][HD] fp16 tile. The
// chunk index is XOR-ed with row % 8, so the 8 rows one ldmatrix reads at the
// same logical chunk land in 8 different bank groups.
template <int HD>
__device__ __forceinline__ int swz(int row, int c) {
  return row * HD + ((c ^ (row & 7)) << 3);
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, asynchronously; zero-filled when !valid (src is then not read).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void ldsm_x4(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);  // round to nearest even, like the CPU
  return *reinterpret_cast<const uint32_t*>(&h);
}

template <int HD, int MT>
__global__ void __launch_bounds__(kThreads) flash_kernel(const Params p) {
  constexpr int BM = 16 * MT * kWarps;  // query rows per CTA
  constexpr int kBN = keys_per_tile(HD, MT);
  constexpr int CH = HD / 8;            // 16-byte chunks per row
  constexpr int KS = HD / 16;           // k-steps of Q.K^T
  constexpr int NT = kBN / 8;           // 8-key n-tiles of S
  constexpr int OT = HD / 8;            // 8-dim n-tiles of O
  constexpr bool kQRegs = MT == 1;      // Q fragments held in registers (else re-read from shared)
  extern __shared__ __align__(128) uint16_t sm[];
  uint16_t* sq = sm;             // [BM][HD]
  uint16_t* skv = sm + BM * HD;  // [stage][K, V][kBN][HD]

  const int kvh = blockIdx.x;
  const int m0 = (gridDim.y - 1 - blockIdx.y) * BM;  // the rows with the most keys start first
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, j = lane & 3;
  const int wrow = warp * 16 * MT;  // this warp's first row in the CTA
  const int m_last = min(m0 + BM, p.rows) - 1;
  const int pos_lo = p.start + m0 / p.group, pos_hi = p.start + m_last / p.group;
  const int kbeg = p.window > 0 ? max(0, pos_lo - p.window + 1) : 0;
  const int kend = pos_hi + 1;  // keys [kbeg, kend) are visible to some row of the CTA
  const int n_tiles = (kend - kbeg + kBN - 1) / kBN;

  // Q rows -> fp16, shared.
  for (int i = tid; i < BM * CH; i += kThreads) {
    const int r = i / CH, c = i % CH, m = m0 + r;
    uint4 h = make_uint4(0, 0, 0, 0);
    if (m < p.rows) {
      const int t = m / p.group, head = kvh * p.group + (m - t * p.group);
      const float* s = p.q + t * p.q_stride + static_cast<int64_t>(head) * HD + c * 8;
      h = make_uint4(pack_half2(s[0], s[1]), pack_half2(s[2], s[3]), pack_half2(s[4], s[5]), pack_half2(s[6], s[7]));
    }
    *reinterpret_cast<uint4*>(sq + swz<HD>(r, c)) = h;
  }

  // K and V rows of keys k0 .. k0+kBN-1 into `stage`; keys >= kend zero-filled.
  auto load_tile = [&](int k0, int stage) {
    uint16_t* dk = skv + stage * 2 * kBN * HD;
    uint16_t* dv = dk + kBN * HD;
    constexpr int kRowsPerPass = kThreads / CH;
    const int c = tid % CH;
#pragma unroll
    for (int r = tid / CH; r < kBN; r += kRowsPerPass) {
      const int key = k0 + r;
      const bool ok = key < kend;
      int64_t off = 0;
      if (ok) {
        int blk, slot;
        if (p.bs_shift >= 0) {
          blk = key >> p.bs_shift;
          slot = key & (p.block_size - 1);
        } else {
          blk = key / p.block_size;
          slot = key - blk * p.block_size;
        }
        off = ((static_cast<int64_t>(__ldg(p.table + blk)) * p.block_size + slot) * p.n_kv_heads + kvh) * HD + c * 8;
      }
      cp_async16(smem_addr(dk + swz<HD>(r, c)), p.k + off, ok);
      cp_async16(smem_addr(dv + swz<HD>(r, c)), p.v + off, ok);
    }
  };
  load_tile(kbeg, 0);
  cp_async_commit();
  __syncthreads();  // Q stored

  // Q's A fragment of m-tile mt, k-step ks (rows wrow + 16mt .. +15, dims 16ks .. +15).
  auto load_q = [&](int mt, int ks, uint32_t (&a)[4]) {
    ldsm_x4(smem_addr(sq + swz<HD>(wrow + 16 * mt + (lane & 15), 2 * ks + (lane >> 4))), a);
  };
  uint32_t qf[kQRegs ? KS : 1][4];
  if constexpr (kQRegs) {
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) load_q(0, ks, qf[ks]);
  }

  // Position of this thread's row r (0: wrow + 16mt + g, 1: + 8) of m-tile mt; padding rows
  // take the last row's. Recomputed where needed (registers are short for MT = 2).
  auto pos_of = [&](int mt, int r) { return p.start + min(m0 + wrow + 16 * mt + g + 8 * r, p.rows - 1) / p.group; };
  const int span = p.window > 0 ? p.window : 1 << 30;  // a row at pos sees keys (pos - span, pos]
  float o[MT][OT][4];
  float row_m[MT][2], row_l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int i = 0; i < OT; ++i) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.0f;
    row_m[mt][0] = row_m[mt][1] = -INFINITY;
    row_l[mt][0] = row_l[mt][1] = 0.0f;
  }

  for (int it = 0; it < n_tiles; ++it) {
    const int k0 = kbeg + it * kBN;
    cp_async_wait_all();
    __syncthreads();  // tile `it` is in; every warp is done with the other stage
    if (it + 1 < n_tiles) load_tile(k0 + kBN, (it + 1) & 1);
    cp_async_commit();
    const uint16_t* sk = skv + (it & 1) * 2 * kBN * HD;
    const uint16_t* sv = sk + kBN * HD;

    // S = Q.K^T: x4 loads give b0/b1 of two 8-key n-tiles (keys 16np + 0..7 and + 8..15).
    float s[MT][NT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < NT; ++i) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) {
      uint32_t qa[MT][4];
      if constexpr (!kQRegs) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) load_q(mt, ks, qa[mt]);
      }
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        uint32_t b[4];
        ldsm_x4(smem_addr(sk + swz<HD>(16 * np + (lane & 7) + ((lane >> 4) << 3), 2 * ks + ((lane >> 3) & 1))), b);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          const uint32_t(&a)[4] = kQRegs ? qf[kQRegs ? ks : 0] : qa[mt];
          mma16816(s[mt][2 * np], a, b[0], b[1]);
          mma16816(s[mt][2 * np + 1], a, b[2], b[3]);
        }
      }
    }

    // Logits as cpu::softcap / scale compute them; -inf where masked. s[mt][nt][e]: row r = e / 2
    // of m-tile mt, key k0 + 8nt + 2j + e % 2.
    const bool full = k0 + kBN <= pos_lo + 1 && (p.window <= 0 || k0 >= pos_hi - p.window + 1);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      const int pos[2] = {full ? 0 : pos_of(mt, 0), full ? 0 : pos_of(mt, 1)};
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float x = attn::logit(s[mt][nt][e], p.softcap, p.inv_cap, p.scale);
          if (!full) {
            const int key = k0 + 8 * nt + 2 * j + (e & 1), r = e >> 1;
            if (key > pos[r] || key <= pos[r] - span) x = -INFINITY;
          }
          s[mt][nt][e] = x;
        }
      }
    }

    // Online softmax; the 4 threads of a quad share a row.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(row_m[mt][r], mx);
        const float mu = m_new == -INFINITY ? 0.0f : m_new;  // no key seen yet: keep exp(-inf) = 0
        const float alpha = exp2f(__fmul_rn(__fsub_rn(row_m[mt][r], mu), kLog2e));
        row_m[mt][r] = m_new;
        float sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
          for (int e = 2 * r; e < 2 * r + 2; ++e) {
            s[mt][nt][e] = exp2f(__fmul_rn(__fsub_rn(s[mt][nt][e], mu), kLog2e));
            sum += s[mt][nt][e];
          }
        }
        row_l[mt][r] = __fmaf_rn(row_l[mt][r], alpha, sum);
#pragma unroll
        for (int i = 0; i < OT; ++i) {
          o[mt][i][2 * r] *= alpha;
          o[mt][i][2 * r + 1] *= alpha;
        }
      }
    }

    // O += P.V: S's accumulators of n-tiles 2kc, 2kc+1 are P's A fragment for keys 16kc .. +15;
    // transposed x4 loads give b0/b1 of two 8-dim n-tiles of V.
#pragma unroll
    for (int kc = 0; kc < kBN / 16; ++kc) {
      uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        a[mt][0] = pack_half2(s[mt][2 * kc][0], s[mt][2 * kc][1]);
        a[mt][1] = pack_half2(s[mt][2 * kc][2], s[mt][2 * kc][3]);
        a[mt][2] = pack_half2(s[mt][2 * kc + 1][0], s[mt][2 * kc + 1][1]);
        a[mt][3] = pack_half2(s[mt][2 * kc + 1][2], s[mt][2 * kc + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < HD / 16; ++dp) {
        uint32_t b[4];
        ldsm_x4_trans(smem_addr(sv + swz<HD>(16 * kc + (lane & 7) + (((lane >> 3) & 1) << 3), 2 * dp + (lane >> 4))),
                      b);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816(o[mt][2 * dp], a[mt], b[0], b[1]);
          mma16816(o[mt][2 * dp + 1], a[mt], b[2], b[3]);
        }
      }
    }
  }
  cp_async_wait_all();  // the last (empty) group, before the CTA exits

  // out = O / l: row r's dims 8i + 2j, +1.
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = row_l[mt][r];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const int m = m0 + wrow + 16 * mt + g + 8 * r;
      if (m >= p.rows) continue;
      const float inv = 1.0f / l;
      const int t = m / p.group, head = kvh * p.group + (m - t * p.group);
      float* dst = p.out + t * p.q_stride + static_cast<int64_t>(head) * HD + 2 * j;
#pragma unroll
      for (int i = 0; i < OT; ++i) {
        const float x0 = o[mt][i][2 * r] * inv, x1 = o[mt][i][2 * r + 1] * inv;
        if (p.out_pairs) {
          *reinterpret_cast<float2*>(dst + 8 * i) = make_float2(x0, x1);
        } else {
          dst[8 * i] = x0;
          dst[8 * i + 1] = x1;
        }
      }
    }
  }
}

template <int HD, int MT>
void launch(const Params& p, cudaStream_t stream) {
  constexpr int bm = 16 * MT * kWarps, bytes = smem_bytes(HD, MT);
  // Above the 48 KiB default: opt in (per device; cheap, so on every launch).
  cudaFuncSetAttribute(flash_kernel<HD, MT>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  flash_kernel<HD, MT><<<dim3(p.n_kv_heads, (p.rows + bm - 1) / bm), kThreads, bytes, stream>>>(p);
}

}  // namespace

int flash_warp_rows(const AttnArgs& a, int n) {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    sms = 132;  // an H100's
  // Both variants fit 2 CTAs per SM. 32 rows per warp halve the K/V bytes each query row
  // costs (shared memory and L2 reads), but give half the CTAs: worth it from a full wave on.
  const int64_t ctas32 = (static_cast<int64_t>(n) * (a.n_heads / a.n_kv_heads) + 127) / 128 * a.n_kv_heads;
  return ctas32 >= 2 * sms ? 32 : 16;
}

bool flash_supported(const AttnArgs& a) {
  return (a.head_dim == 64 || a.head_dim == 128) && a.n_heads > 0 && a.n_kv_heads > 0 &&
         a.n_heads % a.n_kv_heads == 0;
}

void flash(const AttnArgs& a, const KvLayer& kv, const int32_t* block_table, int start, int n, const float* q,
           float* out, int64_t q_stride, cudaStream_t stream, int warp_rows) {
  if (n <= 0) return;
  Params p{};
  p.q = q;
  p.out = out;
  p.q_stride = q_stride;
  p.k = kv.k;
  p.v = kv.v;
  p.table = block_table;
  p.block_size = kv.block_size;
  p.bs_shift = (kv.block_size & (kv.block_size - 1)) == 0 ? __builtin_ctz(static_cast<unsigned>(kv.block_size)) : -1;
  p.n_kv_heads = a.n_kv_heads;
  p.start = start;
  p.group = a.n_heads / a.n_kv_heads;
  p.rows = n * p.group;
  p.window = a.window;
  p.scale = a.scale;
  p.softcap = a.softcap;
  p.inv_cap = a.softcap > 0.0f ? 1.0f / a.softcap : 0.0f;
  p.out_pairs = reinterpret_cast<uintptr_t>(out) % 8 == 0 && q_stride % 2 == 0;
  if (warp_rows == 0) warp_rows = flash_warp_rows(a, n);
  if (a.head_dim == 64)
    warp_rows == 16 ? launch<64, 1>(p, stream) : launch<64, 2>(p, stream);
  else
    warp_rows == 16 ? launch<128, 1>(p, stream) : launch<128, 2>(p, stream);
}

}  // namespace velo::cuda::prefill
