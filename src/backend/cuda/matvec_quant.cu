// Quantized weights × up to 8 Q8-quantized token rows: the decode matvec.
//
// Memory bound: every weight byte is read once for all m tokens. A CTA owns R
// weight rows; its warps split the row's blocks (warp w takes blocks w*B.., B =
// 32/kLanes per warp step), each lane loads its part of a block for all R rows
// (decoded to int8 lanes once), then for every token loads the matching
// activation quants (L1/L2 resident: they are shared by all CTAs) and takes
// __dp4a dot products. Launched as a programmatic dependent of the activation
// quantizer: the first weights load while it runs. Partial sums are reduced over the warp by shuffles and
// over the CTA's warps in shared memory, in a fixed order (deterministic).
#include <cstdio>
#include <cstdlib>

#include "backend/cuda/matmul_kernels.h"
#include "backend/cuda/quant_dev.cuh"

namespace velo::cuda::detail {
namespace {

using namespace qdev;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr unsigned kFull = 0xffffffffu;

// R rows per CTA, M token slots (tokens t >= m are skipped at run time), U steps of
// weight loads in flight per lane before the first is used.
template <class Q, int R, int M, int U>
__global__ void __launch_bounds__(kThreads, 4)
matvec_quant_kernel(const uint8_t* __restrict__ w, int64_t row_bytes, int rows, int nb, ActQ8View x,
                    int64_t cols, int m, float* __restrict__ y, int64_t y_stride) {
  // The next call's activation conversion may launch now (it waits for this kernel
  // before touching the activation scratch), so consecutive calls overlap ramp and tail.
  allow_dependents();
  constexpr int kBlocksPerWarp = 32 / Q::kLanes;
  constexpr int kBlocksPerStep = kBlocksPerWarp * kWarps;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int part = lane % Q::kLanes;
  const int row0 = blockIdx.x * R;

  const uint8_t* wr[R];  // the CTA's rows (the last row again past the end: loaded, never stored)
#pragma unroll
  for (int r = 0; r < R; ++r) wr[r] = w + static_cast<int64_t>(min(row0 + r, rows - 1)) * row_bytes;

  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < M; ++t) acc[r][t] = 0.0f;

  // Same trip count for every lane of the CTA (the block-sum shuffles need whole warps):
  // lanes past the last block reload it and drop the result.
  const int nsteps = (nb + kBlocksPerStep - 1) / kBlocksPerStep;
  for (int s = 0; s < nsteps; s += U) {
    typename Q::W wv[U][R];
    int bu[U];
    bool valid[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int ib = (s + u) * kBlocksPerStep + warp * kBlocksPerWarp + lane / Q::kLanes;
      valid[u] = ib < nb;
      bu[u] = valid[u] ? ib : nb - 1;
#pragma unroll
      for (int r = 0; r < R; ++r) wv[u][r] = Q::load(wr[r] + static_cast<int64_t>(bu[u]) * Q::kBytes, part);
    }
    if (s == 0) wait_for_inputs();  // the first weights are in flight; now the activations
#pragma unroll
    for (int u = 0; u < U; ++u) {
#pragma unroll
      for (int t = 0; t < M; ++t) {
        if (t >= m) break;  // uniform over the CTA
        const ActRow a = act_row(x, t, cols, !Q::kBlockSum);
        const typename Q::X xv = Q::xload(a, bu[u], part);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          if constexpr (Q::kBlockSum) {
            int is = Q::idot(wv[u][r], xv);
#pragma unroll
            for (int o = 1; o < Q::kLanes; o <<= 1) is += __shfl_xor_sync(kFull, is, o);
            if (valid[u] && part == 0) acc[r][t] += Q::combine(wv[u][r], xv, is);
          } else {
            if (valid[u]) acc[r][t] += Q::fdot(wv[u][r], xv);
          }
        }
      }
    }
  }

  reduce_store<kWarps>(acc, row0, rows, m, y, y_stride);
}

template <class Q, int R, int M, int U>
void launch(const void* w, int64_t rows, int64_t cols, const ActQ8View& x, int64_t m, float* y, int64_t y_stride,
            cudaStream_t stream) {
  const int nb = static_cast<int>(cols / Q::kElems);
  const auto grid = static_cast<unsigned>((rows + R - 1) / R);
  launch_pdl(matvec_quant_kernel<Q, R, M, U>, grid, kThreads, stream, static_cast<const uint8_t*>(w),
             static_cast<int64_t>(nb) * Q::kBytes, static_cast<int>(rows), nb, x, cols, static_cast<int>(m), y,
             y_stride);
}

// Token slots by m: 1, 2, 4 (m = 3, 4) or 8 (m = 5..8); more rows per CTA for more
// tokens, so that each activation load serves more weight rows. A single token with
// rows of several CTA steps keeps two steps of loads in flight.
template <class Q>
void dispatch(const void* w, int64_t rows, int64_t cols, const ActQ8View& x, int64_t m, float* y, int64_t y_stride,
              cudaStream_t stream) {
  constexpr int64_t kBlocksPerStep = 32 / Q::kLanes * kWarps;
  const bool multi_step = cols / Q::kElems > kBlocksPerStep;
  if (m == 1 && multi_step) launch<Q, 2, 1, 2>(w, rows, cols, x, m, y, y_stride, stream);
  else if (m == 1) launch<Q, 2, 1, 1>(w, rows, cols, x, m, y, y_stride, stream);
  else if (m == 2) launch<Q, 2, 2, 1>(w, rows, cols, x, m, y, y_stride, stream);
  else if (m <= 4) launch<Q, 4, 4, 1>(w, rows, cols, x, m, y, y_stride, stream);
  else launch<Q, 4, 8, 1>(w, rows, cols, x, m, y, y_stride, stream);
}

}  // namespace

void matvec_quant(GgmlType t, const void* w, int64_t rows, int64_t cols, const ActQ8View& x, int64_t m, float* y,
                  int64_t y_stride, cudaStream_t stream) {
  switch (t) {
    case GgmlType::Q4_0: return dispatch<MvQ32<GgmlType::Q4_0>>(w, rows, cols, x, m, y, y_stride, stream);
    case GgmlType::Q4_1: return dispatch<MvQ32<GgmlType::Q4_1>>(w, rows, cols, x, m, y, y_stride, stream);
    case GgmlType::Q5_0: return dispatch<MvQ32<GgmlType::Q5_0>>(w, rows, cols, x, m, y, y_stride, stream);
    case GgmlType::Q5_1: return dispatch<MvQ32<GgmlType::Q5_1>>(w, rows, cols, x, m, y, y_stride, stream);
    case GgmlType::Q8_0: return dispatch<MvQ8_0>(w, rows, cols, x, m, y, y_stride, stream);
    case GgmlType::Q4_K: return dispatch<MvQ45K<false>>(w, rows, cols, x, m, y, y_stride, stream);
    case GgmlType::Q5_K: return dispatch<MvQ45K<true>>(w, rows, cols, x, m, y, y_stride, stream);
    case GgmlType::Q6_K: return dispatch<MvQ6K>(w, rows, cols, x, m, y, y_stride, stream);
    default:
      std::fprintf(stderr, "velo::cuda::matvec_quant: unsupported type %u\n", static_cast<unsigned>(t));
      std::abort();
  }
}

}  // namespace velo::cuda::detail
