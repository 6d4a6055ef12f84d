// ggml quantization block layouts, byte-for-byte as stored in GGUF files.
// Plain structs usable from host and device code (included by .cu files).
// Halves are stored as raw IEEE fp16 bits (see quant/fp16.h).
#pragma once
#include <stdint.h>

namespace velo {

using half_bits = uint16_t;

constexpr int QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32, QK8_1 = 32;
constexpr int QK_K = 256;         // super-block size of the K-quants
constexpr int K_SCALE_SIZE = 12;  // packed 6-bit scales/mins of Q4_K/Q5_K

// x = d * (q - 8), q in [0,16)
struct block_q4_0 {
  half_bits d;             // scale
  uint8_t qs[QK4_0 / 2];   // nibbles: element j in low nibble of qs[j], j+16 in the high nibble
};
// x = d * q + m
struct block_q4_1 {
  half_bits d, m;          // scale, min
  uint8_t qs[QK4_1 / 2];
};
// x = d * (q - 16), 5th bit of q in qh
struct block_q5_0 {
  half_bits d;
  uint8_t qh[4];           // high bits, bit j for element j
  uint8_t qs[QK5_0 / 2];   // low nibbles, as in q4_0
};
struct block_q5_1 {
  half_bits d, m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};
// x = d * q
struct block_q8_0 {
  half_bits d;
  int8_t qs[QK8_0];
};
struct block_q8_1 {
  half_bits d;             // scale
  half_bits s;             // d * sum(qs)
  int8_t qs[QK8_1];
};

// 16 sub-blocks of 16: x = d * scale * q - dmin * min (4-bit scale and min each)
struct block_q2_K {
  uint8_t scales[QK_K / 16];  // low nibble scale, high nibble min
  uint8_t qs[QK_K / 4];       // 2-bit quants
  half_bits d;                // super-block scale for the scales
  half_bits dmin;             // super-block scale for the mins
};
// 16 sub-blocks of 16: x = d * (scale - 32) * (q - 4 * !hbit), 6-bit scales
struct block_q3_K {
  uint8_t hmask[QK_K / 8];  // high bit of each quant
  uint8_t qs[QK_K / 4];     // low 2 bits
  uint8_t scales[12];       // 16 scales, 6 bits each
  half_bits d;
};
// 8 sub-blocks of 32: x = d * scale * q - dmin * min (6-bit scales and mins)
struct block_q4_K {
  half_bits d;
  half_bits dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qs[QK_K / 2];
};
struct block_q5_K {
  half_bits d;
  half_bits dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
// 16 sub-blocks of 16: x = d * scale * (q - 32), 8-bit signed scales
struct block_q6_K {
  uint8_t ql[QK_K / 2];   // low 4 bits
  uint8_t qh[QK_K / 4];   // high 2 bits
  int8_t scales[QK_K / 16];
  half_bits d;
};
// Intermediate format for dot products with K-quants.
struct block_q8_K {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];  // sums of groups of 16 quants
};

static_assert(sizeof(block_q4_0) == 2 + QK4_0 / 2, "block_q4_0 size");
static_assert(sizeof(block_q4_1) == 4 + QK4_1 / 2, "block_q4_1 size");
static_assert(sizeof(block_q5_0) == 2 + 4 + QK5_0 / 2, "block_q5_0 size");
static_assert(sizeof(block_q5_1) == 4 + 4 + QK5_1 / 2, "block_q5_1 size");
static_assert(sizeof(block_q8_0) == 2 + QK8_0, "block_q8_0 size");
static_assert(sizeof(block_q8_1) == 4 + QK8_1, "block_q8_1 size");
static_assert(sizeof(block_q2_K) == 4 + QK_K / 16 + QK_K / 4, "block_q2_K size");
static_assert(sizeof(block_q3_K) == 2 + QK_K / 4 + QK_K / 8 + 12, "block_q3_K size");
static_assert(sizeof(block_q4_K) == 4 + K_SCALE_SIZE + QK_K / 2, "block_q4_K size");
static_assert(sizeof(block_q5_K) == 4 + K_SCALE_SIZE + QK_K / 8 + QK_K / 2, "block_q5_K size");
static_assert(sizeof(block_q6_K) == 2 + QK_K / 16 + 3 * QK_K / 4, "block_q6_K size");
static_assert(sizeof(block_q8_K) == 4 + QK_K + QK_K / 16 * 2, "block_q8_K size");

}  // namespace velo
