// The sampler's passes over a row in ranking order (logit descending, id
// ascending), window by window (sample_window.cuh), mirroring Sampler's
// top_p_cut and draw: the same weights, rounded the same way, summed in double.
// Sums run in a fixed order (deterministic) that differs from the CPU's
// sequential one only by double rounding (~1e-16 relative).
#pragma once
#include <climits>

#include "backend/cuda/sample_window.cuh"

namespace velo::cuda::sampling {

// Top-p weight: exp(logit - max) in double, as Sampler::top_p_cut.
__device__ __forceinline__ double weight_p(float l, float m) { return exp(static_cast<double>(__fsub_rn(l, m))); }

// Draw weight: float(exp((logit - max) * inv_t)), as Sampler::draw. Below -104
// the float is 0 (exp(-104) < half the smallest subnormal): skip the exp.
__device__ __forceinline__ float weight_t(float l, float m, double inv_t) {
  const double d = __dmul_rn(static_cast<double>(__fsub_rn(l, m)), inv_t);
  return d < -104.0 ? 0.0f : __double2float_rn(exp(d));
}

// The state of a walk: which window is in shared memory, where it starts in the ranking.
struct Walk {
  Row row;
  SelectShared* sh;
  uint64_t* win;    // shared [kWindow] sorted candidates
  float m;          // the row's max logit
  float cut;        // min-p: logits below it weigh 0 in the draw (-inf when off)
  double inv_t;
  int loaded = -1;  // window index in shared memory (-1: none)
  uint32_t start = 0, nw = 0;
};

// Makes window j (0, or the one after the loaded one) current; `limit`: ranks needed in all.
__device__ void load_window(Walk& w, int j, uint32_t limit) {
  if (w.loaded == j) return;
  Boundary b;
  uint32_t consumed = 0;
  if (j > 0) {
    const uint64_t last = w.win[w.nw - 1];
    b.has = true;
    b.key = cand_key(last);
    b.id = cand_id(last);
    consumed = w.start + w.nw;
  }
  __syncthreads();  // the old window has been read
  const uint32_t need = min(static_cast<uint32_t>(kWindow), limit - consumed);
  w.nw = select_window(w.row, *w.sh, w.win, b, consumed, need);
  w.start = consumed;
  w.loaded = j;
}

__device__ __forceinline__ float cand_logit(const Walk& w, int p) { return key_value(cand_key(w.win[p])); }
__device__ __forceinline__ double draw_weight(const Walk& w, float l) {
  return l >= w.cut ? static_cast<double>(weight_t(l, w.m, w.inv_t)) : 0.0;
}

// Sum over the first `limit` ranks of the top-p weights (top_p) or the draw weights.
__device__ double walk_sum(Walk& w, bool top_p, uint32_t limit) {
  double total = 0;
  for (int j = 0;; ++j) {
    load_window(w, j, limit);
    const int n = static_cast<int>(min(w.nw, limit - w.start));
    double local = 0;
    for (int e = 0; e < kPerThread; ++e) {
      const int p = threadIdx.x * kPerThread + e;
      if (p >= n) break;
      const float l = cand_logit(w, p);
      local += top_p ? weight_p(l, w.m) : draw_weight(w, l);
    }
    total += block_sum(local, w.sh->dsc);
    if (w.start + w.nw >= limit) return total;
  }
}

// Top-p: the smallest prefix of the first `limit` ranks whose top-p weights sum
// to >= target (all `limit` when rounding never gets there). Returns its length;
// *s2 gets the sum of the draw weights over it.
__device__ uint32_t walk_cut(Walk& w, double target, uint32_t limit, double* s2) {
  double base = 0, sum2 = 0;
  for (int j = 0;; ++j) {
    load_window(w, j, limit);
    const int n = static_cast<int>(min(w.nw, limit - w.start));
    double local = 0;
    for (int e = 0; e < kPerThread; ++e) {
      const int p = threadIdx.x * kPerThread + e;
      if (p >= n) break;
      local += weight_p(cand_logit(w, p), w.m);
    }
    if (threadIdx.x == 0) w.sh->pos = INT_MAX;
    double tot;
    double run = block_excl_scan(local, w.sh->dsc, tot);  // syncs before any atomicMin below
    for (int e = 0; e < kPerThread; ++e) {
      const int p = threadIdx.x * kPerThread + e;
      if (p >= n) break;
      run += weight_p(cand_logit(w, p), w.m);
      if (base + run >= target) {
        atomicMin(&w.sh->pos, p);
        break;
      }
    }
    __syncthreads();
    const int cross = w.sh->pos;
    const int end = cross == INT_MAX ? n : cross + 1;
    double local2 = 0;
    for (int e = 0; e < kPerThread; ++e) {
      const int p = threadIdx.x * kPerThread + e;
      if (p >= end) break;
      local2 += draw_weight(w, cand_logit(w, p));
    }
    sum2 += block_sum(local2, w.sh->dsc);  // syncs: sh->pos is read by all before it is reset
    base += tot;
    if (cross != INT_MAX) {
      *s2 = sum2;
      return w.start + static_cast<uint32_t>(cross) + 1;
    }
    if (w.start + w.nw >= limit) {
      *s2 = sum2;
      return limit;
    }
  }
}

// The draw over the first `limit` ranks: the first candidate with a positive
// weight whose running sum exceeds target, else the last one with a positive weight.
__device__ int32_t walk_draw(Walk& w, double target, uint32_t limit) {
  double base = 0;
  int32_t last_id = -1;
  for (int j = 0;; ++j) {
    load_window(w, j, limit);
    const int n = static_cast<int>(min(w.nw, limit - w.start));
    double local = 0;
    for (int e = 0; e < kPerThread; ++e) {
      const int p = threadIdx.x * kPerThread + e;
      if (p >= n) break;
      local += draw_weight(w, cand_logit(w, p));
    }
    if (threadIdx.x == 0) {
      w.sh->pos = INT_MAX;
      w.sh->pos2 = -1;
    }
    double tot;
    double run = block_excl_scan(local, w.sh->dsc, tot);
    int last_p = -1;
    bool crossed = false;
    for (int e = 0; e < kPerThread; ++e) {
      const int p = threadIdx.x * kPerThread + e;
      if (p >= n) break;
      const double wt = draw_weight(w, cand_logit(w, p));
      if (wt <= 0) continue;
      run += wt;
      last_p = p;
      if (!crossed && base + run > target) {
        atomicMin(&w.sh->pos, p);
        crossed = true;
      }
    }
    if (last_p >= 0) atomicMax(&w.sh->pos2, last_p);
    __syncthreads();
    const int cross = w.sh->pos, lastp = w.sh->pos2;
    if (lastp >= 0) last_id = cand_id(w.win[lastp]);
    const int32_t chosen = cross != INT_MAX ? cand_id(w.win[cross]) : -1;
    __syncthreads();  // sh->pos read by all before the next window resets it
    if (chosen >= 0) return chosen;
    base += tot;
    if (w.start + w.nw >= limit) return last_id;
  }
}

}  // namespace velo::cuda::sampling
