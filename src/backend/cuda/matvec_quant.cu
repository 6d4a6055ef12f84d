// Quantized weights × up to 8 Q8-quantized token rows: the decode matvec.
//
// Memory bound: every weight byte is read once for all m tokens. A CTA owns R
// weight rows; its warps split the row's blocks (warp w takes blocks w*B.., B =
// 32/kLanes per warp step), each lane loads its part of a block for all R rows
// (decoded to int8 lanes once), then for every token loads the matching
// activation quants (L1/L2 resident: they are shared by all CTAs) and takes
// __dp4a dot products. Launched as a programmatic dependent of the activation
// quantizer: the first weights load while it runs. Partial sums are reduced over the warp by shuffles and
// over the CTA's warps in shared memory, in a fixed order (deterministic). A launch
// covers a group of matrices (MvGroup): Q/K/V or gate/up, of one type or any K-quant mix.
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
constexpr unsigned kFull = 0xffffffffu;


// One CTA: R rows from row0 of one matrix, M token slots (tokens t >= m are skipped at
// run time), U steps of weight loads in flight per lane before the first is used.
template <class Q, int R, int M, int U>
__device__ __forceinline__ void matvec_cta(const uint8_t* __restrict__ w, int rows, int row0, const ActQ8View& x,
                                           int64_t cols, int m, float* __restrict__ y, int64_t y_stride) {
  constexpr int kBlocksPerWarp = 32 / Q::kLanes;
  constexpr int kBlocksPerStep = kBlocksPerWarp * kWarps;
  const int nb = static_cast<int>(cols / Q::kElems);
  const int64_t row_bytes = static_cast<int64_t>(nb) * Q::kBytes;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int part = lane % Q::kLanes;

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

// A group of matrices (one for a plain call); item i is of type Q0, Q1 or Q2 by g.sel[i]
// (repeat Q0 for fewer types: a repeated type is not instantiated twice).
template <class Q0, class Q1, class Q2, int R, int M, int U>
__global__ void __launch_bounds__(kThreads, 4)
matvec_quant_kernel(MvGroup g, ActQ8View x, int64_t cols, int m) {
  // The next call's activation conversion may launch now (it waits for this kernel
  // before touching the activation scratch), so consecutive calls overlap ramp and tail.
  allow_dependents();
  int row0 = 0;
  const int i = group_item<R>(g, row0);
  const int sel = g.sel[i];
  if (sel == 0) matvec_cta<Q0, R, M, U>(g.w[i], g.rows[i], row0, x, cols, m, g.y[i], g.y_stride[i]);
  if constexpr (!std::is_same_v<Q1, Q0>)
    if (sel == 1) matvec_cta<Q1, R, M, U>(g.w[i], g.rows[i], row0, x, cols, m, g.y[i], g.y_stride[i]);
  if constexpr (!std::is_same_v<Q2, Q0> && !std::is_same_v<Q2, Q1>)
    if (sel == 2) matvec_cta<Q2, R, M, U>(g.w[i], g.rows[i], row0, x, cols, m, g.y[i], g.y_stride[i]);
}

template <class Q0, class Q1, class Q2, int R, int M, int U, class SelOf>
void launch(const MatvecItem* items, int n, int64_t cols, const ActQ8View& x, int64_t m, SelOf sel_of,
            cudaStream_t stream) {
  const MvGroup g = make_group(items, n, R, sel_of);
  launch_pdl(matvec_quant_kernel<Q0, Q1, Q2, R, M, U>, static_cast<unsigned>(g.cta_begin[kMaxGroup]), kThreads,
             stream, g, x, cols, static_cast<int>(m));
}

// Token slots by m: 1, 2, 4 (m = 3, 4) or 8 (m = 5..8); more rows per CTA for more
// tokens, so that each activation load serves more weight rows. A single token with
// rows of several CTA steps keeps two steps of loads in flight. The choice depends only
// on m, cols and the lanes per block, so a group and a single call of the same matrix
// run the same code.
template <class Q0, class Q1 = Q0, class Q2 = Q0, class SelOf>
void dispatch_group(const MatvecItem* items, int n, int64_t cols, const ActQ8View& x, int64_t m, SelOf sel_of,
                    cudaStream_t stream) {
  static_assert(Q1::kLanes == Q0::kLanes && Q2::kLanes == Q0::kLanes && Q1::kElems == Q0::kElems &&
                Q2::kElems == Q0::kElems && Q1::kBlockSum == Q0::kBlockSum && Q2::kBlockSum == Q0::kBlockSum);
  constexpr int64_t kBlocksPerStep = 32 / Q0::kLanes * kWarps;
  const bool multi_step = cols / Q0::kElems > kBlocksPerStep;
  if (m == 1 && multi_step) launch<Q0, Q1, Q2, 2, 1, 2>(items, n, cols, x, m, sel_of, stream);
  else if (m == 1) launch<Q0, Q1, Q2, 2, 1, 1>(items, n, cols, x, m, sel_of, stream);
  else if (m == 2) launch<Q0, Q1, Q2, 2, 2, 1>(items, n, cols, x, m, sel_of, stream);
  else if (m <= 4) launch<Q0, Q1, Q2, 4, 4, 1>(items, n, cols, x, m, sel_of, stream);
  else launch<Q0, Q1, Q2, 4, 8, 1>(items, n, cols, x, m, sel_of, stream);
}

// One matrix of type Q.
template <class Q>
void dispatch(const void* w, int64_t rows, int64_t cols, const ActQ8View& x, int64_t m, float* y, int64_t y_stride,
              cudaStream_t stream) {
  const MatvecItem item{GgmlType::F32, w, rows, y, y_stride};  // type unused: one kernel type
  dispatch_group<Q>(&item, 1, cols, x, m, [](GgmlType) { return 0; }, stream);
}

int kquant_sel(GgmlType t) { return t == GgmlType::Q4_K ? 0 : t == GgmlType::Q5_K ? 1 : 2; }

}  // namespace

void matvec_quant(GgmlType t, const void* w, int64_t rows, int64_t cols, const ActQ8View& x, int64_t m, float* y,
                  int64_t y_stride, cudaStream_t stream, bool exact_order) {
  const bool q32 = t == GgmlType::Q4_0 || t == GgmlType::Q4_1 || t == GgmlType::Q5_0 || t == GgmlType::Q5_1 ||
                   t == GgmlType::Q8_0;
  if (q32 && exact_order) return matvec_q32(t, w, rows, cols, x, m, y, y_stride, stream);  // the CPU's order
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

namespace velo::cuda::detail {

void matvec_quant_group(const MatvecItem* items, int n, int64_t cols, const ActQ8View& x, int64_t m,
                        cudaStream_t stream, bool exact_order) {
  bool same = true, kquant = true;
  for (int i = 0; i < n; ++i) {
    same = same && items[i].type == items[0].type;
    kquant = kquant && act_quant_of(items[i].type) == ActQuant::kQ8K;
  }
  if (kquant && same) {  // one type: the single-type kernel (smaller code, same results)
    const auto one = [](GgmlType) { return 0; };
    switch (items[0].type) {
      case GgmlType::Q4_K: return dispatch_group<MvQ45K<false>>(items, n, cols, x, m, one, stream);
      case GgmlType::Q5_K: return dispatch_group<MvQ45K<true>>(items, n, cols, x, m, one, stream);
      default: return dispatch_group<MvQ6K>(items, n, cols, x, m, one, stream);
    }
  }
  if (kquant)  // mixed K-quants (Q4_K_M: Q4_K with Q6_K)
    return dispatch_group<MvQ45K<false>, MvQ45K<true>, MvQ6K>(items, n, cols, x, m, kquant_sel, stream);
  // 32-element types: one launch each, on the activations quantized once.
  for (int i = 0; i < n; ++i)
    matvec_quant(items[i].type, items[i].w, items[i].rows, cols, x, m, items[i].y, items[i].y_stride, stream,
                 exact_order);
}

}  // namespace velo::cuda::detail
