// Dequantization of the K-quants (256-element super-blocks) and Q8_K.
// Each output is computed as ggml does it: the sub-block scale d*sc (and min
// dmin*m) is rounded to float first, then y = scale * q - min, unfused.
#include "quant/strict_fp.h"
// (strict_fp.h first: no fused multiply-add in this file.)
#include "quant/fp16.h"
#include "quant/ref.h"

namespace velo::quant {

// Q2_K: 16 sub-blocks of 16. Within each 128-element half, qs[0..32) holds four
// 32-element groups in bit pairs 0-1, 2-3, 4-5, 6-7; scales[k] covers y[16k..16k+16).
void dequantize_row_q2_K(const block_q2_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d), dmin = fp16_to_fp32(x[i].dmin);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* q = x[i].qs + 32 * half;
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; ++part) {  // two sub-blocks of 16 share one 32-byte run
          const uint8_t sc = x[i].scales[8 * half + shift + part];
          const float dl = d * static_cast<float>(sc & 0xF);
          const float ml = dmin * static_cast<float>(sc >> 4);
          for (int l = 0; l < 16; ++l)
            *y++ = dl * static_cast<float>((q[16 * part + l] >> shift) & 3) - ml;
        }
      }
    }
  }
}

// Q3_K: like Q2_K's layout for the low 2 bits; hmask bit b of byte l is the high
// bit of element 32*b + l, and a CLEAR high bit means subtract 4 (q in -4..3).
void dequantize_row_q3_K(const block_q3_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    int8_t sc[16];
    unpack_q3_k_scales(x[i].scales, sc);
    int bit = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* q = x[i].qs + 32 * half;
      for (int shift = 0; shift < 8; shift += 2, ++bit) {
        for (int part = 0; part < 2; ++part) {
          const float dl = d * static_cast<float>(sc[8 * half + shift + part]);
          for (int l = 16 * part; l < 16 * part + 16; ++l) {
            const int lo = (q[l] >> shift) & 3;
            const int v = lo - (((x[i].hmask[l] >> bit) & 1) ? 0 : 4);
            *y++ = dl * static_cast<float>(v);
          }
        }
      }
    }
  }
}

// Q4_K: 8 sub-blocks of 32; each 64-element chunk uses 32 bytes of qs, low
// nibbles for the first 32 elements and high nibbles for the next 32.
void dequantize_row_q4_K(const block_q4_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d), dmin = fp16_to_fp32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    for (int is = 0; is < 8; is += 2, q += 32) {
      uint8_t sc, m;
      scale_min_k4(is, x[i].scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      scale_min_k4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

// Q5_K: Q4_K plus a 5th bit: for chunk c (64 elements), bit 2c of qh[l] belongs
// to element l of the low-nibble half and bit 2c+1 to the high-nibble half.
void dequantize_row_q5_K(const block_q5_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d), dmin = fp16_to_fp32(x[i].dmin);
    const uint8_t* ql = x[i].qs;
    const uint8_t* qh = x[i].qh;
    for (int is = 0, bit = 0; is < 8; is += 2, bit += 2, ql += 32) {
      uint8_t sc, m;
      scale_min_k4(is, x[i].scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      scale_min_k4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l)
        *y++ = d1 * static_cast<float>((ql[l] & 0xF) | (((qh[l] >> bit) & 1) << 4)) - m1;
      for (int l = 0; l < 32; ++l)
        *y++ = d2 * static_cast<float>((ql[l] >> 4) | (((qh[l] >> (bit + 1)) & 1) << 4)) - m2;
    }
  }
}

// Q6_K: per 128-element half, ql[0..64) holds low nibbles (elements l and l+64
// in ql[l]; l+32 and l+96 in ql[l+32]) and qh[0..32) the 2 high bits of
// elements l, l+32, l+64, l+96 at bit pairs 0, 2, 4, 6. q in -32..31.
void dequantize_row_q6_K(const block_q6_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int half = 0; half < 2; ++half, y += 128) {
      const uint8_t* ql = x[i].ql + 64 * half;
      const uint8_t* qh = x[i].qh + 32 * half;
      const int8_t* sc = x[i].scales + 8 * half;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

void dequantize_row_q8_K(const block_q8_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / QK_K; ++i)
    for (int j = 0; j < QK_K; ++j) *y++ = x[i].d * static_cast<float>(x[i].qs[j]);
}

}  // namespace velo::quant
