// The GLU activations of glu.cu, shared with the fused GLU + activation conversion
// (glu_act.cu), so both compute the same bits.
//
// SiLU as cpu::swiglu: g / (1 + exp(0 - g)) * up with the CPU's own exp
// formula (cpu_math.cuh), so bit-identical.
//
// GeLU as cpu::geglu, which (like ggml) reads a table indexed by fp16(g) that
// holds fp16(gelu_tanh(x)) for every half x, with g <= -10 -> 0 and g >= 10 -> g.
// We compute that table entry on the fly: round g to half, evaluate
// cpu::gelu_tanh's float expression in the same operation order (including the
// FMA that GCC contracts `1 + a * x * x` into), with tanh taken in double and
// rounded once, then round to half. Checked on the CPU against the table for
// every half input in (-10.5, 10.5): no entry differs, also with tanh perturbed
// by +-8 double ulps (so the device's tanh suffices). Hence bit-identical to cpu::geglu.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "backend/cuda/cpu_math.cuh"

namespace velo::cuda::gludev {

struct SiluOp {
  __device__ float operator()(float g) const { return cpumath::silu_ref(g); }
};

struct GeluOp {
  __device__ float operator()(float g) const {
    if (g <= -10.0f) return 0.0f;
    if (g >= 10.0f) return g;
    const float x = __half2float(__float2half_rn(g));  // the table index
    constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
    constexpr float kCoefA = 0.044715f;
    // (k * x) * fma(a * x, x, 1), then 0.5 * x * (1 + tanh(.)): cpu::gelu_tanh's order.
    const float inner = __fmaf_rn(__fmul_rn(kCoefA, x), x, 1.0f);
    const float u = __fmul_rn(__fmul_rn(kSqrt2OverPi, x), inner);
    const float th = static_cast<float>(tanh(static_cast<double>(u)));
    const float gelu = __fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.0f, th));
    return __half2float(__float2half_rn(gelu));  // the table holds halves
  }
};

}  // namespace velo::cuda::gludev
