// Gated linear units: out = act(gate) * up, element-wise over rows * n.
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
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/cpu_math.cuh"
#include "backend/cuda/ops.h"

namespace velo::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 16384;

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

template <class Act> __device__ float4 glu4(float4 g, float4 u, const Act& act) {
  return make_float4(__fmul_rn(act(g.x), u.x), __fmul_rn(act(g.y), u.y), __fmul_rn(act(g.z), u.z),
                     __fmul_rn(act(g.w), u.w));
}

// out[i] = act(gate[i]) * up[i] for i < n; gate, up, out: [n] (out may alias gate).
// VEC: all three 16-byte aligned; groups of 4, then the n % 4 tail.
template <bool VEC, class Act>
__global__ void __launch_bounds__(kThreads) glu_kernel(const float* gate, const float* up, float* out, int64_t n,
                                                       Act act) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if constexpr (VEC) {
    const int64_t n4 = n / 4;
    const float4* g4 = reinterpret_cast<const float4*>(gate);
    const float4* u4 = reinterpret_cast<const float4*>(up);
    float4* o4 = reinterpret_cast<float4*>(out);
    for (int64_t i = tid; i < n4; i += step) o4[i] = glu4(g4[i], u4[i], act);
    done = n4 * 4;
  }
  for (int64_t i = done + tid; i < n; i += step) out[i] = __fmul_rn(act(gate[i]), up[i]);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <class Act>
void launch(const float* gate, const float* up, float* out, int64_t n, Act act, cudaStream_t stream) {
  const bool vec = aligned16(gate) && aligned16(up) && aligned16(out);
  const int64_t units = vec ? (n + 3) / 4 : n;
  int64_t blocks = (units + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  const dim3 grid(static_cast<unsigned>(blocks));
  if (vec) glu_kernel<true><<<grid, kThreads, 0, stream>>>(gate, up, out, n, act);
  else glu_kernel<false><<<grid, kThreads, 0, stream>>>(gate, up, out, n, act);
}

}  // namespace

void glu(Glu kind, const float* gate, const float* up, float* out, int64_t rows, int n, cudaStream_t stream) {
  if (rows <= 0 || n <= 0) return;
  const int64_t total = rows * n;  // rows are contiguous: one flat pass
  if (kind == Glu::SiLU) launch(gate, up, out, total, SiluOp{}, stream);
  else launch(gate, up, out, total, GeluOp{}, stream);
}

}  // namespace velo::cuda
