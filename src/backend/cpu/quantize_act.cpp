// Activation conversion, once per matmul call: Q8 blocks (rounded as llama.cpp's
// x86 quantize_row_q8_0/q8_1 and quantize_row_q8_K_ref), or fp16/bf16 rounding for half weights.
#include <cmath>
#include <cstring>

#include "backend/cpu/matmul_kernels.h"
#include "backend/cpu/simd.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace velo::cpu::detail {

ActFormat act_format(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return ActFormat::kF32;
    case GgmlType::F16: return ActFormat::kF32AsF16;
    case GgmlType::BF16: return ActFormat::kF32AsBF16;
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K:
    case GgmlType::Q5_K: case GgmlType::Q6_K:
      return ActFormat::kQ8K;
    default: return ActFormat::kQ8;
  }
}

size_t act_row_bytes(ActFormat f, int64_t cols) {
  switch (f) {
    case ActFormat::kQ8: return static_cast<size_t>(cols / 32) * (sizeof(ActQ8) + 2 * sizeof(float)) + 32;
    case ActFormat::kQ8K: return static_cast<size_t>(cols / QK_K) * sizeof(block_q8_K);
    default: return static_cast<size_t>(cols) * sizeof(float);
  }
}

namespace {

// llama.cpp's nearest_int: round to nearest even through the float mantissa.
inline int nearest_int(float v) {
  float f = v + 12582912.f;
  int32_t i;
  std::memcpy(&i, &f, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// Q8 block of 32 as llama.cpp's x86 (AVX) quantize_row_q8_0/q8_1, which the oracle
// runs: d = amax/127 stored as fp16, q = round-half-even(x · 127/amax) (not x / d,
// and not roundf as the _ref versions), s = fp16(d · Σq) with the unrounded d.
// s is only read for weights with a min (Q4_1, Q5_1), where it is block_q8_1.s.
void q8_block_scalar(const float* x, ActQ8& out) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = amax != 0 ? 127.0f / amax : 0.0f;
  int sum = 0;
  for (int j = 0; j < 32; ++j) {
    out.qs[j] = static_cast<int8_t>(nearest_int(x[j] * id));
    sum += out.qs[j];
  }
  out.d = fp16_to_fp32(fp32_to_fp16(d));
  out.s = fp16_to_fp32(fp32_to_fp16(d * static_cast<float>(sum)));
}

// The contiguous d and s arrays and the zero padding after the blocks (see act_q8_d).
void q8_scale_arrays(void* row, int64_t nb) {
  const auto* blocks = static_cast<const ActQ8*>(row);
  auto* d = const_cast<float*>(act_q8_d(row, nb));
  auto* s = d + nb;
  for (int64_t b = 0; b < nb; ++b) {
    d[b] = blocks[b].d;
    s[b] = blocks[b].s;
  }
  std::memset(s + nb, 0, 32);
}

// Q8_K block, as quantize_row_q8_K_ref: scale from the signed value of largest
// magnitude (first one wins), q = nearest_int(-127/max * x) capped at 127.
void q8k_block_scalar(const float* x, block_q8_K& out) {
  float amax = 0, max = 0;
  for (int j = 0; j < QK_K; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) { amax = ax; max = x[j]; }
  }
  if (amax == 0) {
    std::memset(&out, 0, sizeof(out));
    return;
  }
  const float iscale = -127.f / max;
  for (int j = 0; j < QK_K; ++j) {
    const int v = nearest_int(iscale * x[j]);
    out.qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
  }
  for (int g = 0; g < QK_K / 16; ++g) {
    int s = 0;
    for (int l = 0; l < 16; ++l) s += out.qs[16 * g + l];
    out.bsums[g] = static_cast<int16_t>(s);
  }
  out.d = 1 / iscale;
}

#if VELO_SIMD_AVX2
// Packs 4×8 int32 lanes (values in [-128, 127]) into 32 int8 in element order.
inline __m256i pack_i32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(a, b);
  const __m256i cd = _mm256_packs_epi32(c, d);
  const __m256i abcd = _mm256_packs_epi16(ab, cd);
  // packs interleave the 128-bit lanes: restore element order.
  return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

void q8_block_simd(const float* x, ActQ8& out) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 v[4];
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_loadu_ps(x + 8 * i);
    m = _mm256_max_ps(m, _mm256_and_ps(v[i], abs_mask));
  }
  const float amax = hmax_ps(m);
  const float d = amax / 127.0f;
  const float id = amax != 0 ? 127.0f / amax : 0.0f;
  const __m256 idv = _mm256_set1_ps(id);
  __m256i q[4];
  for (int i = 0; i < 4; ++i)  // cvtps rounds to nearest even, like nearest_int
    q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], idv));
  const __m256i packed = pack_i32_to_i8(q[0], q[1], q[2], q[3]);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.qs), packed);
  const __m256i s32 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
  out.d = fp16_to_fp32(fp32_to_fp16(d));
  out.s = fp16_to_fp32(fp32_to_fp16(d * static_cast<float>(hsum_epi32(s32))));
}

void q8k_block_simd(const float* x, block_q8_K& out) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < QK_K; i += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
  const float amax = hmax_ps(m);
  if (amax == 0) {
    std::memset(&out, 0, sizeof(out));
    return;
  }
  float max = 0;
  for (int j = 0; j < QK_K; ++j)
    if (std::fabs(x[j]) == amax) { max = x[j]; break; }
  const float iscale = -127.f / max;
  const __m256 is = _mm256_set1_ps(iscale);
  const __m256i cap = _mm256_set1_epi32(127);
  for (int g = 0; g < QK_K; g += 32) {
    __m256i q[4];
    for (int i = 0; i < 4; ++i)  // cvtps rounds to nearest even, like nearest_int
      q[i] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + g + 8 * i), is)), cap);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.qs + g), pack_i32_to_i8(q[0], q[1], q[2], q[3]));
    out.bsums[g / 16] = static_cast<int16_t>(hsum_epi32(_mm256_add_epi32(q[0], q[1])));
    out.bsums[g / 16 + 1] = static_cast<int16_t>(hsum_epi32(_mm256_add_epi32(q[2], q[3])));
  }
  out.d = 1 / iscale;
}
#endif

#if VELO_SIMD_AVX2
void round_row(ActFormat f, const float* x, float* y, int64_t cols) {
  int64_t i = 0;
  if (f == ActFormat::kF32AsF16) {
    for (; i + 8 <= cols; i += 8) {
      const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
      _mm256_storeu_ps(y + i, _mm256_cvtph_ps(h));
    }
  }
  for (; i < cols; ++i)
    y[i] = f == ActFormat::kF32AsF16 ? fp16_to_fp32(fp32_to_fp16(x[i])) : bf16_to_fp32(fp32_to_bf16(x[i]));
}
#endif

}  // namespace

void quantize_act_row_scalar(ActFormat f, const float* x, void* dst, int64_t cols) {
  switch (f) {
    case ActFormat::kF32:
      std::memcpy(dst, x, static_cast<size_t>(cols) * sizeof(float));
      return;
    case ActFormat::kF32AsF16:
    case ActFormat::kF32AsBF16:
      for (int64_t i = 0; i < cols; ++i)
        static_cast<float*>(dst)[i] = f == ActFormat::kF32AsF16 ? fp16_to_fp32(fp32_to_fp16(x[i]))
                                                               : bf16_to_fp32(fp32_to_bf16(x[i]));
      return;
    case ActFormat::kQ8:
      for (int64_t b = 0; b < cols / 32; ++b) q8_block_scalar(x + 32 * b, static_cast<ActQ8*>(dst)[b]);
      q8_scale_arrays(dst, cols / 32);
      return;
    case ActFormat::kQ8K:
      for (int64_t b = 0; b < cols / QK_K; ++b)
        q8k_block_scalar(x + QK_K * b, static_cast<block_q8_K*>(dst)[b]);
      return;
  }
}

void quantize_act_row(ActFormat f, const float* x, void* dst, int64_t cols) {
#if VELO_SIMD_AVX2
  switch (f) {
    case ActFormat::kQ8:
      for (int64_t b = 0; b < cols / 32; ++b) q8_block_simd(x + 32 * b, static_cast<ActQ8*>(dst)[b]);
      q8_scale_arrays(dst, cols / 32);
      return;
    case ActFormat::kQ8K:
      for (int64_t b = 0; b < cols / QK_K; ++b)
        q8k_block_simd(x + QK_K * b, static_cast<block_q8_K*>(dst)[b]);
      return;
    case ActFormat::kF32AsF16:
    case ActFormat::kF32AsBF16:
      round_row(f, x, static_cast<float*>(dst), cols);
      return;
    default: break;
  }
#endif
  quantize_act_row_scalar(f, x, dst, cols);
}

}  // namespace velo::cpu::detail
