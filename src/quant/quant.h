// Reference (scalar, exact) quantization and dequantization of ggml block formats.
// Block structs live in quant/blocks.h (host and device). Fast SIMD dot products
// live in the backend; these are the oracle they are tested against.
// quant/ref.h has the typed per-format kernels and the bit-layout helpers
// (nearest_int, scale_min_k4, unpack_q3_k_scales) kernels need to match them.
// Dequantization is bit-exact with ggml and gguf-py; quantization is byte-exact
// with ggml's quantize_row_*_ref (no importance matrix) and with gguf-py.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "core/result.h"

namespace velo::quant {

// Types with row dequantization (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K).
bool can_dequantize(GgmlType t);
// Types with reference quantization (the same set).
bool can_quantize(GgmlType t);

// dst[0..n) = values of the n elements at src. n must be a whole number of blocks.
Status dequantize_row(GgmlType t, const void* src, float* dst, int64_t n);
// Quantize n floats into dst (row_bytes(t, n) bytes). n must be a whole number of blocks.
Status quantize_row(GgmlType t, const float* src, void* dst, int64_t n);

}  // namespace velo::quant
