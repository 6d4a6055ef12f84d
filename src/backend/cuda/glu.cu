// Gated linear units: out = act(gate) * up, element-wise over rows * n.
// The activations are glu_dev.cuh's (shared with glu_act.cu): bit-identical to
// cpu::swiglu and cpu::geglu.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/glu_dev.cuh"
#include "backend/cuda/matmul_kernels.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/quant_dev.cuh"

namespace velo::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 16384;

using gludev::GeluOp;
using gludev::SiluOp;

template <class Act> __device__ float4 glu4(float4 g, float4 u, const Act& act) {
  return make_float4(__fmul_rn(act(g.x), u.x), __fmul_rn(act(g.y), u.y), __fmul_rn(act(g.z), u.z),
                     __fmul_rn(act(g.w), u.w));
}

// out[i] = act(gate[i]) * up[i] for i < n; gate, up, out: [n] (out may alias gate).
// VEC: all three 16-byte aligned; groups of 4, then the n % 4 tail.
template <bool VEC, class Act>
__global__ void __launch_bounds__(kThreads) glu_kernel(const float* gate, const float* up, float* out, int64_t n,
                                                       Act act) {
  qdev::allow_dependents();  // the next kernel may launch now (it waits for this one)
  qdev::wait_for_inputs();   // the inputs come from the kernel before
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
  const auto grid = static_cast<unsigned>(blocks);  // programmatic dependent launch, as glu_act
  if (vec) detail::launch_pdl(glu_kernel<true, Act>, grid, kThreads, stream, gate, up, out, n, act);
  else detail::launch_pdl(glu_kernel<false, Act>, grid, kThreads, stream, gate, up, out, n, act);
}

}  // namespace

void glu(Glu kind, const float* gate, const float* up, float* out, int64_t rows, int n, cudaStream_t stream) {
  if (rows <= 0 || n <= 0) return;
  const int64_t total = rows * n;  // rows are contiguous: one flat pass
  if (kind == Glu::SiLU) launch(gate, up, out, total, SiluOp{}, stream);
  else launch(gate, up, out, total, GeluOp{}, stream);
}

}  // namespace velo::cuda
