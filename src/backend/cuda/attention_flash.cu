// Fused prefill attention (flash attention 2 style) on the tensor cores.
//
// A CTA takes kBM query rows of one kv head. Rows are (token, q head of the
// group) pairs, the group's heads adjacent, so each K/V tile loaded serves all
// q heads sharing it (grouped-query attention for free); the causal / window
// mask is per row (a row's position is its token's). Its 4 warps own 16 rows
// each and walk the visible keys in tiles of kBN:
//   S = Q.K^T     mma m16n8k16 (Q fragments in registers, K from shared memory)
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

namespace velo::cuda::prefill {
namespace {

constexpr int kBM = 64;  // query rows per CTA
constexpr int kBN = 64;  // keys per tile
constexpr int kWarps = kBM / 16;
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
};

template <int HD>
constexpr int smem_bytes() {
  return (kBM + 4 * kBN) * HD * 2;  // Q + 2 stages of (K, V), fp16
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

template <int HD>
__global__ void __launch_bounds__(kThreads) flash_kernel(const Params p) {
  constexpr int CH = HD / 8;   // 16-byte chunks per row
  constexpr int KS = HD / 16;  // k-steps of Q.K^T
  constexpr int NT = kBN / 8;  // 8-key n-tiles of S
  constexpr int OT = HD / 8;   // 8-dim n-tiles of O
  extern __shared__ __align__(128) uint16_t sm[];
  uint16_t* sq = sm;             // [kBM][HD]
  uint16_t* skv = sm + kBM * HD;  // [stage][K, V][kBN][HD]

  const int kvh = blockIdx.x;
  const int m0 = (gridDim.y - 1 - blockIdx.y) * kBM;  // the rows with the most keys start first
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, j = lane & 3;
  const int m_last = min(m0 + kBM, p.rows) - 1;
  const int pos_lo = p.start + m0 / p.group, pos_hi = p.start + m_last / p.group;
  const int kbeg = p.window > 0 ? max(0, pos_lo - p.window + 1) : 0;
  const int kend = pos_hi + 1;  // keys [kbeg, kend) are visible to some row of the CTA
  const int n_tiles = (kend - kbeg + kBN - 1) / kBN;

  // Q rows -> fp16, shared.
  for (int i = tid; i < kBM * CH; i += kThreads) {
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

  // This warp's Q as A fragments (rows warp*16 .. +15), kept for the whole loop.
  uint32_t qf[KS][4];
#pragma unroll
  for (int ks = 0; ks < KS; ++ks) ldsm_x4(smem_addr(sq + swz<HD>(warp * 16 + (lane & 15), 2 * ks + (lane >> 4))), qf[ks]);

  // This thread's rows: warp*16 + g (r = 0) and + 8 (r = 1); padding rows take the last row's position.
  int pos[2], lo[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int m = min(m0 + warp * 16 + g + 8 * r, p.rows - 1);
    pos[r] = p.start + m / p.group;
    lo[r] = p.window > 0 ? pos[r] - p.window + 1 : 0;
  }
  float o[OT][4];
#pragma unroll
  for (int i = 0; i < OT; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float row_m[2] = {-INFINITY, -INFINITY}, row_l[2] = {0.0f, 0.0f};

  for (int it = 0; it < n_tiles; ++it) {
    const int k0 = kbeg + it * kBN;
    cp_async_wait_all();
    __syncthreads();  // tile `it` is in; every warp is done with the other stage
    if (it + 1 < n_tiles) load_tile(k0 + kBN, (it + 1) & 1);
    cp_async_commit();
    const uint16_t* sk = skv + (it & 1) * 2 * kBN * HD;
    const uint16_t* sv = sk + kBN * HD;

    // S = Q.K^T: x4 loads give b0/b1 of two 8-key n-tiles (keys 16np + 0..7 and + 8..15).
    float s[NT][4];
#pragma unroll
    for (int i = 0; i < NT; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) {
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        uint32_t b[4];
        ldsm_x4(smem_addr(sk + swz<HD>(16 * np + (lane & 7) + ((lane >> 4) << 3), 2 * ks + ((lane >> 3) & 1))), b);
        mma16816(s[2 * np], qf[ks], b[0], b[1]);
        mma16816(s[2 * np + 1], qf[ks], b[2], b[3]);
      }
    }

    // Logits as cpu::softcap / scale compute them; -inf where masked. s[nt][e]: row r = e / 2,
    // key k0 + 8nt + 2j + e % 2.
    const bool full = k0 + kBN <= pos_lo + 1 && (p.window <= 0 || k0 >= pos_hi - p.window + 1);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[nt][e];
        if (p.softcap > 0.0f) x = __fmul_rn(tanhf(__fmul_rn(x, p.inv_cap)), p.softcap);
        x = __fmul_rn(x, p.scale);
        if (!full) {
          const int key = k0 + 8 * nt + 2 * j + (e & 1), r = e >> 1;
          if (key > pos[r] || key < lo[r]) x = -INFINITY;
        }
        s[nt][e] = x;
      }
    }

    // Online softmax; the 4 threads of a quad share a row.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(row_m[r], mx);
      const float mu = m_new == -INFINITY ? 0.0f : m_new;  // no key seen yet: keep exp(-inf) = 0
      const float alpha = exp2f(__fmul_rn(__fsub_rn(row_m[r], mu), kLog2e));
      row_m[r] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int e = 2 * r; e < 2 * r + 2; ++e) {
          s[nt][e] = exp2f(__fmul_rn(__fsub_rn(s[nt][e], mu), kLog2e));
          sum += s[nt][e];
        }
      }
      row_l[r] = __fmaf_rn(row_l[r], alpha, sum);
#pragma unroll
      for (int i = 0; i < OT; ++i) {
        o[i][2 * r] *= alpha;
        o[i][2 * r + 1] *= alpha;
      }
    }

    // O += P.V: S's accumulators of n-tiles 2kc, 2kc+1 are P's A fragment for keys 16kc .. +15;
    // transposed x4 loads give b0/b1 of two 8-dim n-tiles of V.
#pragma unroll
    for (int kc = 0; kc < kBN / 16; ++kc) {
      const uint32_t a[4] = {pack_half2(s[2 * kc][0], s[2 * kc][1]), pack_half2(s[2 * kc][2], s[2 * kc][3]),
                             pack_half2(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                             pack_half2(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
      for (int dp = 0; dp < HD / 16; ++dp) {
        uint32_t b[4];
        ldsm_x4_trans(smem_addr(sv + swz<HD>(16 * kc + (lane & 7) + (((lane >> 3) & 1) << 3), 2 * dp + (lane >> 4))),
                      b);
        mma16816(o[2 * dp], a, b[0], b[1]);
        mma16816(o[2 * dp + 1], a, b[2], b[3]);
      }
    }
  }
  cp_async_wait_all();  // the last (empty) group, before the CTA exits

  // out = O / l: row r's dims 8i + 2j, +1.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = row_l[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int m = m0 + warp * 16 + g + 8 * r;
    if (m >= p.rows) continue;
    const float inv = 1.0f / l;
    const int t = m / p.group, head = kvh * p.group + (m - t * p.group);
    float* dst = p.out + t * p.q_stride + static_cast<int64_t>(head) * HD + 2 * j;
#pragma unroll
    for (int i = 0; i < OT; ++i) {
      dst[8 * i] = o[i][2 * r] * inv;
      dst[8 * i + 1] = o[i][2 * r + 1] * inv;
    }
  }
}

template <int HD>
void launch(const Params& p, int m_tiles, cudaStream_t stream) {
  constexpr int bytes = smem_bytes<HD>();
  // Above the 48 KiB default: opt in (per device; cheap, so on every launch).
  cudaFuncSetAttribute(flash_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  flash_kernel<HD><<<dim3(p.n_kv_heads, m_tiles), kThreads, bytes, stream>>>(p);
}

}  // namespace

bool flash_supported(const AttnArgs& a) {
  return (a.head_dim == 64 || a.head_dim == 128) && a.n_heads > 0 && a.n_kv_heads > 0 &&
         a.n_heads % a.n_kv_heads == 0;
}

void flash(const AttnArgs& a, const KvLayer& kv, const int32_t* block_table, int start, int n, const float* q,
           float* out, int64_t q_stride, cudaStream_t stream) {
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
  const int m_tiles = (p.rows + kBM - 1) / kBM;
  if (a.head_dim == 64)
    launch<64>(p, m_tiles, stream);
  else
    launch<128>(p, m_tiles, stream);
}

}  // namespace velo::cuda::prefill
