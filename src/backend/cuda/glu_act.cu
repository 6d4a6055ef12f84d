// The GLU fused with the activation conversion of its output for the w_down matvec
// (norm_act.h glu_act): out = act(gate) * up as glu.cu computes it (glu_dev.cuh's
// activations, one rounded product), then the conversion act_quant_dev.cuh's code
// applies to those same values: a warp per Q8 block of 32 (a lane per element) or
// per Q8_K block of 256 (8 elements per lane), or the fp16 / bf16 rounding per
// element. Hence the bytes of glu followed by quantize_act / round_act_half, in
// one launch instead of two.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "backend/cuda/act_quant_dev.cuh"
#include "backend/cuda/glu_dev.cuh"
#include "backend/cuda/matmul_kernels.h"
#include "backend/cuda/norm_act.h"
#include "backend/cuda/quant_dev.cuh"
#include "quant/blocks.h"

namespace velo::cuda {
namespace {

using Kind = Matmul::ActPrep::Kind;
constexpr int kWarps = 4;  // per CTA: a decode step's few blocks spread over more SMs
constexpr int kHalfThreads = 256;

struct GluDst {
  int8_t* qs = nullptr;
  float* d = nullptr;
  float* s = nullptr;        // Q8
  int32_t* bsum = nullptr;   // Q8_K
  uint16_t* half = nullptr;  // F16 / BF16
};

// Q8: one warp per 32-block b of the flat [rows * n] arrays (n % 32 == 0, so block b of
// the flat array is block b of the conversion's [rows][n / 32] layout).
template <class Act>
__global__ void __launch_bounds__(32 * kWarps) glu_q8_kernel(const float* gate, const float* up, float* out,
                                                             int64_t nblocks, GluDst dst, Act act) {
  qdev::allow_dependents();  // the matvec may launch and load weights now
  qdev::wait_for_inputs();   // gate, up come from the kernel before
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (b >= nblocks) return;  // whole warps leave together
  const int lane = threadIdx.x & 31;
  const int64_t i = b * 32 + lane;
  const float v = __fmul_rn(act(gate[i]), up[i]);
  out[i] = v;  // out may alias gate: this lane's own element, read above
  qdev::quantize_q8_block(v, b, lane, dst.qs, dst.d, dst.s);
}

// Q8_K: one warp per 256-block (n % 256 == 0); lane: elements 8*lane .. 8*lane+7.
// VEC: gate, up and out 16-byte aligned.
template <bool VEC, class Act>
__global__ void __launch_bounds__(32 * kWarps) glu_q8k_kernel(const float* gate, const float* up, float* out,
                                                              int64_t nblocks, GluDst dst, Act act) {
  qdev::allow_dependents();
  qdev::wait_for_inputs();
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (b >= nblocks) return;
  const int lane = threadIdx.x & 31;
  const int64_t i0 = b * QK_K + 8 * lane;
  float g[8], u[8], v[8];
  if constexpr (VEC) {
    const float4* g4 = reinterpret_cast<const float4*>(gate + i0);
    const float4* u4 = reinterpret_cast<const float4*>(up + i0);
    const float4 g0 = g4[0], g1 = g4[1], u0 = u4[0], u1 = u4[1];
    const float gs[8] = {g0.x, g0.y, g0.z, g0.w, g1.x, g1.y, g1.z, g1.w};
    const float us[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
#pragma unroll
    for (int k = 0; k < 8; ++k) g[k] = gs[k], u[k] = us[k];
  } else {
#pragma unroll
    for (int k = 0; k < 8; ++k) g[k] = gate[i0 + k], u[k] = up[i0 + k];
  }
#pragma unroll
  for (int k = 0; k < 8; ++k) v[k] = __fmul_rn(act(g[k]), u[k]);
  if constexpr (VEC) {
    float4* o4 = reinterpret_cast<float4*>(out + i0);
    o4[0] = make_float4(v[0], v[1], v[2], v[3]);
    o4[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
#pragma unroll
    for (int k = 0; k < 8; ++k) out[i0 + k] = v[k];
  }
  qdev::quantize_q8k_block(v, b, lane, dst.qs, dst.d, dst.bsum);
}

// F16 / BF16: out[i] and its rounding, grid-stride over n elements.
template <bool BF16, class Act>
__global__ void __launch_bounds__(kHalfThreads) glu_half_kernel(const float* gate, const float* up, float* out,
                                                                int64_t n, uint16_t* half, Act act) {
  qdev::allow_dependents();
  qdev::wait_for_inputs();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = __fmul_rn(act(gate[i]), up[i]);
    out[i] = v;
    half[i] = qdev::to_half_bits(v, BF16);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

unsigned warp_grid(int64_t nblocks) { return static_cast<unsigned>((nblocks + kWarps - 1) / kWarps); }

template <class Act>
void launch(const float* gate, const float* up, float* out, int64_t rows, int n, const Matmul::ActPrep& act,
            Act op, cudaStream_t stream) {
  const int64_t total = rows * n;
  if (act.kind == Kind::kF16 || act.kind == Kind::kBF16) {
    auto* half = static_cast<uint16_t*>(act.base);
    const auto grid = static_cast<unsigned>(std::min<int64_t>((total + kHalfThreads - 1) / kHalfThreads, 4096));
    if (act.kind == Kind::kBF16)
      detail::launch_pdl(glu_half_kernel<true, Act>, grid, kHalfThreads, stream, gate, up, out, total, half, op);
    else
      detail::launch_pdl(glu_half_kernel<false, Act>, grid, kHalfThreads, stream, gate, up, out, total, half, op);
    return;
  }
  const auto f = act.kind == Kind::kQ8 ? detail::ActQuant::kQ8 : detail::ActQuant::kQ8K;
  const detail::ActQ8View v = detail::act_q8_view(f, act.base, rows, n);
  const GluDst dst{const_cast<int8_t*>(v.qs), const_cast<float*>(v.d), const_cast<float*>(v.s),
                   const_cast<int32_t*>(v.bsum), nullptr};
  if (act.kind == Kind::kQ8) {
    const int64_t nb = total / 32;
    detail::launch_pdl(glu_q8_kernel<Act>, warp_grid(nb), 32 * kWarps, stream, gate, up, out, nb, dst, op);
    return;
  }
  const int64_t nb = total / QK_K;
  if (aligned16(gate) && aligned16(up) && aligned16(out))
    detail::launch_pdl(glu_q8k_kernel<true, Act>, warp_grid(nb), 32 * kWarps, stream, gate, up, out, nb, dst, op);
  else
    detail::launch_pdl(glu_q8k_kernel<false, Act>, warp_grid(nb), 32 * kWarps, stream, gate, up, out, nb, dst, op);
}

}  // namespace

void glu_act(Glu kind, const float* gate, const float* up, float* out, int64_t rows, int n,
             const Matmul::ActPrep& act, cudaStream_t stream) {
  if (act.kind == Kind::kNone) return glu(kind, gate, up, out, rows, n, stream);  // the matvec converts
  if (rows <= 0 || n <= 0) return;
  const int block = act.kind == Kind::kQ8 ? 32 : act.kind == Kind::kQ8K ? QK_K : 1;
  if (n % block != 0) {  // never for a matmul's cols (whole weight blocks); the two launches then
    glu(kind, gate, up, out, rows, n, stream);
    if (act.kind == Kind::kF16 || act.kind == Kind::kBF16)
      detail::round_act_half(out, rows * n, act.kind == Kind::kBF16, static_cast<uint16_t*>(act.base), stream);
    else
      detail::quantize_act(act.kind == Kind::kQ8 ? detail::ActQuant::kQ8 : detail::ActQuant::kQ8K, out, rows, n,
                           act.base, stream);
    return;
  }
  if (kind == Glu::SiLU) launch(gate, up, out, rows, n, act, gludev::SiluOp{}, stream);
  else launch(gate, up, out, rows, n, act, gludev::GeluOp{}, stream);
}

}  // namespace velo::cuda
