// The sampling kernel: one CTA per sequence picks its token from the
// (penalized) logits, with the CPU Sampler's chain and semantics:
//   greedy (temperature <= 0): argmax, lowest id on ties (exact);
//   else top-k -> top-p -> min-p -> temperature -> draw with the host's u.
// The draw walks the candidates in the CPU's order: by rank (logit descending,
// id ascending) when top-k or top-p is on, by id when neither is (the CPU
// then draws straight from the unsorted vocabulary). Every candidate the CPU
// keeps is kept: no cap, whatever top-k, top-p or the vocabulary size.
//
// Cost (H100, 151936 logits, whole sample() call with its copies and sync,
// same for 1 or 64 sequences since each has its own SM): greedy ~35 us;
// top_k 40 + top_p + min_p ~100-110 us (two passes over the row plus a small
// sort); top-k and top-p off ~140-250 us. A one-CTA pass over a row is bound
// by instruction issue, so splitting rows over a cluster of CTAs is the next
// step for small batches. Rows whose top-p prefix runs to many thousands of
// tokens with top-k off (flat distributions) cost ~3 passes per window of
// kWindow candidates: ~1-2 ms for a near-uniform 152k row.
#include <cmath>

#include "backend/cuda/common.h"
#include "backend/cuda/sample_kernels.h"
#include "backend/cuda/sample_walk.cuh"

namespace velo::cuda::sampling {
namespace {

// Draw in id order over the whole row (top-k and top-p off): warp w owns ids
// [w*chunk, (w+1)*chunk); a first pass sums each chunk (lane scans, chunk by
// 32 ids), the crossing chunk's warp redoes its scans to find the token.
// The chunk sums and the rescans use the same arithmetic, so they agree.
__device__ int32_t draw_id_order(const Row& r, SelectShared& sh, float m, float cut, double inv_t, double uniform) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int32_t chunk = ((r.n + kWarps - 1) / kWarps + 31) & ~31;
  const int32_t lo = warp * chunk, hi = min(r.n, lo + chunk);
  // Steps of 32 ids, kUnroll of them loaded at once (the scans chain, the loads need not).
  auto load = [&](int32_t base, float* v) {
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const int32_t id = base + 32 * k + lane;
      v[k] = id < hi ? __ldg(r.x + id) : -INFINITY;
    }
  };
  auto weight = [&](float l) -> double {  // -inf (and past the chunk) weighs 0
    return l >= cut ? static_cast<double>(weight_t(l, m, inv_t)) : 0.0;
  };
  double run = 0;
  int32_t last = -1;
  for (int32_t base = lo; base < hi; base += 32 * kUnroll) {
    float v[kUnroll];
    load(base, v);
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const double wt = weight(v[k]);
      const double c = run + warp_incl_scan(wt);
      if (wt > 0) last = base + 32 * k + lane;
      run = __shfl_sync(kFull, c, 31);
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) last = max(last, __shfl_xor_sync(kFull, last, o));
  if (lane == 0) {
    sh.dsc[warp] = run;
    sh.last[warp] = last;
  }
  __syncthreads();
  double total = 0, pre = 0;
  for (int w = 0; w < kWarps; ++w) {
    if (w == warp) pre = total;
    total += sh.dsc[w];
  }
  const double target = uniform * total;
  int cross_warp = -1;
  int32_t last_all = -1;
  double acc = 0;
  for (int w = 0; w < kWarps; ++w) {
    acc += sh.dsc[w];
    if (cross_warp < 0 && acc > target && sh.dsc[w] > 0) cross_warp = w;
    last_all = max(last_all, sh.last[w]);
  }
  if (threadIdx.x == 0) sh.pos = last_all;  // rounding left target at the very end
  __syncthreads();
  if (warp == cross_warp) {  // redo the same sums up to the crossing
    run = 0;
    bool done = false;
    for (int32_t base = lo; base < hi && !done; base += 32 * kUnroll) {
      float v[kUnroll];
      load(base, v);
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) {
        const double wt = weight(v[k]);
        const double c = run + warp_incl_scan(wt);
        const unsigned hit = __ballot_sync(kFull, !done && wt > 0 && pre + c > target);
        if (hit && lane == 0) sh.pos = base + 32 * k + __ffs(hit) - 1;
        done |= hit != 0;
        run = __shfl_sync(kFull, c, 31);
      }
    }
  }
  __syncthreads();
  return sh.pos;
}

// grid: one CTA per sequence. logits [n_seqs][V]; out [2][n_seqs] (token, SampleCode).
__global__ void __launch_bounds__(kThreads, 1) select_kernel(const float* __restrict__ logits, int32_t V,
                                                             const SeqArgs* __restrict__ args, int32_t* out,
                                                             int32_t n_seqs) {
  extern __shared__ uint64_t win[];  // [kWindow] candidates, sorted best first
  __shared__ SelectShared sh;
  __shared__ float best_v[kWarps];
  __shared__ int32_t best_i[kWarps];
  const int s = blockIdx.x;
  const SeqArgs& a = args[s];
  const Row row{logits + static_cast<size_t>(s) * static_cast<size_t>(V), V};
  const bool greedy = !(a.temperature > 0.0f);
  auto finish = [&](int32_t token, int32_t code) {
    if (threadIdx.x == 0) {
      out[s] = token;
      out[n_seqs + s] = code;
    }
  };

  // Pass 1: NaN / +inf flags, argmax (lowest id on ties), and for a draw the
  // top-11-bit histogram of the finite logits (radix level 0 of every window).
  if (!greedy)
    for (int i = threadIdx.x; i < kBins; i += kThreads) sh.hist0[i] = 0;
  __syncthreads();
  float bv = -INFINITY;
  int32_t bi = INT_MAX;
  bool nan = false, pinf = false;
  for_row(row, [&](int32_t id, float l) {
    nan |= isnan(l);
    pinf |= l == INFINITY;
    if (l > bv) {  // ids rise within a thread: strict > keeps the lowest
      bv = l;
      bi = id;
    }
    if (!greedy) {
      const uint32_t key = order_key(l);
      hist_add(sh.hist0, key >> 21, key_finite(key));  // past the end l = -inf: not counted
    }
  });
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(kFull, bv, o);
    const int32_t oi = __shfl_xor_sync(kFull, bi, o);
    if (ov > bv || (ov == bv && oi < bi)) {
      bv = ov;
      bi = oi;
    }
  }
  if ((threadIdx.x & 31) == 0) {
    best_v[threadIdx.x >> 5] = bv;
    best_i[threadIdx.x >> 5] = bi;
  }
  nan = __syncthreads_or(nan);
  pinf = __syncthreads_or(pinf);
  bv = best_v[0];
  bi = best_i[0];
  for (int w = 1; w < kWarps; ++w)
    if (best_v[w] > bv || (best_v[w] == bv && best_i[w] < bi)) {
      bv = best_v[w];
      bi = best_i[w];
    }
  if (nan) return finish(-1, kSampleNaN);
  if (bv == -INFINITY) return finish(-1, kSampleNoToken);
  if (greedy) return finish(bi, kSampleOk);
  if (pinf) return finish(-1, kSampleInfinite);

  // The draw. The max is always a candidate, so every max below is bv.
  uint32_t fin_local = 0;
  for (int i = threadIdx.x; i < kBins; i += kThreads) fin_local += sh.hist0[i];
  const uint32_t n_finite = block_sum(fin_local, sh.usc);
  const float cut = a.min_p > 0.0f ? __fadd_rn(bv, a.log_min_p) : -INFINITY;
  if (a.top_k <= 0 && !(a.top_p < 1.0f)) return finish(draw_id_order(row, sh, bv, cut, a.inv_t, a.u), kSampleOk);

  Walk w{row, &sh, win, bv, cut, a.inv_t};
  const uint32_t k = a.top_k > 0 ? min(static_cast<uint32_t>(a.top_k), n_finite) : n_finite;
  uint32_t n_keep = k;
  double s2 = 0;
  if (a.top_p < 1.0f) {
    double s1 = 0;
    if (a.top_k > 0) {
      s1 = walk_sum(w, true, k);
    } else {  // the CPU sums over the whole row, in id order
      double local = 0;
      for_row(row, [&](int32_t, float l) {
        if (l != -INFINITY) local += weight_p(l, bv);
      });
      s1 = block_sum(local, sh.dsc);
    }
    n_keep = walk_cut(w, static_cast<double>(a.top_p) * s1, k, &s2);
  } else {
    s2 = walk_sum(w, false, k);
  }
  finish(walk_draw(w, a.u * s2, n_keep), kSampleOk);
}

}  // namespace

Status init_select_kernel() {
  VELO_CUDA_TRY(cudaFuncSetAttribute(select_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     static_cast<int>(kWindow * sizeof(uint64_t))));
  return {};
}

void launch_select(const float* logits, int32_t n_seqs, int32_t n_vocab, const SeqArgs* args, int32_t* out,
                   cudaStream_t stream) {
  if (n_seqs <= 0) return;
  select_kernel<<<n_seqs, kThreads, kWindow * sizeof(uint64_t), stream>>>(logits, n_vocab, args, out, n_seqs);
}

}  // namespace velo::cuda::sampling
