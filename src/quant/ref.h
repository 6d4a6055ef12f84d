// Typed reference (scalar) row kernels for every ggml block format velollm
// reads, plus the small helpers SIMD kernels need to stay bit-exact with them.
// Preconditions (unchecked here, checked by quant.h's dispatch): n >= 0 and n is
// a whole number of blocks; x and y do not overlap.
#pragma once
#include <cstdint>
#include <cstring>

#include "quant/blocks.h"

namespace velo::quant {

// Round to nearest, ties to even, as ggml's nearest_int: adding 1.5 * 2^23 puts
// the integer part in the low mantissa bits. Exact for |v| <= 2^22 - 1; any
// other input (inf, NaN, huge) gives an unspecified int, never UB.
inline int nearest_int(float v) {
  const float t = v + 12582912.f;
  int32_t i;
  std::memcpy(&i, &t, sizeof i);
  return (i & 0x007fffff) - 0x00400000;
}

// Q4_K / Q5_K: 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes.
//   bytes 0..3: scale j (low 6 bits), high 2 bits of scale j+4
//   bytes 4..7: min j (low 6 bits),   high 2 bits of min j+4
//   bytes 8..11: low nibble = scale j+4 low 4 bits, high nibble = min j+4 low 4 bits
inline void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Q3_K: the 16 signed 6-bit scales (already minus 32) from the 12 packed bytes.
//   bytes 0..7: low 4 bits of scales 0..7 (low nibble) and 8..15 (high nibble)
//   bytes 8..11: bits 4..5 of scale j at byte 8 + j%4, bit position 2*(j/4)
inline void unpack_q3_k_scales(const uint8_t* packed, int8_t out[16]) {
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
    const int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = static_cast<int8_t>((lo | (hi << 4)) - 32);
  }
}

// ---- dequantization: y[0..n) ----
void dequantize_row_f16(const uint16_t* x, float* y, int64_t n);
void dequantize_row_bf16(const uint16_t* x, float* y, int64_t n);
void dequantize_row_q4_0(const block_q4_0* x, float* y, int64_t n);
void dequantize_row_q4_1(const block_q4_1* x, float* y, int64_t n);
void dequantize_row_q5_0(const block_q5_0* x, float* y, int64_t n);
void dequantize_row_q5_1(const block_q5_1* x, float* y, int64_t n);
void dequantize_row_q8_0(const block_q8_0* x, float* y, int64_t n);
void dequantize_row_q2_K(const block_q2_K* x, float* y, int64_t n);
void dequantize_row_q3_K(const block_q3_K* x, float* y, int64_t n);
void dequantize_row_q4_K(const block_q4_K* x, float* y, int64_t n);
void dequantize_row_q5_K(const block_q5_K* x, float* y, int64_t n);
void dequantize_row_q6_K(const block_q6_K* x, float* y, int64_t n);
void dequantize_row_q8_K(const block_q8_K* x, float* y, int64_t n);

// ---- reference quantization of x[0..n), bit-exact with ggml's *_ref ----
void quantize_row_f16(const float* x, uint16_t* y, int64_t n);
void quantize_row_bf16(const float* x, uint16_t* y, int64_t n);
void quantize_row_q4_0(const float* x, block_q4_0* y, int64_t n);
void quantize_row_q4_1(const float* x, block_q4_1* y, int64_t n);
void quantize_row_q5_0(const float* x, block_q5_0* y, int64_t n);
void quantize_row_q5_1(const float* x, block_q5_1* y, int64_t n);
void quantize_row_q8_0(const float* x, block_q8_0* y, int64_t n);
void quantize_row_q2_K(const float* x, block_q2_K* y, int64_t n);
void quantize_row_q3_K(const float* x, block_q3_K* y, int64_t n);
void quantize_row_q4_K(const float* x, block_q4_K* y, int64_t n);
void quantize_row_q5_K(const float* x, block_q5_K* y, int64_t n);
void quantize_row_q6_K(const float* x, block_q6_K* y, int64_t n);
// Q8_K: activations for K-quant dot products; bsums[j] = sum of qs[16j..16j+16).
void quantize_row_q8_K(const float* x, block_q8_K* y, int64_t n);

}  // namespace velo::quant
