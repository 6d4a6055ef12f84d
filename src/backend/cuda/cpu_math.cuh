// Device copies of the CPU backend's float formulas, operation for operation,
// so kernels that use them give the CPU's bits (the CPU is their oracle and
// greedy decoding must not diverge from it). Every rounding is explicit
// (__fmaf_rn, __fmul_rn, ...): nvcc must not contract or reorder them.
#pragma once
#include <cuda_fp16.h>

#include <cmath>

namespace velo::cuda::cpumath {

// cpu ops.cpp exp16 (ggml's exp: x = n ln2 + b, degree-5 polynomial, times 2^n), one lane.
__device__ __forceinline__ float exp_ref(float x) {
  const float r = 0x1.8p23f;
  const float z = __fmaf_rn(x, 0x1.715476p+0f, r);
  const float n = __fsub_rn(z, r);
  const float b = __fmaf_rn(-n, 0x1.7f7d1cp-20f, __fmaf_rn(-n, 0x1.62e4p-1f, x));
  if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;  // _CMP_GT_OQ: NaN falls through
  const float u = __fmul_rn(b, b);
  const float hi = __fmaf_rn(0x1.0e4020p-7f, b, 0x1.573e2ep-5f);
  const float mid = __fmaf_rn(0x1.555e66p-3f, b, 0x1.fffdb6p-2f);
  const float lo = __fmaf_rn(0x1.ffffecp-1f, b, 1.0f);
  const float j = __fmaf_rn(__fmaf_rn(hi, u, mid), u, lo);
  return isnan(n) ? j : ldexpf(j, static_cast<int>(n));  // scalef: exact scaling by 2^n
}

// cpu::swiglu's SiLU: g / (1 + exp(0 - g)).
__device__ __forceinline__ float silu_ref(float g) {
  return __fdiv_rn(g, __fadd_rn(1.0f, exp_ref(__fsub_rn(0.0f, g))));
}

__device__ __forceinline__ float fp16_round(float x) { return __half2float(__float2half_rn(x)); }

// _mm512_reduce_add_ps's tree over 16 lanes held by 16 consecutive threads of a
// warp (lane i of the vector in thread i % 16): (a[i] + a[i+8]), then +4, +2, +1.
// Every one of the 16 threads gets the sum. `mask`: the threads taking part.
__device__ __forceinline__ float reduce16_lanes(float v, unsigned mask = 0xffffffffu) {
  v = __fadd_rn(v, __shfl_xor_sync(mask, v, 8));
  v = __fadd_rn(v, __shfl_xor_sync(mask, v, 4));
  v = __fadd_rn(v, __shfl_xor_sync(mask, v, 2));
  return __fadd_rn(v, __shfl_xor_sync(mask, v, 1));
}

// The same tree over an array of 16 floats in one thread.
__device__ __forceinline__ float reduce16(const float* a) {
  float t8[8], t4[4];
#pragma unroll
  for (int i = 0; i < 8; ++i) t8[i] = __fadd_rn(a[i], a[i + 8]);
#pragma unroll
  for (int i = 0; i < 4; ++i) t4[i] = __fadd_rn(t8[i], t8[i + 4]);
  return __fadd_rn(__fadd_rn(t4[0], t4[2]), __fadd_rn(t4[1], t4[3]));
}

// simd.h hsum_ps over 8 lanes held by 8 consecutive threads: (v[i] + v[i+4]), +2, +1.
__device__ __forceinline__ float hsum8_lanes(float v, unsigned mask = 0xffffffffu) {
  v = __fadd_rn(v, __shfl_xor_sync(mask, v, 4));
  v = __fadd_rn(v, __shfl_xor_sync(mask, v, 2));
  return __fadd_rn(v, __shfl_xor_sync(mask, v, 1));
}

}  // namespace velo::cuda::cpumath
