// The 32-element block quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) × up to 8 Q8
// token rows, bit-identical to the CPU backend (matmul_q32.cpp).
//
// Why bit-identical and not merely close: SmolLM2-135M in Q4_1 amplifies a
// 1-ulp difference in one layer into a different greedy token a few dozen
// steps later, because the next matvec re-quantizes its input to 8 bits and a
// rounding flip there is a whole quantization step. So we follow the CPU's
// float operations exactly: per output, 8 float lanes (lane j = elements
// 4j..4j+3 of every block) each run acc_j = fma(float(isum_j,b), d_w,b·d_x,b,
// acc_j) over the blocks b in order (the integer dots are exact); min types add
// Σ m_w·s_x in 8 lanes by block index mod 8; the result is simd.h hsum_ps of the
// lanes (plus that of the min lanes).
//
// The fma chains are sequential per lane, so parallelism comes from rows: a
// warp owns 4 rows and walks their blocks 8 at a time. Thread t loads block
// (round·8 + t%8) of row t/8 (coalesced: each row's 8 blocks are contiguous),
// computes its 8 lane dots with __dp4a and hands them through shared memory to
// the chain owners: thread t then runs lane t%8 of row t/8 over those 8
// blocks. Min lanes need no exchange: lane k of the CPU's Σ m·s takes the
// blocks ≡ k (mod 8), which thread t loaded itself.
#include <cstdint>

#include "backend/cuda/matmul_kernels.h"
#include "backend/cuda/quant_dev.cuh"
#include "quant/blocks.h"

namespace velo::cuda::detail {
namespace {

using namespace qdev;

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kRowsPerCta = kWarps * kRowsPerWarp;
constexpr unsigned kFull = 0xffffffffu;

// One weight block decoded: the element values as signed int8x4 per CPU lane
// (lane j = elements 4j..4j+3), its scale and (min types) its min.
struct Decoded {
  int w[8];
  float d;
  float m;
};

// Nibbles of 4 qs bytes (one word) into two lanes' int8x4: low nibbles (elements
// 4j..) and high nibbles (elements 16+4j..), with 5th bits hb_lo / hb_hi, minus `off`.
__device__ __forceinline__ void nibble_lanes(uint32_t q, uint32_t hb_lo, uint32_t hb_hi, int off, int& lo,
                                             int& hi) {
  const uint32_t l = (q & 0x0F0F0F0Fu) | hb_lo;
  const uint32_t h = ((q >> 4) & 0x0F0F0F0Fu) | hb_hi;
  // Per-byte modular subtraction: 0..31 minus 8 or 16 lands in int8's -16..23.
  const uint32_t o = 0x01010101u * static_cast<uint32_t>(off);
  lo = static_cast<int>(__vsub4(l, o));
  hi = static_cast<int>(__vsub4(h, o));
}

// Bit e of qh (element e) as 0x10 in byte e%4 of lane e/4's word.
__device__ __forceinline__ uint32_t high_bits(uint32_t qh, int lane) {
  const uint32_t b = (qh >> (4 * lane)) & 0xF;
  return ((b & 1) << 4) | ((b & 2) << 11) | ((b & 4) << 18) | ((b & 8) << 25);
}

template <GgmlType T> struct Q32;

template <> struct Q32<GgmlType::Q4_0> {
  static constexpr int kBytes = sizeof(block_q4_0);
  static constexpr bool kMin = false;
  static __device__ __forceinline__ Decoded load(const uint8_t* p) {
    Decoded r;
    r.d = half_to_float(ld_u16(p));
    r.m = 0.0f;
    uint32_t qs[4];
    ld_words_a2<4>(p + 2, qs);
#pragma unroll
    for (int j = 0; j < 4; ++j) nibble_lanes(qs[j], 0, 0, 8, r.w[j], r.w[j + 4]);
    return r;
  }
};

template <> struct Q32<GgmlType::Q4_1> {
  static constexpr int kBytes = sizeof(block_q4_1);
  static constexpr bool kMin = true;
  static __device__ __forceinline__ Decoded load(const uint8_t* p) {
    Decoded r;
    const uint32_t dm = ld_u32(p);
    r.d = half_to_float(dm & 0xFFFF);
    r.m = half_to_float(dm >> 16);
#pragma unroll
    for (int j = 0; j < 4; ++j) nibble_lanes(ld_u32(p + 4 + 4 * j), 0, 0, 0, r.w[j], r.w[j + 4]);
    return r;
  }
};

template <> struct Q32<GgmlType::Q5_0> {
  static constexpr int kBytes = sizeof(block_q5_0);
  static constexpr bool kMin = false;
  static __device__ __forceinline__ Decoded load(const uint8_t* p) {
    Decoded r;
    r.d = half_to_float(ld_u16(p));
    r.m = 0.0f;
    uint32_t qh[1], qs[4];
    ld_words_a2<1>(p + 2, qh);
    ld_words_a2<4>(p + 6, qs);
#pragma unroll
    for (int j = 0; j < 4; ++j)
      nibble_lanes(qs[j], high_bits(qh[0], j), high_bits(qh[0], j + 4), 16, r.w[j], r.w[j + 4]);
    return r;
  }
};

template <> struct Q32<GgmlType::Q5_1> {
  static constexpr int kBytes = sizeof(block_q5_1);
  static constexpr bool kMin = true;
  static __device__ __forceinline__ Decoded load(const uint8_t* p) {
    Decoded r;
    const uint32_t dm = ld_u32(p);
    r.d = half_to_float(dm & 0xFFFF);
    r.m = half_to_float(dm >> 16);
    const uint32_t qh = ld_u32(p + 4);
#pragma unroll
    for (int j = 0; j < 4; ++j)
      nibble_lanes(ld_u32(p + 8 + 4 * j), high_bits(qh, j), high_bits(qh, j + 4), 0, r.w[j], r.w[j + 4]);
    return r;
  }
};

template <> struct Q32<GgmlType::Q8_0> {
  static constexpr int kBytes = sizeof(block_q8_0);
  static constexpr bool kMin = false;
  static __device__ __forceinline__ Decoded load(const uint8_t* p) {
    Decoded r;
    r.d = half_to_float(ld_u16(p));
    r.m = 0.0f;
    uint32_t qs[8];
    ld_words_a2<8>(p + 2, qs);
#pragma unroll
    for (int j = 0; j < 8; ++j) r.w[j] = static_cast<int>(qs[j]);
    return r;
  }
};

// M token slots (tokens t >= m skipped at run time).
template <GgmlType T, int M>
__global__ void __launch_bounds__(32 * kWarps)
matvec_q32_kernel(const uint8_t* __restrict__ w, int64_t row_bytes, int rows, int nb, ActQ8View x, int64_t cols,
                  int m, float* __restrict__ y, int64_t y_stride) {
  using Q = Q32<T>;
  allow_dependents();
  // [warp][row in warp][block in round][lane]: the lane dots of one token, and the blocks' d_w.
  __shared__ float dots[kWarps][kRowsPerWarp][8][8];
  __shared__ float dws[kWarps][kRowsPerWarp][8];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int r_in = lane >> 3, k = lane & 7;  // the row this thread loads for / chains for; its block / CPU lane
  const int row = min(blockIdx.x * kRowsPerCta + warp * kRowsPerWarp + r_in, rows - 1);
  const uint8_t* wr = w + static_cast<int64_t>(row) * row_bytes;

  float acc[M], macc[M];
#pragma unroll
  for (int t = 0; t < M; ++t) acc[t] = macc[t] = 0.0f;

  const int rounds = (nb + 7) / 8;
  Decoded next = Q::load(wr + static_cast<int64_t>(min(k, nb - 1)) * Q::kBytes);
  wait_for_inputs();  // the first weights are in flight; now the activations
  for (int rd = 0; rd < rounds; ++rd) {
    const int b = rd * 8 + k;
    const bool valid = b < nb;
    const Decoded cur = next;
    if (rd + 1 < rounds) next = Q::load(wr + static_cast<int64_t>(min(b + 8, nb - 1)) * Q::kBytes);
    dws[warp][r_in][k] = cur.d;
#pragma unroll
    for (int t = 0; t < M; ++t) {
      if (t >= m) break;  // uniform over the CTA
      const int8_t* xq = x.qs + t * cols + static_cast<int64_t>(min(b, nb - 1)) * 32;
      const uint4 a0 = ld_u128(reinterpret_cast<const uint8_t*>(xq));
      const uint4 a1 = ld_u128(reinterpret_cast<const uint8_t*>(xq) + 16);
      const int av[8] = {static_cast<int>(a0.x), static_cast<int>(a0.y), static_cast<int>(a0.z),
                         static_cast<int>(a0.w), static_cast<int>(a1.x), static_cast<int>(a1.y),
                         static_cast<int>(a1.z), static_cast<int>(a1.w)};
      float* out = dots[warp][r_in][k];
#pragma unroll
      for (int j = 0; j < 8; ++j) out[j] = static_cast<float>(__dp4a(cur.w[j], av[j], 0));
      if constexpr (Q::kMin) {  // CPU min lane k: the blocks ≡ k (mod 8), in order
        if (valid) macc[t] = __fmaf_rn(cur.m, x.s[t * (cols / 32) + b], macc[t]);
      }
      __syncwarp();
      // Chain of lane k of this row over the round's blocks, in block order.
      const int nk = min(8, nb - rd * 8);
      const float* xd = x.d + t * (cols / 32) + rd * 8;
      for (int i = 0; i < nk; ++i)
        acc[t] = __fmaf_rn(dots[warp][r_in][i][k], __fmul_rn(dws[warp][r_in][i], xd[i]), acc[t]);
      __syncwarp();
    }
  }

  const int my_row = blockIdx.x * kRowsPerCta + warp * kRowsPerWarp + r_in;
#pragma unroll
  for (int t = 0; t < M; ++t) {
    if (t >= m) break;
    float s = acc[t];  // hsum_ps over the row's 8 threads: (+4), (+2), (+1)
    s = __fadd_rn(s, __shfl_xor_sync(kFull, s, 4));
    s = __fadd_rn(s, __shfl_xor_sync(kFull, s, 2));
    s = __fadd_rn(s, __shfl_xor_sync(kFull, s, 1));
    if constexpr (Q::kMin) {
      float u = macc[t];
      u = __fadd_rn(u, __shfl_xor_sync(kFull, u, 4));
      u = __fadd_rn(u, __shfl_xor_sync(kFull, u, 2));
      u = __fadd_rn(u, __shfl_xor_sync(kFull, u, 1));
      s = __fadd_rn(s, u);
    }
    if (k == 0 && my_row < rows) y[t * y_stride + my_row] = s;
  }
}

template <GgmlType T, int M>
void launch(const void* w, int64_t rows, int64_t cols, const ActQ8View& x, int64_t m, float* y, int64_t y_stride,
            cudaStream_t stream) {
  const int nb = static_cast<int>(cols / 32);
  const auto grid = static_cast<unsigned>((rows + kRowsPerCta - 1) / kRowsPerCta);
  launch_pdl(matvec_q32_kernel<T, M>, grid, 32 * kWarps, stream, static_cast<const uint8_t*>(w),
             static_cast<int64_t>(nb) * Q32<T>::kBytes, static_cast<int>(rows), nb, x, cols, static_cast<int>(m), y,
             y_stride);
}

template <GgmlType T>
void dispatch(const void* w, int64_t rows, int64_t cols, const ActQ8View& x, int64_t m, float* y, int64_t y_stride,
              cudaStream_t stream) {
  if (m == 1) launch<T, 1>(w, rows, cols, x, m, y, y_stride, stream);
  else if (m == 2) launch<T, 2>(w, rows, cols, x, m, y, y_stride, stream);
  else if (m <= 4) launch<T, 4>(w, rows, cols, x, m, y, y_stride, stream);
  else launch<T, 8>(w, rows, cols, x, m, y, y_stride, stream);
}

}  // namespace

void matvec_q32(GgmlType t, const void* w, int64_t rows, int64_t cols, const ActQ8View& x, int64_t m, float* y,
                int64_t y_stride, cudaStream_t stream) {
  switch (t) {
    case GgmlType::Q4_0: return dispatch<GgmlType::Q4_0>(w, rows, cols, x, m, y, y_stride, stream);
    case GgmlType::Q4_1: return dispatch<GgmlType::Q4_1>(w, rows, cols, x, m, y, y_stride, stream);
    case GgmlType::Q5_0: return dispatch<GgmlType::Q5_0>(w, rows, cols, x, m, y, y_stride, stream);
    case GgmlType::Q5_1: return dispatch<GgmlType::Q5_1>(w, rows, cols, x, m, y, y_stride, stream);
    default: return dispatch<GgmlType::Q8_0>(w, rows, cols, x, m, y, y_stride, stream);
  }
}

}  // namespace velo::cuda::detail
