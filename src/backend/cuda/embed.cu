// Token embedding lookup: x[t] = dequantized row tokens[t] of the table * scale,
// bit-exact with quant::dequantize_row followed by one f32 multiply. One CTA per
// token; quant rows go 16 elements per thread (qdev::dequant16), float rows one
// element per thread.
#include <cstdio>
#include <cstdlib>

#include "backend/cuda/ops.h"
#include "backend/cuda/quant_dev.cuh"

namespace velo::cuda {
namespace {

using namespace qdev;

constexpr int kThreads = 256;

// Token ids come from device memory: an id outside the table is clamped into it
// (memory safety; callers validate ids against the vocabulary on the host).
__device__ __forceinline__ int64_t row_of(const int32_t* tokens, int64_t t, int64_t rows) {
  const int64_t id = tokens[t];
  return id < 0 ? 0 : (id >= rows ? rows - 1 : id);
}

template <GgmlType T>
__global__ void __launch_bounds__(kThreads)
embed_quant_kernel(const uint8_t* __restrict__ table, int64_t rows, int64_t cols, const int32_t* __restrict__ tokens,
                   float* __restrict__ x, float scale) {
  constexpr int kGroupsPerBlock = BlockOf<T>::kElems / 16;
  const int64_t row_bytes = cols / BlockOf<T>::kElems * BlockOf<T>::kBytes;
  const uint8_t* src = table + row_of(tokens, blockIdx.x, rows) * row_bytes;
  float* dst = x + static_cast<int64_t>(blockIdx.x) * cols;
  for (int g = threadIdx.x; g < cols / 16; g += kThreads) {
    float v[16];
    dequant16<T>(src + (g / kGroupsPerBlock) * BlockOf<T>::kBytes, g % kGroupsPerBlock, v);
    float4* out = reinterpret_cast<float4*>(dst + 16 * g);
#pragma unroll
    for (int k = 0; k < 4; ++k)
      out[k] = make_float4(__fmul_rn(v[4 * k], scale), __fmul_rn(v[4 * k + 1], scale),
                           __fmul_rn(v[4 * k + 2], scale), __fmul_rn(v[4 * k + 3], scale));
  }
}

template <GgmlType T>
__global__ void __launch_bounds__(kThreads)
embed_float_kernel(const uint8_t* __restrict__ table, int64_t rows, int64_t cols, const int32_t* __restrict__ tokens,
                   float* __restrict__ x, float scale) {
  constexpr int kSize = T == GgmlType::F32 ? 4 : 2;
  const uint8_t* src = table + row_of(tokens, blockIdx.x, rows) * cols * kSize;
  float* dst = x + static_cast<int64_t>(blockIdx.x) * cols;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) {
    float v;
    if constexpr (T == GgmlType::F32) v = reinterpret_cast<const float*>(src)[c];
    else if constexpr (T == GgmlType::F16) v = half_to_float(reinterpret_cast<const uint16_t*>(src)[c]);
    else v = bf16_to_float(reinterpret_cast<const uint16_t*>(src)[c]);
    dst[c] = __fmul_rn(v, scale);
  }
}

template <GgmlType T, bool kQuant>
void launch(const DevMatrix& table, const int32_t* tokens, int64_t T_, float* x, float scale, cudaStream_t stream) {
  const auto* w = static_cast<const uint8_t*>(table.data);
  if constexpr (kQuant)
    embed_quant_kernel<T><<<static_cast<unsigned>(T_), kThreads, 0, stream>>>(w, table.rows, table.cols, tokens, x,
                                                                             scale);
  else
    embed_float_kernel<T><<<static_cast<unsigned>(T_), kThreads, 0, stream>>>(w, table.rows, table.cols, tokens, x,
                                                                             scale);
}

}  // namespace

void embed(const DevMatrix& table, const int32_t* tokens, int64_t T, float* x, float scale, cudaStream_t stream) {
  if (T <= 0) return;
  switch (table.type) {
    case GgmlType::F32: return launch<GgmlType::F32, false>(table, tokens, T, x, scale, stream);
    case GgmlType::F16: return launch<GgmlType::F16, false>(table, tokens, T, x, scale, stream);
    case GgmlType::BF16: return launch<GgmlType::BF16, false>(table, tokens, T, x, scale, stream);
    case GgmlType::Q4_0: return launch<GgmlType::Q4_0, true>(table, tokens, T, x, scale, stream);
    case GgmlType::Q4_1: return launch<GgmlType::Q4_1, true>(table, tokens, T, x, scale, stream);
    case GgmlType::Q5_0: return launch<GgmlType::Q5_0, true>(table, tokens, T, x, scale, stream);
    case GgmlType::Q5_1: return launch<GgmlType::Q5_1, true>(table, tokens, T, x, scale, stream);
    case GgmlType::Q8_0: return launch<GgmlType::Q8_0, true>(table, tokens, T, x, scale, stream);
    case GgmlType::Q4_K: return launch<GgmlType::Q4_K, true>(table, tokens, T, x, scale, stream);
    case GgmlType::Q5_K: return launch<GgmlType::Q5_K, true>(table, tokens, T, x, scale, stream);
    case GgmlType::Q6_K: return launch<GgmlType::Q6_K, true>(table, tokens, T, x, scale, stream);
    default:
      std::fprintf(stderr, "velo::cuda::embed: unsupported table type %u\n", static_cast<unsigned>(table.type));
      std::abort();
  }
}

}  // namespace velo::cuda
