// F32 / F16 / BF16 weights × up to 8 token rows: the decode matvec.
//
// Memory bound. A CTA owns R weight rows; its threads walk the row in 16-byte
// chunks (8 halves or 4 floats; coalesced across the CTA), with U chunks per row
// loaded before any is used so that R*U*16 bytes per thread are in flight. The
// activations are rounded to fp16/bf16 like the CPU's (F32: used as given), so
// every product is exact in f32 and accumulates in f32. Rows that are not 16-byte
// aligned (cols not a multiple of 8, or of 4 for F32) take a scalar variant.
// Launched as a programmatic dependent of the activation rounding (see launch_pdl).
// BF16/F16 at m >= 5 take a tensor-core kernel instead (matvec_mma_kernel below). Every
// kernel takes a group of matrices (matmul_kernels.h: MvGroup), one for a plain call.
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
matvec_float_kernel(MvGroup g, const void* __restrict__ xv, int64_t cols, int m) {
  // The next call's activation conversion may launch now (it waits for this kernel
  // before touching the activation scratch), so consecutive calls overlap ramp and tail.
  allow_dependents();
  using C = Chunk<T, kVec, kRound>;
  constexpr int E = C::kElems;
  int row0 = 0;
  const int item = group_item<R>(g, row0);
  const uint8_t* w = g.w[item];
  const int rows = g.rows[item];
  const int64_t row_bytes = cols * (T == GgmlType::F32 ? 4 : 2);
  const int64_t nchunks = cols / E;
  const auto* x = static_cast<const typename C::XElem*>(xv);
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
  reduce_store<kWarps>(acc, row0, rows, m, g.y[item], g.y_stride[item]);
}

template <GgmlType T, bool kVec, bool kRound, int R, int M, int U>
void launch(const MatvecItem* items, int n, int64_t cols, const void* x, int64_t m, cudaStream_t stream) {
  const MvGroup g = make_group(items, n, R, [](GgmlType) { return 0; });
  launch_pdl(matvec_float_kernel<T, kVec, kRound, R, M, U>, static_cast<unsigned>(g.cta_begin[kMaxGroup]), kThreads,
             stream, g, x, cols, static_cast<int>(m));
}

// ---- tensor cores for 3..8 tokens (BF16/F16, cols a multiple of 32) -------------------
// The CUDA-core kernel at m = 8 issues 8 FMAs per weight plus conversions and activation
// loads, and tops out near 65% of bandwidth; one mma.sync.m16n8k16 does 16 rows × 8
// tokens × 16 columns. A warp tile is 16 rows × 32 columns: lane (g = lane/4, q = lane%4)
// loads the 16 bytes at column 8q of rows g and g+8 (A) and of token g's rounded
// activations (B, token min(g, m-1): slots past m are computed and dropped). The mma's k
// order is then a permutation of the 32 columns, the same for A and B, so no shuffles
// are needed. Products of fp16/bf16 values are exact in f32; the tensor cores' f32 sums
// differ from the CUDA cores' only in order and rounding of the additions.
constexpr int kMmaWarps = 8;
constexpr int kMmaThreads = 32 * kMmaWarps;
constexpr int kMmaRows = 16;
constexpr int kMmaU = 4;  // consecutive 32-column tiles per warp step: 4 × 32 bytes in flight per lane

template <GgmlType T>
__device__ __forceinline__ void mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (T == GgmlType::BF16)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

template <GgmlType T>
__global__ void __launch_bounds__(kMmaThreads)
matvec_mma_kernel(MvGroup g, const uint16_t* __restrict__ x, int64_t cols, int m) {
  allow_dependents();  // as matvec_float_kernel
  int row0 = 0;
  const int item = group_item<kMmaRows>(g, row0);
  const int rows = g.rows[item];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int gr = lane >> 2, q = lane & 3;
  const uint4* wlo = reinterpret_cast<const uint4*>(g.w[item] + static_cast<int64_t>(min(row0 + gr, rows - 1)) * cols * 2);
  const uint4* whi = reinterpret_cast<const uint4*>(g.w[item] + static_cast<int64_t>(min(row0 + gr + 8, rows - 1)) * cols * 2);
  const uint4* xr = reinterpret_cast<const uint4*>(x + static_cast<int64_t>(min(gr, m - 1)) * cols);

  float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  const int ntiles = static_cast<int>(cols / 32);
  constexpr int kTilesPerStep = kMmaWarps * kMmaU;
  const int nsteps = (ntiles + kTilesPerStep - 1) / kTilesPerStep;
  for (int s = 0; s < nsteps; ++s) {
    const int t0 = (s * kMmaWarps + warp) * kMmaU;  // this warp's first tile of the step
    uint4 a[kMmaU][2];
#pragma unroll
    for (int u = 0; u < kMmaU; ++u) {
      const int tile = min(t0 + u, ntiles - 1);  // past the end: the last tile again (unused)
      a[u][0] = __ldg(wlo + tile * 4 + q);
      a[u][1] = __ldg(whi + tile * 4 + q);
    }
    if (s == 0) wait_for_inputs();  // the first weights are in flight; now the activations
#pragma unroll
    for (int u = 0; u < kMmaU; ++u) {
      if (t0 + u >= ntiles) break;  // warp-uniform: mma.sync needs the whole warp
      const uint4 b = xr[(t0 + u) * 4 + q];
      mma16816<T>(c, a[u][0].x, a[u][1].x, a[u][0].y, a[u][1].y, b.x, b.y);
      mma16816<T>(c, a[u][0].z, a[u][1].z, a[u][0].w, a[u][1].w, b.z, b.w);
    }
  }

  // c[0..1]: row gr, tokens 2q, 2q+1; c[2..3]: row gr + 8. Warps' sums in a fixed order.
  __shared__ float red[kMmaWarps][kMmaRows * 8];
  red[warp][gr * 8 + 2 * q] = c[0];
  red[warp][gr * 8 + 2 * q + 1] = c[1];
  red[warp][(gr + 8) * 8 + 2 * q] = c[2];
  red[warp][(gr + 8) * 8 + 2 * q + 1] = c[3];
  __syncthreads();
  if (threadIdx.x < kMmaRows * 8) {
    const int r = threadIdx.x / 8, t = threadIdx.x % 8;
    if (t < m && row0 + r < rows) {
      float v = red[0][threadIdx.x];
#pragma unroll
      for (int k = 1; k < kMmaWarps; ++k) v += red[k][threadIdx.x];
      g.y[item][t * g.y_stride[item] + row0 + r] = v;
    }
  }
}

template <GgmlType T>
void launch_mma(const MatvecItem* items, int n, int64_t cols, const uint16_t* x, int64_t m, cudaStream_t stream) {
  const MvGroup g = make_group(items, n, kMmaRows, [](GgmlType) { return 0; });
  launch_pdl(matvec_mma_kernel<T>, static_cast<unsigned>(g.cta_begin[kMaxGroup]), kMmaThreads, stream, g, x, cols,
             static_cast<int>(m));
}

FloatMatvecKernel g_float_kernel = FloatMatvecKernel::kAuto;

bool use_mma(int64_t m) {
  switch (g_float_kernel) {
    case FloatMatvecKernel::kSimt: return false;
    case FloatMatvecKernel::kMma: return m >= 3;
    default: return m >= 5;
  }
}

// m <= 2 rounds the activations in the kernel (no conversion launch on the decode path);
// more tokens round them once into `half` first, which is cheaper than per CTA.
template <GgmlType T, bool kVec>
void dispatch(const MatvecItem* items, int n, int64_t cols, const float* x, int64_t m, uint16_t* half, bool half_ready,
              cudaStream_t stream) {
  constexpr bool kHalf = T != GgmlType::F32;
  if (m == 1) return launch<T, kVec, kHalf, 2, 1, 4>(items, n, cols, x, m, stream);
  if (m == 2) return launch<T, kVec, kHalf, 2, 2, 2>(items, n, cols, x, m, stream);
  const void* xs = x;
  if constexpr (kHalf) {
    if (!half_ready) round_act_half(x, m * cols, T == GgmlType::BF16, half, stream);
    xs = half;
    if (kVec && cols % 32 == 0 && use_mma(m)) return launch_mma<T>(items, n, cols, half, m, stream);
  }
  if (m <= 4) launch<T, kVec, false, 2, 4, 2>(items, n, cols, xs, m, stream);
  else launch<T, kVec, false, 4, 8, 1>(items, n, cols, xs, m, stream);
}

template <GgmlType T>
void dispatch_align(const MatvecItem* items, int n, int64_t cols, const float* x, int64_t m, uint16_t* half,
                    bool half_ready, cudaStream_t stream) {
  // 16-byte chunks need 16-byte aligned rows (the f32 or half activations are: x and half
  // are 16-byte aligned and cols is a multiple of 8, or of 4 for F32).
  bool vec = cols % Chunk<T, true, false>::kElems == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  for (int i = 0; i < n; ++i) vec = vec && reinterpret_cast<uintptr_t>(items[i].w) % 16 == 0;
  if (vec) dispatch<T, true>(items, n, cols, x, m, half, half_ready, stream);
  else dispatch<T, false>(items, n, cols, x, m, half, half_ready, stream);
}

void float_group(const MatvecItem* items, int n, int64_t cols, const float* x, int64_t m, uint16_t* half,
                 bool half_ready, cudaStream_t stream) {
  switch (items[0].type) {
    case GgmlType::F32: return dispatch_align<GgmlType::F32>(items, n, cols, x, m, half, half_ready, stream);
    case GgmlType::F16: return dispatch_align<GgmlType::F16>(items, n, cols, x, m, half, half_ready, stream);
    case GgmlType::BF16: return dispatch_align<GgmlType::BF16>(items, n, cols, x, m, half, half_ready, stream);
    default:
      std::fprintf(stderr, "velo::cuda::matvec_float: unsupported type %u\n", static_cast<unsigned>(items[0].type));
      std::abort();
  }
}

}  // namespace

void matvec_float(GgmlType t, const void* w, int64_t rows, int64_t cols, const float* x, int64_t m, float* y,
                  int64_t y_stride, uint16_t* half, cudaStream_t stream) {
  const MatvecItem item{t, w, rows, y, y_stride};
  float_group(&item, 1, cols, x, m, half, false, stream);
}

void matvec_float_group(const MatvecItem* items, int n, int64_t cols, const float* x, int64_t m, uint16_t* half,
                        bool half_ready, cudaStream_t stream) {
  for (int i = 1; i < n; ++i)
    if (items[i].type != items[0].type) {
      std::fprintf(stderr, "velo::cuda::matvec_float_group: mixed types\n");
      std::abort();
    }
  float_group(items, n, cols, x, m, half, half_ready, stream);
}

void set_float_matvec_kernel(FloatMatvecKernel k) { g_float_kernel = k; }

}  // namespace velo::cuda::detail
