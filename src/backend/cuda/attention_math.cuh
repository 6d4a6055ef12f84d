// Device helpers shared by the attention kernels (decode and prefill). They
// reproduce the CPU backend's arithmetic step by step (cpu::softcap, scale,
// softmax in src/backend/cpu/ops.cpp) with explicitly rounded operations, so
// nvcc cannot contract them into FMAs the CPU does not do.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

namespace velo::cuda::attn {

// exp(x) exactly as cpu::softmax computes it (ggml's AVX-512 exp: x = n*ln2 + b,
// a degree-5 polynomial for exp(b), scaled by 2^n): identical inputs give
// identical bits, so the probabilities round to fp16 like the CPU's.
__device__ __forceinline__ float exp_cpu(float x) {
  const float r = 0x1.8p23f;
  const float z = __fmaf_rn(x, 0x1.715476p+0f, r);
  const float n = __fsub_rn(z, r);
  const float b = __fmaf_rn(-n, 0x1.7f7d1cp-20f, __fmaf_rn(-n, 0x1.62e4p-1f, x));
  const float u = __fmul_rn(b, b);
  const float hi = __fmaf_rn(0x1.0e4020p-7f, b, 0x1.573e2ep-5f);
  const float mid = __fmaf_rn(0x1.555e66p-3f, b, 0x1.fffdb6p-2f);
  const float lo = __fmaf_rn(0x1.ffffecp-1f, b, 1.0f);
  const float j = __fmaf_rn(__fmaf_rn(hi, u, mid), u, lo);
  if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : __int_as_float(0x7f800000);
  // j * 2^n with one rounding, like _mm512_scalef_ps: two power-of-two factors
  // (each a normal float); the first product is exact, the second rounds.
  const int ni = static_cast<int>(n), n1 = ni >> 1, n2 = ni - n1;
  return __fmul_rn(__fmul_rn(j, __int_as_float((n1 + 127) << 23)), __int_as_float((n2 + 127) << 23));
}

// A raw q.k product -> the logit the softmax sees: cpu::softcap (tanh(x * (1/cap)) * cap)
// when cap > 0, then cpu::scale.
__device__ __forceinline__ float logit(float dot, float cap, float inv_cap, float scale) {
  if (cap > 0.0f) dot = __fmul_rn(tanhf(__fmul_rn(dot, inv_cap)), cap);
  return __fmul_rn(dot, scale);
}

// Rounds to the nearest fp16 value (ties to even), as fp32_to_fp16 does.
__device__ __forceinline__ float round_f16(float x) { return __half2float(__float2half_rn(x)); }

// 8 fp16 values packed in 16 bytes -> floats.
__device__ __forceinline__ void unpack8(const uint4& v, float (&f)[8]) {
  const __half2* h = reinterpret_cast<const __half2*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 x = __half22float2(h[i]);
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}

}  // namespace velo::cuda::attn
