// Quantized weights -> F16 for the GEMM path (prompt processing): cuBLAS then
// multiplies on the tensor cores. One thread per 16 consecutive elements
// (qdev::dequant16, exact as quant::dequantize_row), rounded to fp16 and written
// with two 16-byte stores, consecutive threads on consecutive elements.
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "backend/cuda/matmul_kernels.h"
#include "backend/cuda/quant_dev.cuh"

namespace velo::cuda::detail {
namespace {

using namespace qdev;

constexpr int kThreads = 256;

// out: [rows][cols] fp16; groups = rows * cols / 16 (< 2^32), groups_per_row = cols / 16.
template <GgmlType T>
__global__ void __launch_bounds__(kThreads)
dequantize_f16_kernel(const uint8_t* __restrict__ w, int64_t row_bytes, uint32_t groups, uint32_t groups_per_row,
                      __half* __restrict__ out) {
  constexpr int kGroupsPerBlock = BlockOf<T>::kElems / 16;
  for (uint32_t i = blockIdx.x * kThreads + threadIdx.x; i < groups; i += gridDim.x * kThreads) {
    const uint32_t row = i / groups_per_row, gr = i % groups_per_row;
    const uint8_t* blk = w + row * row_bytes + (gr / kGroupsPerBlock) * BlockOf<T>::kBytes;
    float v[16];
    dequant16<T>(blk, static_cast<int>(gr % kGroupsPerBlock), v);
    uint4 o[2];
    auto* h = reinterpret_cast<__half2*>(o);
#pragma unroll
    for (int k = 0; k < 8; ++k) h[k] = __floats2half2_rn(v[2 * k], v[2 * k + 1]);
    uint4* dst = reinterpret_cast<uint4*>(out + static_cast<int64_t>(i) * 16);
    dst[0] = o[0];
    dst[1] = o[1];
  }
}

template <GgmlType T>
void launch(const void* w, int64_t rows, int64_t cols, uint16_t* out, cudaStream_t stream) {
  const auto groups = static_cast<uint32_t>(rows * cols / 16);
  const int64_t row_bytes = cols / BlockOf<T>::kElems * BlockOf<T>::kBytes;
  const auto grid = static_cast<unsigned>(std::min<int64_t>((groups + kThreads - 1) / kThreads, 132 * 32));
  dequantize_f16_kernel<T><<<grid, kThreads, 0, stream>>>(static_cast<const uint8_t*>(w), row_bytes, groups,
                                                          static_cast<uint32_t>(cols / 16),
                                                          reinterpret_cast<__half*>(out));
}

}  // namespace

void dequantize_f16(GgmlType t, const void* w, int64_t rows, int64_t cols, uint16_t* out, cudaStream_t stream) {
  switch (t) {
    case GgmlType::Q4_0: return launch<GgmlType::Q4_0>(w, rows, cols, out, stream);
    case GgmlType::Q4_1: return launch<GgmlType::Q4_1>(w, rows, cols, out, stream);
    case GgmlType::Q5_0: return launch<GgmlType::Q5_0>(w, rows, cols, out, stream);
    case GgmlType::Q5_1: return launch<GgmlType::Q5_1>(w, rows, cols, out, stream);
    case GgmlType::Q8_0: return launch<GgmlType::Q8_0>(w, rows, cols, out, stream);
    case GgmlType::Q4_K: return launch<GgmlType::Q4_K>(w, rows, cols, out, stream);
    case GgmlType::Q5_K: return launch<GgmlType::Q5_K>(w, rows, cols, out, stream);
    case GgmlType::Q6_K: return launch<GgmlType::Q6_K>(w, rows, cols, out, stream);
    default:
      std::fprintf(stderr, "velo::cuda::dequantize_f16: unsupported type %u\n", static_cast<unsigned>(t));
      std::abort();
  }
}

}  // namespace velo::cuda::detail
