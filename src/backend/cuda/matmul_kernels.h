// Private to the CUDA matmul (matmul.cu and the kernels it launches): the
// device activation formats and the launchers of each kernel file. Every
// launcher only enqueues on `stream`; shapes are validated by Matmul::run.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace velo::cuda::detail {

// Quantized activations of m token rows of `cols` elements (device arrays):
//  - Q8 (the 32-element weight types): qs = round-half-even(x * 127/amax) per 32,
//    d = fp16(amax/127), s = fp16(d_unrounded * Σqs): cpu::detail::ActQ8 bit for bit.
//  - Q8_K (the K-quants): as cpu block_q8_K: d per 256, bsum = Σqs per 16.
struct ActQ8View {
  const int8_t* qs = nullptr;    // [m][cols]
  const float* d = nullptr;      // [m][cols/32] (Q8) or [m][cols/256] (Q8_K)
  const float* s = nullptr;      // [m][cols/32] (Q8 only)
  const int32_t* bsum = nullptr; // [m][cols/16] (Q8_K only)
};

enum class ActQuant : uint8_t { kQ8, kQ8K };

// The format the matvec of weight type t quantizes activations to.
inline ActQuant act_quant_of(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K: return ActQuant::kQ8K;
    default: return ActQuant::kQ8;
  }
}

// Device bytes of quantized activations for m rows of cols (each array 256-byte aligned),
// and the view of such a buffer at `base`.
uint64_t act_q8_bytes(ActQuant f, int64_t m, int64_t cols);
ActQ8View act_q8_view(ActQuant f, void* base, int64_t m, int64_t cols);

// ---- quantize_act.cu ------------------------------------------------------
// x: [m][cols] f32 -> the quantized view's arrays (written through `base` = act_q8_view's base).
void quantize_act(ActQuant f, const float* x, int64_t m, int64_t cols, void* base, cudaStream_t stream);
// out[i] = fp16 or bf16 bits of x[i] (round to nearest even), i < n.
void round_act_half(const float* x, int64_t n, bool bf16, uint16_t* out, cudaStream_t stream);

// ---- matvec_quant.cu ------------------------------------------------------
// y[t * y_stride + r] = dot(W row r, x token t), m <= 8, for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q4_K, Q5_K, Q6_K. w: rows × row_bytes(t, cols), 16-byte aligned; x quantized per act_quant_of(t).
void matvec_quant(GgmlType t, const void* w, int64_t rows, int64_t cols, const ActQ8View& x, int64_t m,
                  float* y, int64_t y_stride, cudaStream_t stream);

// ---- matvec_float.cu ------------------------------------------------------
// Same for F32 (x: f32 [m][cols]), F16 and BF16 (x: fp16 / bf16 bits [m][cols], rounded
// like the CPU's activations); products and sums in f32.
void matvec_float(GgmlType t, const void* w, int64_t rows, int64_t cols, const void* x, int64_t m, float* y,
                  int64_t y_stride, cudaStream_t stream);

// ---- dequantize.cu --------------------------------------------------------
// out[r][c] = fp16(dequantized W[r][c]) for the quant types (the GEMM path's weights).
void dequantize_f16(GgmlType t, const void* w, int64_t rows, int64_t cols, uint16_t* out, cudaStream_t stream);

}  // namespace velo::cuda::detail
