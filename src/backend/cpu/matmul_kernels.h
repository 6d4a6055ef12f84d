// Internal to the CPU matmul: activation formats and tile kernels.
// A tile kernel computes y[t][r] = dot(W row r, activation row t) for a block of
// weight rows × tokens; each output is computed by exactly one fixed sequence of
// operations whatever the tile shape, so results do not depend on threading.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace velo::cpu::detail {

// Activation block for the 32-element quant types: x[j] ≈ d * qs[j].
// d is rounded to fp16 precision (as llama.cpp's block_q8_0/q8_1 store it);
// s = d * sum(qs), exact in float, used by the types with a min (Q4_1, Q5_1).
struct ActQ8 {
  float d;
  float s;
  int8_t qs[32];
};
static_assert(sizeof(ActQ8) == 40, "ActQ8 layout");

enum class ActFormat {
  kF32,        // floats as given (F32 weights)
  kF32AsF16,   // floats rounded to fp16 precision (F16 weights, like llama.cpp's vec_dot_type)
  kF32AsBF16,  // floats rounded to bf16 precision (BF16 weights)
  kQ8,         // ActQ8 blocks of 32 (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), see act_q8_d
  kQ8K,        // block_q8_K of 256 (the K-quants)
};

// A kQ8 row of nb blocks is nb ActQ8, then the nb scales d again as a contiguous
// float array, then the nb sums s (for vector loads of 8 blocks' scales),
// then 32 bytes of zero padding so such loads may run past the last block.
inline const float* act_q8_d(const void* row, int64_t nb) {
  return reinterpret_cast<const float*>(static_cast<const ActQ8*>(row) + nb);
}
inline const float* act_q8_s(const void* row, int64_t nb) { return act_q8_d(row, nb) + nb; }

// Format the activations of weight type t are converted to.
ActFormat act_format(GgmlType t);
// Bytes of one converted activation row of `cols` elements (cols a whole number of blocks).
size_t act_row_bytes(ActFormat f, int64_t cols);
// Converts one row of `cols` floats into format f at dst.
void quantize_act_row(ActFormat f, const float* x, void* dst, int64_t cols);
// The portable reference of quantize_act_row (the SIMD path must match it bit for bit).
void quantize_act_row_scalar(ActFormat f, const float* x, void* dst, int64_t cols);

struct Tile {
  const uint8_t* w;  // weight row 0 of the tile
  size_t w_stride;   // bytes between weight rows
  const uint8_t* x;  // converted activation row of token 0 of the tile
  size_t x_stride;   // bytes between activation rows
  float* y;          // y[t * y_stride + r]
  int64_t y_stride;
  int64_t cols;      // elements per row
  int64_t batch = 0; // tokens in the whole matmul call: llama.cpp picks its float kernel by it
};

// Computes the nrows × ntok outputs of a tile (any sizes >= 1).
using TileKernel = void (*)(const Tile& tile, int nrows, int ntok);

// Kernel for weight type t (nullptr when unsupported): the SIMD one where compiled in.
TileKernel tile_kernel(GgmlType t);
// Portable scalar kernels (the fallback when no SIMD path is compiled).
TileKernel tile_kernel_scalar(GgmlType t);
// SIMD kernels by family; nullptr where this build has none for t.
TileKernel tile_kernel_q32(GgmlType t);    // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0
TileKernel tile_kernel_kquant(GgmlType t); // Q4_K, Q5_K, Q6_K
TileKernel tile_kernel_float(GgmlType t);  // F32, F16, BF16

}  // namespace velo::cpu::detail
