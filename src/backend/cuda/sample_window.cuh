// Candidate windows of the GPU sampler: the next run of a row's ranking
// (logit descending, then id ascending, finite logits only) pulled into shared
// memory and sorted, by a radix select on the logits' order keys.
//
// A window holds at most kWindow candidates and at least min(need, what is
// left) of them: the first that follow a boundary (the last candidate of the
// previous window). Levels of the radix select: the top 11 key bits (a
// histogram of the whole row made once, hist0), then 11, then the last 10; the
// descent stops at the first level where the bins up to the one that reaches
// `need` fit in the window. When even one exact logit value has too many ties,
// the window takes the lowest ids among them (an ordered pass), as the CPU's
// "lower id first" ranking does.
#pragma once
#include "backend/cuda/sample_block.cuh"

namespace velo::cuda::sampling {

constexpr int kWindow = 8192;               // candidates per window (16 per thread): 64 KiB of shared memory
constexpr int kPerThread = kWindow / kThreads;
constexpr int kBins = 2048;                 // 11-bit radix levels (the last level uses 1024 of them)

struct SelectShared {
  uint32_t hist0[kBins];  // finite logits of the row per top-11-bit key bin (made once per row)
  uint32_t hist[kBins];   // deeper radix levels
  double dsc[kWarps];     // scan / reduction scratch
  uint32_t usc[kWarps];
  uint32_t count;         // window fill counter
  uint32_t bin, before, in_bin;
  int32_t found;
  int32_t pos, pos2;      // crossing / last positions found by the walks
  int32_t last[kWarps];   // id-order draw: each warp's last id with a positive weight
};

struct Row {
  const float* __restrict__ x;  // logits [n]
  int32_t n;
};

// The last candidate taken so far (none before the first window).
struct Boundary {
  bool has = false;
  uint32_t key = 0;
  int32_t id = 0;
};

constexpr int kUnroll = 16;  // loads in flight per thread in a pass over a row

// Calls f(id, logit) for every id of the row, and past its end with logit -inf
// (so every thread calls it equally often: f may sync). Ids rise within a
// thread and, for each unrolled step, across threads: one step is a tile of
// kThreads consecutive ids, tiles in id order.
template <class F>
__device__ __forceinline__ void for_row(const Row& r, F&& f) {
  for (int32_t base = 0; base < r.n; base += kThreads * kUnroll) {
    float v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int32_t id = base + u * kThreads + static_cast<int32_t>(threadIdx.x);
      v[u] = id < r.n ? __ldg(r.x + id) : -INFINITY;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) f(base + u * kThreads + static_cast<int32_t>(threadIdx.x), v[u]);
  }
}

__device__ __forceinline__ bool eligible(uint32_t key, int32_t id, const Boundary& b) {
  return key_finite(key) && (!b.has || key < b.key || (key == b.key && id > b.id));
}

// Bins in descending key order with counts count(bin): finds the bin where the
// running count first reaches `need` (>= 1). False when the total stays below.
template <int NBins, class F>
__device__ bool find_bin(F count, uint32_t need, SelectShared& sh, uint32_t& bin, uint32_t& before,
                         uint32_t& in_bin) {
  constexpr int kPer = NBins / kThreads;
  static_assert(kPer >= 1 && NBins % kThreads == 0, "bins must split evenly over the threads");
  if (threadIdx.x == 0) sh.found = 0;
  uint32_t c[kPer], local = 0;
#pragma unroll
  for (int e = 0; e < kPer; ++e) {
    c[e] = count(NBins - 1 - (threadIdx.x * kPer + e));
    local += c[e];
  }
  uint32_t total;
  uint32_t run = block_excl_scan(local, sh.usc, total);  // syncs: sh.found is set before anyone writes it
#pragma unroll
  for (int e = 0; e < kPer; ++e) {
    if (run < need && run + c[e] >= need) {  // exactly one bin crosses
      sh.bin = NBins - 1 - (threadIdx.x * kPer + e);
      sh.before = run;
      sh.in_bin = c[e];
      sh.found = 1;
    }
    run += c[e];
  }
  __syncthreads();
  const bool found = sh.found != 0;
  bin = sh.bin;
  before = sh.before;
  in_bin = sh.in_bin;
  __syncthreads();
  return found;
}

// hist[digit] over the eligible logits whose key >> shift_hi == prefix; digit = (key >> shift) & mask.
__device__ void level_hist(const Row& r, SelectShared& sh, const Boundary& b, int shift_hi, uint32_t prefix,
                           int shift, uint32_t mask) {
  for (int i = threadIdx.x; i < kBins; i += kThreads) sh.hist[i] = 0;
  __syncthreads();
  for_row(r, [&](int32_t id, float l) {
    const uint32_t key = order_key(l);
    hist_add(sh.hist, (key >> shift) & mask, eligible(key, id, b) && (key >> shift_hi) == prefix);
  });
  __syncthreads();
}

// Fills win[0..nw) with the next candidates after `b` (`consumed` of them came
// before it), sorted best first, and returns nw. 1 <= need <= kWindow, and at
// least one eligible logit must remain. Every thread must call it.
__device__ uint32_t select_window(const Row& r, SelectShared& sh, uint64_t* win, const Boundary& b,
                                  uint32_t consumed, uint32_t need) {
  // Level 0 from hist0: the bins above the boundary's are used up, the boundary's in part.
  const uint32_t bbin = b.has ? (b.key >> 21) : kBins;
  uint32_t above_local = 0;
  for (int i = threadIdx.x; i < kBins; i += kThreads)
    if (static_cast<uint32_t>(i) > bbin) above_local += sh.hist0[i];
  const uint32_t used_in_bbin = consumed - block_sum(above_local, sh.usc);
  auto count0 = [&](uint32_t bin) -> uint32_t {
    return bin > bbin ? 0u : bin == bbin ? sh.hist0[bin] - used_in_bbin : sh.hist0[bin];
  };
  auto count_hist = [&](uint32_t bin) -> uint32_t { return sh.hist[bin]; };

  // Window = eligible keys > thr, keys == thr too (all, or the first take_ties by id when `ties`).
  uint32_t thr = 0, n_above = 0, take_ties = 0;
  bool ties = false;
  uint32_t bin, before, in_bin;
  if (find_bin<kBins>(count0, need, sh, bin, before, in_bin)) {
    if (before + in_bin <= kWindow) {
      thr = bin << 21;
    } else {
      n_above = before;
      uint32_t prefix = bin;
      level_hist(r, sh, b, 21, prefix, 10, 0x7ffu);
      (void)find_bin<kBins>(count_hist, need - n_above, sh, bin, before, in_bin);
      if (n_above + before + in_bin <= kWindow) {
        thr = (prefix << 21) | (bin << 10);
      } else {
        n_above += before;
        prefix = (prefix << 11) | bin;
        level_hist(r, sh, b, 10, prefix, 0, 0x3ffu);
        (void)find_bin<kBins / 2>(count_hist, need - n_above, sh, bin, before, in_bin);
        thr = (prefix << 10) | bin;  // one exact logit value
        if (n_above + before + in_bin > kWindow) {
          ties = true;
          n_above += before;
          take_ties = need - n_above;
        }
      }
    }
  }  // else fewer than `need` remain: take them all (thr = 0)

  // Collect. Keys above thr go anywhere (the sort orders them); tied keys get
  // their rank in id order, so the lowest ids are the ones kept.
  if (threadIdx.x == 0) sh.count = 0;
  __syncthreads();
  if (!ties) {  // the usual case: a plain filter, where almost every key fails the first test
    for_row(r, [&](int32_t id, float l) {
      const uint32_t key = order_key(l);
      const bool take = key >= thr && eligible(key, id, b);  // not eligible past the row's end (-inf)
      warp_push(win, &sh.count, take, cand_pack(key, id));
    });
  } else {
    uint32_t tie_run = 0;
    for_row(r, [&](int32_t id, float l) {  // each thread: rising ids, tile by tile: id order
      const uint32_t key = order_key(l);
      const bool el = eligible(key, id, b);
      warp_push(win, &sh.count, el && key > thr, cand_pack(key, id));
      const bool tie = el && key == thr;
      uint32_t n_tie;
      const uint32_t rank = tie_run + block_rank(tie, sh.usc, n_tie);
      if (tie && rank < take_ties) win[n_above + rank] = cand_pack(key, id);
      tie_run += n_tie;
    });
  }
  __syncthreads();
  const uint32_t nw = ties ? n_above + take_ties : sh.count;
  __syncthreads();

  // Sort best first; padding (0) sorts last.
  uint32_t p2 = 1;
  while (p2 < nw) p2 <<= 1;
  for (uint32_t i = nw + threadIdx.x; i < p2; i += kThreads) win[i] = 0;
  __syncthreads();
  bitonic_sort_desc(win, static_cast<int>(p2));
  return nw;
}

}  // namespace velo::cuda::sampling
