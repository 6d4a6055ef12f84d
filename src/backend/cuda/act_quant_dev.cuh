// Device code of the activation conversion (cpu::detail::quantize_act_row bit for bit),
// shared by the standalone conversion kernels (quantize_act.cu) and the norm epilogue
// that converts its output for the next matmul group (rmsnorm.cu, norm_act.h): one
// code path, so both write the same bytes. Divisions are IEEE (no fast math), products
// are never fused with an add.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

#include "quant/blocks.h"

namespace velo::cuda::qdev {

// Q8 block b of 32 (one warp, lane = element): d = fp16(amax/127), q = rne(x * 127/amax),
// s = fp16(d * Σq). v: this lane's element.
__device__ __forceinline__ void quantize_q8_block(float v, int64_t b, int lane, int8_t* qs, float* d, float* s) {
  constexpr unsigned kFull = 0xffffffffu;
  float amax = fabsf(v);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(kFull, amax, o));
  const float dd = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  const int q = __float2int_rn(v * id);
  qs[b * 32 + lane] = static_cast<int8_t>(q);
  int sum = q;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(kFull, sum, o);
  if (lane == 0) {
    d[b] = __half2float(__float2half_rn(dd));
    s[b] = __half2float(__float2half_rn(dd * static_cast<float>(sum)));
  }
}

// Q8_K block b of 256 (one warp, quantize_row_q8_K_ref): the scale comes from the signed
// value of largest magnitude (the first one on ties), q = min(rne(-127/max * x), 127).
// v: elements 8*lane .. 8*lane+7 of the block.
__device__ __forceinline__ void quantize_q8k_block(const float (&v)[8], int64_t b, int lane, int8_t* qs, float* d,
                                                   int32_t* bsum) {
  constexpr unsigned kFull = 0xffffffffu;
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < 8; ++i) amax = fmaxf(amax, fabsf(v[i]));
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(kFull, amax, o));
  // First element whose magnitude is amax, and its signed value.
  unsigned first = 256;
  float cand = 0.0f;
#pragma unroll
  for (int i = 7; i >= 0; --i)
    if (fabsf(v[i]) == amax) first = 8 * lane + i, cand = v[i];
  first = __reduce_min_sync(kFull, first);
  const float max = __shfl_sync(kFull, cand, static_cast<int>(first / 8));
  int8_t* out = qs + b * QK_K + 8 * lane;
  if (amax == 0.0f) {  // as the CPU: an all-zero block has d = 0 and zero quants
    *reinterpret_cast<uint2*>(out) = make_uint2(0, 0);
    if ((lane & 1) == 0) bsum[b * 16 + lane / 2] = 0;
    if (lane == 0) d[b] = 0.0f;
    return;
  }
  const float iscale = -127.0f / max;
  int sum = 0;
  uint32_t packed[2] = {0, 0};
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int q = min(__float2int_rn(iscale * v[i]), 127);
    sum += q;
    packed[i / 4] |= static_cast<uint32_t>(q & 0xFF) << (8 * (i % 4));
  }
  *reinterpret_cast<uint2*>(out) = make_uint2(packed[0], packed[1]);
  sum += __shfl_xor_sync(kFull, sum, 1);  // groups of 16 = lane pairs
  if ((lane & 1) == 0) bsum[b * 16 + lane / 2] = sum;
  if (lane == 0) d[b] = 1.0f / iscale;
}

// Round to nearest even, as quant/fp16.h (NaN stays a quiet NaN for bf16).
__device__ __forceinline__ uint16_t to_bf16(float f) {
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 64);
  return static_cast<uint16_t>((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}
__device__ __forceinline__ uint16_t to_half_bits(float f, bool bf16) {
  return bf16 ? to_bf16(f) : __half_as_ushort(__float2half_rn(f));
}

}  // namespace velo::cuda::qdev
