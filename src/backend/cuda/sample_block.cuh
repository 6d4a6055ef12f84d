// Device helpers of the GPU sampler: the order-preserving key of a logit and
// deterministic block-wide reductions and scans (a fixed summation order, so a
// given input always gives the same bits; no floating-point atomics).
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

namespace velo::cuda::sampling {

constexpr int kThreads = 512;                // one CTA per sequence
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFull = 0xffffffffu;

// Logit -> uint32 whose unsigned order is the float order. -0 is folded into +0
// first: the CPU compares floats, where they tie (and then the lower id wins).
__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t b = __float_as_uint(f == 0.0f ? 0.0f : f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float key_value(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}
constexpr uint32_t kKeyNegInf = 0x007fffffu;  // order_key(-inf); finite keys lie strictly between
constexpr uint32_t kKeyPosInf = 0xff800000u;  // order_key(+inf)
__device__ __forceinline__ bool key_finite(uint32_t k) { return k > kKeyNegInf && k < kKeyPosInf; }

// Sort value of a candidate: larger is better (higher logit, then lower id). 0 is below every real one.
__device__ __forceinline__ uint64_t cand_pack(uint32_t key, int32_t id) {
  return (static_cast<uint64_t>(key) << 32) | static_cast<uint32_t>(~id);
}
__device__ __forceinline__ uint32_t cand_key(uint64_t c) { return static_cast<uint32_t>(c >> 32); }
__device__ __forceinline__ int32_t cand_id(uint64_t c) { return static_cast<int32_t>(~static_cast<uint32_t>(c)); }

// Inclusive scan within a warp (lane order).
template <class T>
__device__ __forceinline__ T warp_incl_scan(T v) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    T n = __shfl_up_sync(kFull, v, o);
    if (lane >= o) v += n;
  }
  return v;
}

// Exclusive scan of one value per thread in thread order; `total` gets the sum
// of all. sh: shared [kWarps] scratch. Every thread must call it.
template <class T>
__device__ __forceinline__ T block_excl_scan(T v, T* sh, T& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const T inc = warp_incl_scan(v);
  T excl = __shfl_up_sync(kFull, inc, 1);
  if (lane == 0) excl = T(0);
  if (lane == 31) sh[warp] = inc;
  __syncthreads();
  T off = T(0), tot = T(0);
  for (int w = 0; w < kWarps; ++w) {  // the same order in every thread: identical bits
    const T s = sh[w];
    if (w == warp) off = tot;
    tot += s;
  }
  __syncthreads();
  total = tot;
  return off + excl;
}

// Sum of one value per thread, the same bits in every thread. sh: shared [kWarps].
template <class T>
__device__ __forceinline__ T block_sum(T v, T* sh) {
  T total;
  (void)block_excl_scan(v, sh, total);
  return total;
}

// Rank of a flag among the flagged threads of the block (thread order) and their count.
// sh: shared [kWarps]. Every thread must call it.
__device__ __forceinline__ uint32_t block_rank(bool flag, uint32_t* sh, uint32_t& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const unsigned m = __ballot_sync(kFull, flag);
  if (lane == 0) sh[warp] = __popc(m);
  __syncthreads();
  uint32_t off = 0, tot = 0;
  for (int w = 0; w < kWarps; ++w) {
    if (w == warp) off = tot;
    tot += sh[w];
  }
  __syncthreads();
  total = tot;
  return off + __popc(m & ((1u << lane) - 1u));
}

// hist[bin] += 1 for an active lane. Plain shared atomics measured faster on an
// H100 than first aggregating the lanes of a bin with __match_any_sync.
__device__ __forceinline__ void hist_add(uint32_t* hist, uint32_t bin, bool active) {
  if (active) atomicAdd(&hist[bin], 1u);
}

// Appends v of every lane with `take` to buf through the shared counter
// `*count` (one atomic per warp; order within the buffer is arbitrary).
// All 32 lanes must call it.
__device__ __forceinline__ void warp_push(uint64_t* buf, uint32_t* count, bool take, uint64_t v) {
  const unsigned m = __ballot_sync(kFull, take);
  if (m == 0) return;  // warp-uniform
  const int lane = threadIdx.x & 31, leader = __ffs(m) - 1;
  uint32_t base = 0;
  if (lane == leader) base = atomicAdd(count, static_cast<uint32_t>(__popc(m)));
  base = __shfl_sync(kFull, base, leader);
  if (take) buf[base + __popc(m & ((1u << lane) - 1u))] = v;
}

// Bitonic sort of a[0..n) (n a power of two <= kThreads * 2 * k), descending. Every thread must call it.
__device__ __forceinline__ void bitonic_sort_desc(uint64_t* a, int n) {
  for (int size = 2; size <= n; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int t = threadIdx.x; t < (n >> 1); t += kThreads) {
        const int i = 2 * t - (t & (stride - 1));  // lower index of the pair (bit `stride` clear)
        const int j = i + stride;
        const uint64_t x = a[i], y = a[j];
        const bool desc = (i & size) == 0;  // the final merge (size == n) is descending
        if (desc ? x < y : x > y) {
          a[i] = y;
          a[j] = x;
        }
      }
      __syncthreads();
    }
  }
}

}  // namespace velo::cuda::sampling
