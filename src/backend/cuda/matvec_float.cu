// F32 / F16 / BF16 weights × up to 8 token rows: the decode matvec.
//
// Memory bound. A CTA owns R weight rows; its threads walk the row in 16-byte
// chunks (8 halves or 4 floats; coalesced across the CTA), with U chunks per row
// loaded before any is used so that R*U*16 bytes per thread are in flight. The
// activations are rounded to fp16/bf16 like the CPU's (F32: used as given), so
// every product is exact in f32 and accumulates in f32. Rows that are not 16-byte
// aligned (cols not a multiple of 8, or of 4 for F32) take a scalar variant.
// Launched as a programmatic dependent of the activation rounding (see launch_pdl).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include "backend/cuda/matmul_kernels.h"
#include "backend/cuda/quant_dev.cuh"

namespace velo::cuda::detail {
namespace {

using namespace qdev;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;

// One chunk of a row: kElems consecutive elements of weights (w) or activations (x).
// kRound: x is f32 and rounded here to fp16/bf16 precision (else: already rounded bits,
// or F32 weights' f32 activations as given).
template <GgmlType T, bool kVec, bool kRound>
struct Chunk {
  static constexpr int kElems = kVec ? (T == GgmlType::F32 ? 4 : 8) : 1;
  using Raw = std::conditional_t<kVec, uint4, uint32_t>;
  using XElem = std::conditional_t<T == GgmlType::F32 || kRound, float, uint16_t>;  // activation element

  __device__ static Raw load_w(const uint8_t* row, int64_t c) {
    if constexpr (kVec) return __ldg(reinterpret_cast<const uint4*>(row) + c);
    else if constexpr (T == GgmlType::F32) return __ldg(reinterpret_cast<const unsigned*>(row) + c);
    else return __ldg(reinterpret_cast<const unsigned short*>(row) + c);
  }
  // Raw 32-bit word -> 2 floats (halves) or 1 float.
  __device__ static void word_to_float(uint32_t u, float* f) {
    if constexpr (T == GgmlType::F32) {
      f[0] = __uint_as_float(u);
    } else if constexpr (T == GgmlType::BF16) {
      f[0] = __uint_as_float(u << 16);
      if constexpr (kVec) f[1] = __uint_as_float(u & 0xFFFF0000u);
    } else {
      f[0] = half_to_float(u & 0xFFFF);
      if constexpr (kVec) f[1] = half_to_float(u >> 16);
    }
  }
  __device__ static void to_float(const Raw& v, float (&f)[kElems]) {
    if constexpr (kVec) {
      constexpr int kPer = kElems / 4;  // floats per 32-bit word
      word_to_float(v.x, f), word_to_float(v.y, f + kPer), word_to_float(v.z, f + 2 * kPer),
          word_to_float(v.w, f + 3 * kPer);
    } else {
      word_to_float(v, f);
    }
  }
  // Two floats rounded to nearest even at the weights' precision (as cpu quantize_act_row).
  __device__ static float2 round2(float a, float b) {
    if constexpr (T == GgmlType::BF16) return __bfloat1622float2(__float22bfloat162_rn(make_float2(a, b)));
    else return __half22float2(__float22half2_rn(make_float2(a, b)));
  }
  __device__ static void load_x(const XElem* row, int64_t c, float (&f)[kElems]) {
    if constexpr (kRound && kVec) {  // 8 floats
      const float4* p = reinterpret_cast<const float4*>(row + c * kElems);
      const float4 a = p[0], b = p[1];
      const float2 r0 = round2(a.x, a.y), r1 = round2(a.z, a.w), r2 = round2(b.x, b.y), r3 = round2(b.z, b.w);
      f[0] = r0.x, f[1] = r0.y, f[2] = r1.x, f[3] = r1.y, f[4] = r2.x, f[5] = r2.y, f[6] = r3.x, f[7] = r3.y;
    } else if constexpr (kRound) {
      f[0] = round2(row[c], 0.0f).x;
    } else if constexpr (kVec) {
      const uint4 v = *reinterpret_cast<const uint4*>(row + c * kElems);
      to_float(v, f);
    } else if constexpr (T == GgmlType::F32) {
      f[0] = row[c];
    } else {
      word_to_float(row[c], f);
    }
  }
};

template <GgmlType T, bool kVec, bool kRound, int R, int M, int U>
__global__ void __launch_bounds__(kThreads, 4)
matvec_float_kernel(const uint8_t* __restrict__ w, int64_t row_bytes, int rows, int64_t nchunks,
                    const void* __restrict__ xv, int64_t cols, int m, float* __restrict__ y, int64_t y_stride) {
  // The next call's activation conversion may launch now (it waits for this kernel
  // before touching the activation scratch), so consecutive calls overlap ramp and tail.
  allow_dependents();
  using C = Chunk<T, kVec, kRound>;
  constexpr int E = C::kElems;
  const auto* x = static_cast<const typename C::XElem*>(xv);
  const int row0 = blockIdx.x * R;
  const uint8_t* wr[R];  // past the last row: the last row again (loaded, never stored)
#pragma unroll
  for (int r = 0; r < R; ++r) wr[r] = w + static_cast<int64_t>(min(row0 + r, rows - 1)) * row_bytes;

  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < M; ++t) acc[r][t] = 0.0f;

  // Same trip count for every thread (the first step waits for the inputs).
  constexpr int64_t kStep = static_cast<int64_t>(kThreads) * U;
  const int64_t nsteps = (nchunks + kStep - 1) / kStep;
  for (int64_t s = 0; s < nsteps; ++s) {
    const int64_t c0 = s * kStep + threadIdx.x;
    typename C::Raw raw[U][R];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t c = c0 + u * kThreads;
      const int64_t cc = c < nchunks ? c : nchunks - 1;  // past the end: the last chunk again (unused)
#pragma unroll
      for (int r = 0; r < R; ++r) raw[u][r] = C::load_w(wr[r], cc);
    }
    if (s == 0) wait_for_inputs();  // the first weights are in flight; now the activations
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t c = c0 + u * kThreads;
      if (c >= nchunks) break;
      float wf[R][E];
#pragma unroll
      for (int r = 0; r < R; ++r) C::to_float(raw[u][r], wf[r]);
#pragma unroll
      for (int t = 0; t < M; ++t) {
        if (t >= m) break;
        float xf[E];
        C::load_x(x + t * cols, c, xf);
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int e = 0; e < E; ++e) acc[r][t] = fmaf(wf[r][e], xf[e], acc[r][t]);
      }
    }
  }
  reduce_store<kWarps>(acc, row0, rows, m, y, y_stride);
}

template <GgmlType T, bool kVec, bool kRound, int R, int M, int U>
void launch(const void* w, int64_t rows, int64_t cols, const void* x, int64_t m, float* y, int64_t y_stride,
            cudaStream_t stream) {
  const int64_t row_bytes = cols * (T == GgmlType::F32 ? 4 : 2);
  const int64_t nchunks = cols / Chunk<T, kVec, kRound>::kElems;
  const auto grid = static_cast<unsigned>((rows + R - 1) / R);
  launch_pdl(matvec_float_kernel<T, kVec, kRound, R, M, U>, grid, kThreads, stream, static_cast<const uint8_t*>(w),
             row_bytes, static_cast<int>(rows), nchunks, x, cols, static_cast<int>(m), y, y_stride);
}

// m <= 2 rounds the activations in the kernel (no conversion launch on the decode path);
// more tokens round them once into `half` first, which is cheaper than per CTA.
template <GgmlType T, bool kVec>
void dispatch(const void* w, int64_t rows, int64_t cols, const float* x, int64_t m, float* y, int64_t y_stride,
              uint16_t* half, cudaStream_t stream) {
  constexpr bool kHalf = T != GgmlType::F32;
  if (m == 1) return launch<T, kVec, kHalf, 2, 1, 4>(w, rows, cols, x, m, y, y_stride, stream);
  if (m == 2) return launch<T, kVec, kHalf, 2, 2, 2>(w, rows, cols, x, m, y, y_stride, stream);
  const void* xs = x;
  if constexpr (kHalf) {
    round_act_half(x, m * cols, T == GgmlType::BF16, half, stream);
    xs = half;
  }
  if (m <= 4) launch<T, kVec, false, 2, 4, 2>(w, rows, cols, xs, m, y, y_stride, stream);
  else launch<T, kVec, false, 4, 8, 1>(w, rows, cols, xs, m, y, y_stride, stream);
}

template <GgmlType T>
void dispatch_align(const void* w, int64_t rows, int64_t cols, const float* x, int64_t m, float* y, int64_t y_stride,
                    uint16_t* half, cudaStream_t stream) {
  // 16-byte chunks need 16-byte aligned rows (the f32 or half activations are: x and half
  // are 16-byte aligned and cols is a multiple of 8, or of 4 for F32).
  const bool vec = cols % Chunk<T, true, false>::kElems == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(x) % 16 == 0;
  if (vec) dispatch<T, true>(w, rows, cols, x, m, y, y_stride, half, stream);
  else dispatch<T, false>(w, rows, cols, x, m, y, y_stride, half, stream);
}

}  // namespace

void matvec_float(GgmlType t, const void* w, int64_t rows, int64_t cols, const float* x, int64_t m, float* y,
                  int64_t y_stride, uint16_t* half, cudaStream_t stream) {
  switch (t) {
    case GgmlType::F32: return dispatch_align<GgmlType::F32>(w, rows, cols, x, m, y, y_stride, half, stream);
    case GgmlType::F16: return dispatch_align<GgmlType::F16>(w, rows, cols, x, m, y, y_stride, half, stream);
    case GgmlType::BF16: return dispatch_align<GgmlType::BF16>(w, rows, cols, x, m, y, y_stride, half, stream);
    default:
      std::fprintf(stderr, "velo::cuda::matvec_float: unsupported type %u\n", static_cast<unsigned>(t));
      std::abort();
  }
}

}  // namespace velo::cuda::detail
