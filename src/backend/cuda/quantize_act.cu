// Activation conversion before a matvec or GEMM, bit-exact with the CPU's
// cpu::detail::quantize_act_row (src/backend/cpu/quantize_act.cpp):
//  - Q8 blocks of 32 (one warp per block, a lane per element),
//  - Q8_K blocks of 256 (one warp per block, 8 elements per lane),
//  - fp16 / bf16 rounding (round to nearest even).
// The per-block code is act_quant_dev.cuh's, shared with the norm epilogue (norm_act.h).
// Launched with programmatic dependent launch (detail::launch_pdl): a kernel starts
// while the one before it drains, lets its matvec launch at once (which then loads
// weights), and waits for the kernel before it only to read x.
#include <cuda_fp16.h>

#include <algorithm>

#include "backend/cuda/act_quant_dev.cuh"
#include "backend/cuda/matmul_kernels.h"
#include "backend/cuda/quant_dev.cuh"
#include "quant/blocks.h"

namespace velo::cuda::detail {
namespace {

constexpr int kWarpsPerCta = 8;

uint64_t align256(uint64_t n) { return (n + 255) / 256 * 256; }

// One warp per 32-block: d = fp16(amax/127), q = rne(x * 127/amax), s = fp16(d * Σq).
__global__ void __launch_bounds__(32 * kWarpsPerCta)
quantize_q8_kernel(const float* __restrict__ x, int64_t nblocks, int8_t* __restrict__ qs, float* __restrict__ d,
                   float* __restrict__ s) {
  qdev::allow_dependents();  // the matvec after this may start loading weights
  qdev::wait_for_inputs();   // x comes from the kernel before
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kWarpsPerCta + threadIdx.x / 32;
  if (b >= nblocks) return;  // whole warps leave together
  qdev::quantize_q8_block(x[b * 32 + threadIdx.x % 32], b, threadIdx.x & 31, qs, d, s);
}

// One warp per 256-block (quantize_row_q8_K_ref): the scale comes from the signed value
// of largest magnitude (the first one on ties), q = min(rne(-127/max * x), 127).
__global__ void __launch_bounds__(32 * kWarpsPerCta)
quantize_q8k_kernel(const float* __restrict__ x, int64_t nblocks, int8_t* __restrict__ qs, float* __restrict__ d,
                    int32_t* __restrict__ bsum) {
  qdev::allow_dependents();  // the matvec after this may start loading weights
  qdev::wait_for_inputs();   // x comes from the kernel before
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kWarpsPerCta + threadIdx.x / 32;
  if (b >= nblocks) return;
  const int lane = threadIdx.x & 31;
  const float* src = x + b * QK_K + 8 * lane;
  float v[8];
  if ((reinterpret_cast<uintptr_t>(x) & 15) == 0) {  // the forward's buffers; any float array otherwise
    const float4 a = reinterpret_cast<const float4*>(src)[0], c = reinterpret_cast<const float4*>(src)[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = c.x, v[5] = c.y, v[6] = c.z, v[7] = c.w;
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = src[i];
  }
  qdev::quantize_q8k_block(v, b, lane, qs, d, bsum);
}

__global__ void round_half_kernel(const float* __restrict__ x, int64_t n, bool bf16, uint16_t* __restrict__ out) {
  qdev::allow_dependents();
  qdev::wait_for_inputs();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = qdev::to_half_bits(x[i], bf16);
}

}  // namespace

uint64_t act_q8_bytes(ActQuant f, int64_t m, int64_t cols) {
  const uint64_t n = static_cast<uint64_t>(m) * static_cast<uint64_t>(cols);
  if (f == ActQuant::kQ8) return align256(n) + 2 * align256(n / 32 * sizeof(float));
  return align256(n) + align256(n / QK_K * sizeof(float)) + align256(n / 16 * sizeof(int32_t));
}

ActQ8View act_q8_view(ActQuant f, void* base, int64_t m, int64_t cols) {
  const uint64_t n = static_cast<uint64_t>(m) * static_cast<uint64_t>(cols);
  auto* p = static_cast<uint8_t*>(base);
  ActQ8View v;
  v.qs = reinterpret_cast<const int8_t*>(p);
  p += align256(n);
  if (f == ActQuant::kQ8) {
    v.d = reinterpret_cast<const float*>(p);
    v.s = reinterpret_cast<const float*>(p + align256(n / 32 * sizeof(float)));
  } else {
    v.d = reinterpret_cast<const float*>(p);
    v.bsum = reinterpret_cast<const int32_t*>(p + align256(n / QK_K * sizeof(float)));
  }
  return v;
}

void quantize_act(ActQuant f, const float* x, int64_t m, int64_t cols, void* base, cudaStream_t stream) {
  const ActQ8View v = act_q8_view(f, base, m, cols);
  auto* qs = const_cast<int8_t*>(v.qs);
  auto* d = const_cast<float*>(v.d);
  const int64_t nblocks = m * cols / (f == ActQuant::kQ8 ? 32 : QK_K);
  const auto grid = static_cast<unsigned>((nblocks + kWarpsPerCta - 1) / kWarpsPerCta);
  if (f == ActQuant::kQ8)
    launch_pdl(quantize_q8_kernel, grid, 32 * kWarpsPerCta, stream, x, nblocks, qs, d, const_cast<float*>(v.s));
  else
    launch_pdl(quantize_q8k_kernel, grid, 32 * kWarpsPerCta, stream, x, nblocks, qs, d,
               const_cast<int32_t*>(v.bsum));
}

void round_act_half(const float* x, int64_t n, bool bf16, uint16_t* out, cudaStream_t stream) {
  const int64_t blocks = std::min<int64_t>((n + 255) / 256, 4096);
  launch_pdl(round_half_kernel, static_cast<unsigned>(blocks), 256, stream, x, n, bf16, out);
}

}  // namespace velo::cuda::detail
