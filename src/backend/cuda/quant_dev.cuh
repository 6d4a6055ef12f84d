// Device-side views of the GGUF blocks (quant/blocks.h), shared by the CUDA
// matvec, dequantize and embed kernels:
//  - loads that respect each layout's alignment (Q4_K/Q5_K blocks are 144/176
//    bytes, so 16-byte aligned; Q4_1/Q5_1 4-byte; Q4_0/Q5_0/Q8_0/Q6_K only 2-byte),
//  - per-type "matvec views": a block is split into kLanes parts, one per lane;
//    load() decodes a part's quants into int8 lanes once per weight row, and the
//    dot against Q8 activations (ActQ8View) runs on __dp4a,
//  - dequant16(): 16 consecutive values of a block, bit-exact with
//    quant::dequantize_row (every product rounded before the add: no FMA).
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

#include "backend/cuda/matmul_kernels.h"
#include "core/dtype.h"
#include "quant/blocks.h"

namespace velo::cuda::qdev {

// ---- programmatic dependent launch (see detail::launch_pdl) ---------------------
// Waits until the previous kernel in the stream has completed and its writes are visible.
// Programmatic dependent launch exists from sm_90; before it a kernel starts only
// after the one before it has finished, so there is nothing to wait for.
__device__ __forceinline__ void wait_for_inputs() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
// Lets the next kernel (a matvec) launch now; it still waits for this one to finish.
__device__ __forceinline__ void allow_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// ---- scalars and loads ------------------------------------------------------
__device__ __forceinline__ float half_to_float(uint32_t h) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(h)));
}
__device__ __forceinline__ float bf16_to_float(uint32_t h) { return __uint_as_float(h << 16); }

__device__ __forceinline__ uint32_t ld_u16(const uint8_t* p) {
  return __ldg(reinterpret_cast<const unsigned short*>(p));
}
__device__ __forceinline__ uint32_t ld_u32(const uint8_t* p) { return __ldg(reinterpret_cast<const unsigned*>(p)); }
__device__ __forceinline__ uint4 ld_u128(const uint8_t* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

// N little-endian words at a 2-byte-aligned address p: N aligned 4-byte loads from
// p rounded down, the run's last 2 bytes, and funnel shifts (about half the load
// instructions of 2N 2-byte loads). Reads nothing past the run (a misaligned run
// reads the 2 bytes before it, which belong to the same block), so sanitizers and
// tensors at the very end of an allocation are fine.
template <int N>
__device__ __forceinline__ void ld_words_a2(const uint8_t* p, uint32_t (&out)[N]) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  const unsigned* w = reinterpret_cast<const unsigned*>(a & ~uintptr_t{3});
  const unsigned sh = static_cast<unsigned>(a & 2) * 8;  // 0 or 16
  uint32_t v[N + 1];
#pragma unroll
  for (int i = 0; i < N; ++i) v[i] = __ldg(w + i);
  v[N] = ld_u16(p + 4 * N - 2);  // only used when misaligned: the run's last 2 bytes
#pragma unroll
  for (int i = 0; i < N; ++i) out[i] = __funnelshift_r(v[i], v[i + 1], sh);
}

__device__ __forceinline__ int dp4a(uint32_t a, int b, int c) { return __dp4a(static_cast<int>(a), b, c); }
constexpr uint32_t kLo4 = 0x0F0F0F0Fu;
// Bits 0..3 of b to bit 4 of bytes 0..3 (the 5th bit of four Q5 quants).
__device__ __forceinline__ uint32_t spread4_bit4(uint32_t b) { return ((b * 0x00204081u) & 0x01010101u) << 4; }

// ---- end of a matvec CTA: acc[r][t] of every lane -> y[t * y_stride + row0 + r] -------
// Warp shuffles, then the warps' sums in a fixed order (deterministic). All threads call it.
template <int kWarps, int R, int M>
__device__ __forceinline__ void reduce_store(const float (&acc)[R][M], int row0, int rows, int m, float* y,
                                             int64_t y_stride) {
  __shared__ float red[kWarps][R * M];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < M; ++t) {
      float v = acc[r][t];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0) red[warp][r * M + t] = v;
    }
  __syncthreads();
  if (threadIdx.x < R * M) {
    const int r = threadIdx.x / M, t = threadIdx.x % M;
    if (t < m && row0 + r < rows) {
      float v = red[0][threadIdx.x];
#pragma unroll
      for (int k = 1; k < kWarps; ++k) v += red[k][threadIdx.x];
      y[t * y_stride + row0 + r] = v;
    }
  }
}

// ---- grouped launches (matvec_quant.cu, matvec_float.cu) ------------------------
// The group item CTA blockIdx.x serves (block-uniform) and its first row, R rows per CTA.
template <int R>
__device__ __forceinline__ int group_item(const detail::MvGroup& g, int& row0) {
  int i = 0;
#pragma unroll
  for (int k = 1; k < detail::kMaxGroup; ++k)
    if (k < g.n && static_cast<int>(blockIdx.x) >= g.cta_begin[k]) i = k;
  row0 = (static_cast<int>(blockIdx.x) - g.cta_begin[i]) * R;
  return i;
}

// ---- activations of one token (pointers already at that token's row) -----------
struct ActRow {
  const int8_t* qs;
  const float* d;
  const float* s;
  const int32_t* bsum;
};
__device__ __forceinline__ ActRow act_row(const detail::ActQ8View& a, int t, int64_t cols, bool k_quant) {
  return {a.qs + t * cols, a.d + t * (k_quant ? cols / QK_K : cols / 32), a.s ? a.s + t * (cols / 32) : nullptr,
          a.bsum ? a.bsum + t * (cols / 16) : nullptr};
}

// ---- 32-element types: Q4_0, Q4_1, Q5_0, Q5_1 ------------------------------------
// Two lanes per block; part p holds qs[8p, 8p+8): elements 8p.. (low nibbles) and
// 16+8p.. (high nibbles). The lanes' integer sums are added before the one float
// combine per block, which is then the CPU's bit for bit.
template <GgmlType T>
struct MvQ32 {
  static constexpr bool kFive = T == GgmlType::Q5_0 || T == GgmlType::Q5_1;
  static constexpr bool kMin = T == GgmlType::Q4_1 || T == GgmlType::Q5_1;
  static constexpr int kOffset = kMin ? 0 : (kFive ? 16 : 8);  // q - offset
  static constexpr int kBytes = T == GgmlType::Q4_0 ? 18 : T == GgmlType::Q4_1 ? 20 : T == GgmlType::Q5_0 ? 22 : 24;
  static constexpr int kElems = 32, kLanes = 2;
  static constexpr bool kBlockSum = true;  // integer sum across the block's lanes
  struct W { float d, m; uint32_t lo[2], hi[2]; };
  struct X { int lo[2], hi[2]; int sum; float d, s; };

  __device__ static W load(const uint8_t* blk, int p) {
    W w;
    uint32_t q[2], qh = 0;
    if constexpr (kMin) {  // 4-byte aligned layouts: d, m | (qh) | qs
      const uint32_t dm = ld_u32(blk);
      w.d = half_to_float(dm & 0xFFFF);
      w.m = half_to_float(dm >> 16);
      const uint8_t* qs = blk + (kFive ? 8 : 4) + 8 * p;
      q[0] = ld_u32(qs);
      q[1] = ld_u32(qs + 4);
      if constexpr (kFive) qh = ld_u32(blk + 4);
    } else {  // 2-byte aligned: d | (qh) | qs
      w.d = half_to_float(ld_u16(blk));
      w.m = 0.0f;
      ld_words_a2<2>(blk + (kFive ? 6 : 2) + 8 * p, q);
      if constexpr (kFive) {
        uint32_t h[1];
        ld_words_a2<1>(blk + 2, h);
        qh = h[0];
      }
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      w.lo[i] = q[i] & kLo4;
      w.hi[i] = (q[i] >> 4) & kLo4;
      if constexpr (kFive) {
        w.lo[i] |= spread4_bit4((qh >> (8 * p + 4 * i)) & 0xF);
        w.hi[i] |= spread4_bit4((qh >> (16 + 8 * p + 4 * i)) & 0xF);
      }
    }
    return w;
  }
  __device__ static X xload(const ActRow& a, int b, int p) {
    X x;
    const int2 lo = *reinterpret_cast<const int2*>(a.qs + 32 * b + 8 * p);
    const int2 hi = *reinterpret_cast<const int2*>(a.qs + 32 * b + 16 + 8 * p);
    x.lo[0] = lo.x, x.lo[1] = lo.y, x.hi[0] = hi.x, x.hi[1] = hi.y;
    x.sum = 0;
    if constexpr (kOffset != 0)
      x.sum = dp4a(0x01010101u, lo.x, dp4a(0x01010101u, lo.y, dp4a(0x01010101u, hi.x, dp4a(0x01010101u, hi.y, 0))));
    x.d = a.d[b];
    x.s = kMin ? a.s[b] : 0.0f;
    return x;
  }
  // Σ (q - offset) · xq over this lane's 16 elements.
  __device__ static int idot(const W& w, const X& x) {
    int s = 0;
#pragma unroll
    for (int i = 0; i < 2; ++i) s = dp4a(w.hi[i], x.hi[i], dp4a(w.lo[i], x.lo[i], s));
    return s - kOffset * x.sum;
  }
  // As cpu matmul_scalar's dot_q4_0 .. dot_q5_1 per block.
  __device__ static float combine(const W& w, const X& x, int isum) {
    const float v = static_cast<float>(isum) * (w.d * x.d);
    return kMin ? v + w.m * x.s : v;
  }
};

// ---- Q8_0: four lanes per block, 8 quants each ----------------------------------
struct MvQ8_0 {
  static constexpr int kBytes = 34, kElems = 32, kLanes = 4;
  static constexpr bool kBlockSum = true;
  struct W { float d; uint32_t q[2]; };
  struct X { int v[2]; float d; };
  __device__ static W load(const uint8_t* blk, int p) {
    W w;
    w.d = half_to_float(ld_u16(blk));
    ld_words_a2<2>(blk + 2 + 8 * p, w.q);
    return w;
  }
  __device__ static X xload(const ActRow& a, int b, int p) {
    const int2 v = *reinterpret_cast<const int2*>(a.qs + 32 * b + 8 * p);
    return {{v.x, v.y}, a.d[b]};
  }
  __device__ static int idot(const W& w, const X& x) { return dp4a(w.q[1], x.v[1], dp4a(w.q[0], x.v[0], 0)); }
  __device__ static float combine(const W& w, const X& x, int isum) { return static_cast<float>(isum) * (w.d * x.d); }
};

// ---- K-quants: eight lanes per 256-block, 32 quants each, against Q8_K ----------
// A lane holds two runs of 16 quants (lo at element e_lo, hi at e_hi) and their
// scales; each lane combines in float itself (no shuffles: the float sum over a
// block's parts differs from the CPU's single combine only by rounding).
struct KX { int4 lo, hi; float d; int bs_lo, bs_hi; };
__device__ __forceinline__ KX kx_load(const ActRow& a, int b, int e_lo, int e_hi) {
  const int8_t* q = a.qs + QK_K * b;
  return {*reinterpret_cast<const int4*>(q + e_lo), *reinterpret_cast<const int4*>(q + e_hi), a.d[b],
          a.bsum[16 * b + e_lo / 16], a.bsum[16 * b + e_hi / 16]};
}
__device__ __forceinline__ int dot16(const uint32_t (&q)[4], const int4& x) {
  return dp4a(q[3], x.w, dp4a(q[2], x.z, dp4a(q[1], x.y, dp4a(q[0], x.x, 0))));
}

// Q4_K / Q5_K: lane t = 2k + h covers qs[32k + 16h, +16): sub-block 2k (low nibbles,
// elements 64k + 16h ..) and 2k+1 (high nibbles, 32 elements later).
template <bool kFive>
struct MvQ45K {
  static constexpr int kBytes = kFive ? 176 : 144, kElems = QK_K, kLanes = 8;
  static constexpr bool kBlockSum = false;
  struct W { float d, dmin; int sc_lo, sc_hi, mn_lo, mn_hi; uint32_t lo[4], hi[4]; };
  using X = KX;
  __device__ static W load(const uint8_t* blk, int t) {
    const int k = t >> 1, h = t & 1;
    const uint4 hdr = ld_u128(blk);  // d | dmin, scales[0..12)
    const uint4 qs = ld_u128(blk + (kFive ? 48 : 16) + 16 * t);
    W w;
    w.d = half_to_float(hdr.x & 0xFFFF);
    w.dmin = half_to_float(hdr.x >> 16);
    // 6-bit scales/mins of sub-blocks 2k, 2k+1 (quant::scale_min_k4), two per 16 bits.
    const unsigned sh = 16 * (k & 1);
    const uint32_t a = (hdr.y >> sh) & 0xFFFF, m = (hdr.z >> sh) & 0xFFFF, c = (hdr.w >> sh) & 0xFFFF;
    const uint32_t sc = k < 2 ? a & 0x3F3F : (c & 0x0F0F) | ((a >> 2) & 0x3030);
    const uint32_t mn = k < 2 ? m & 0x3F3F : ((c >> 4) & 0x0F0F) | ((m >> 2) & 0x3030);
    w.sc_lo = sc & 0xFF, w.sc_hi = sc >> 8, w.mn_lo = mn & 0xFF, w.mn_hi = mn >> 8;
    const uint32_t q[4] = {qs.x, qs.y, qs.z, qs.w};
    uint32_t qh[4] = {0, 0, 0, 0};
    if constexpr (kFive) {
      const uint4 v = ld_u128(blk + 16 + 16 * h);  // qh[16h, +16): bit 2k low, 2k+1 high
      qh[0] = v.x, qh[1] = v.y, qh[2] = v.z, qh[3] = v.w;
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      w.lo[i] = q[i] & kLo4;
      w.hi[i] = (q[i] >> 4) & kLo4;
      if constexpr (kFive) {
        w.lo[i] |= ((qh[i] >> (2 * k)) & 0x01010101u) << 4;
        w.hi[i] |= ((qh[i] >> (2 * k + 1)) & 0x01010101u) << 4;
      }
    }
    return w;
  }
  __device__ static X xload(const ActRow& a, int b, int t) {
    const int e = 64 * (t >> 1) + 16 * (t & 1);
    return kx_load(a, b, e, e + 32);
  }
  __device__ static float fdot(const W& w, const X& x) {
    const int isum = w.sc_lo * dot16(w.lo, x.lo) + w.sc_hi * dot16(w.hi, x.hi);
    const int msum = w.mn_lo * x.bs_lo + w.mn_hi * x.bs_hi;
    return x.d * (w.d * static_cast<float>(isum) - w.dmin * static_cast<float>(msum));
  }
};

// Q6_K: lane t = 4n + p covers ql[64n + 16p, +16) and qh[32n + 16(p&1), +16):
// elements 128n + 16p .. (low nibbles) and 64 later (high nibbles); q - 32 via the bsums.
struct MvQ6K {
  static constexpr int kBytes = 210, kElems = QK_K, kLanes = 8;
  static constexpr bool kBlockSum = false;
  struct W { float d; int sc_lo, sc_hi; uint32_t lo[4], hi[4]; };
  using X = KX;
  __device__ static W load(const uint8_t* blk, int t) {
    const int n = t >> 2, p = t & 3;
    uint32_t ql[4], qh[4];
    ld_words_a2<4>(blk + 64 * n + 16 * p, ql);
    ld_words_a2<4>(blk + 128 + 32 * n + 16 * (p & 1), qh);
    W w;
    w.sc_lo = static_cast<int8_t>(blk[192 + 8 * n + p]);
    w.sc_hi = static_cast<int8_t>(blk[192 + 8 * n + p + 4]);
    w.d = half_to_float(ld_u16(blk + 208));
    const unsigned sh = 2 * (p >> 1);  // qh bit pair of the low run; the high run's is 4 above
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      w.lo[i] = (ql[i] & kLo4) | (((qh[i] >> sh) & 0x03030303u) << 4);
      w.hi[i] = ((ql[i] >> 4) & kLo4) | (((qh[i] >> (sh + 4)) & 0x03030303u) << 4);
    }
    return w;
  }
  __device__ static X xload(const ActRow& a, int b, int t) {
    const int e = 128 * (t >> 2) + 16 * (t & 3);
    return kx_load(a, b, e, e + 64);
  }
  __device__ static float fdot(const W& w, const X& x) {
    const int isum = w.sc_lo * (dot16(w.lo, x.lo) - 32 * x.bs_lo) + w.sc_hi * (dot16(w.hi, x.hi) - 32 * x.bs_hi);
    return w.d * x.d * static_cast<float>(isum);
  }
};

// ---- exact dequantization: 16 values of group g (elements [16g, 16g+16)) of a block --
// Byte i of a run of 16 held in 4 words.
__device__ __forceinline__ uint32_t byte_of(const uint32_t (&w)[4], int i) { return (w[i >> 2] >> (8 * (i & 3))) & 0xFF; }
__device__ __forceinline__ void words_of(const uint4& v, uint32_t (&w)[4]) { w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w; }

template <GgmlType T>
__device__ __forceinline__ void dequant16(const uint8_t* blk, int g, float (&y)[16]) {
  uint32_t q[4];
  if constexpr (T == GgmlType::Q4_0 || T == GgmlType::Q4_1 || T == GgmlType::Q5_0 || T == GgmlType::Q5_1) {
    constexpr bool kMin = T == GgmlType::Q4_1 || T == GgmlType::Q5_1;
    constexpr bool kFive = T == GgmlType::Q5_0 || T == GgmlType::Q5_1;
    const float d = half_to_float(ld_u16(blk));
    const float m = kMin ? half_to_float(ld_u16(blk + 2)) : 0.0f;
    const int hdr = kMin ? 4 : 2;
    uint32_t qh = 0;
    if constexpr (kFive) {
      uint32_t h[1];
      ld_words_a2<1>(blk + hdr, h);
      qh = h[0];
    }
    ld_words_a2<4>(blk + hdr + (kFive ? 4 : 0), q);
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      int v = static_cast<int>((byte_of(q, i) >> (4 * g)) & 0xF);
      if constexpr (kFive) v |= static_cast<int>((qh >> (i + 16 * g)) & 1) << 4;
      if constexpr (kMin) y[i] = __fadd_rn(__fmul_rn(static_cast<float>(v), d), m);
      else y[i] = __fmul_rn(static_cast<float>(v - (kFive ? 16 : 8)), d);
    }
  } else if constexpr (T == GgmlType::Q8_0) {
    const float d = half_to_float(ld_u16(blk));
    ld_words_a2<4>(blk + 2 + 16 * g, q);
#pragma unroll
    for (int i = 0; i < 16; ++i) y[i] = __fmul_rn(static_cast<float>(static_cast<int8_t>(byte_of(q, i))), d);
  } else if constexpr (T == GgmlType::Q4_K || T == GgmlType::Q5_K) {
    constexpr bool kFive = T == GgmlType::Q5_K;
    const int k = g >> 2, hi = (g >> 1) & 1, l0 = 16 * (g & 1);  // chunk of 64, nibble, offset in it
    const int j = 2 * k + hi;                                    // sub-block of 32
    const uint8_t* s = blk + 4;
    int sc, mn;
    if (j < 4) {
      sc = s[j] & 63, mn = s[j + 4] & 63;
    } else {
      sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
      mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
    const float d1 = __fmul_rn(half_to_float(ld_u16(blk)), static_cast<float>(sc));
    const float m1 = __fmul_rn(half_to_float(ld_u16(blk + 2)), static_cast<float>(mn));
    words_of(ld_u128(blk + (kFive ? 48 : 16) + 32 * k + l0), q);
    uint32_t qh[4] = {0, 0, 0, 0};
    if constexpr (kFive) words_of(ld_u128(blk + 16 + l0), qh);
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      int v = static_cast<int>((byte_of(q, i) >> (4 * hi)) & 0xF);
      if constexpr (kFive) v |= static_cast<int>((byte_of(qh, i) >> j) & 1) << 4;
      y[i] = __fsub_rn(__fmul_rn(d1, static_cast<float>(v)), m1);
    }
  } else if constexpr (T == GgmlType::Q6_K) {
    const int n = g >> 3, qd = (g & 7) >> 1, l0 = 16 * (g & 1);  // half, quarter, offset
    uint32_t qh[4];
    ld_words_a2<4>(blk + 64 * n + l0 + 32 * (qd & 1), q);
    ld_words_a2<4>(blk + 128 + 32 * n + l0, qh);
    const float dsc = __fmul_rn(half_to_float(ld_u16(blk + 208)), static_cast<float>(static_cast<int8_t>(blk[192 + g])));
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const int v = static_cast<int>(((byte_of(q, i) >> (4 * (qd >> 1))) & 0xF) | (((byte_of(qh, i) >> (2 * qd)) & 3) << 4));
      y[i] = __fmul_rn(dsc, static_cast<float>(v - 32));
    }
  }
}

// Bytes and elements of a block of the quant types dequant16 handles.
template <GgmlType T> struct BlockOf;
template <> struct BlockOf<GgmlType::Q4_0> { static constexpr int kBytes = 18, kElems = 32; };
template <> struct BlockOf<GgmlType::Q4_1> { static constexpr int kBytes = 20, kElems = 32; };
template <> struct BlockOf<GgmlType::Q5_0> { static constexpr int kBytes = 22, kElems = 32; };
template <> struct BlockOf<GgmlType::Q5_1> { static constexpr int kBytes = 24, kElems = 32; };
template <> struct BlockOf<GgmlType::Q8_0> { static constexpr int kBytes = 34, kElems = 32; };
template <> struct BlockOf<GgmlType::Q4_K> { static constexpr int kBytes = 144, kElems = QK_K; };
template <> struct BlockOf<GgmlType::Q5_K> { static constexpr int kBytes = 176, kElems = QK_K; };
template <> struct BlockOf<GgmlType::Q6_K> { static constexpr int kBytes = 210, kElems = QK_K; };

}  // namespace velo::cuda::qdev
