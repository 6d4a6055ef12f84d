// SIMD level of this build and small helpers shared by the CPU kernels.
// The level is chosen at compile time (-march): AVX-512 VNNI (256-bit ops with
// 32 registers), AVX-VNNI, AVX2+FMA+F16C, or none (scalar kernels).
#pragma once

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define VELO_SIMD_AVX2 1
#include <immintrin.h>
#else
#define VELO_SIMD_AVX2 0
#endif

#if VELO_SIMD_AVX2 && defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__)
#define VELO_SIMD_VNNI 1
#define VELO_SIMD_AVX512 1
#elif VELO_SIMD_AVX2 && defined(__AVXVNNI__)
#define VELO_SIMD_VNNI 1
#define VELO_SIMD_AVX512 0
#else
#define VELO_SIMD_VNNI 0
#define VELO_SIMD_AVX512 0
#endif

#define VELO_INLINE inline __attribute__((always_inline))

#include <cstddef>
#include <cstdint>

namespace velo::cpu::detail {
// Prefetch [p, p + bytes) into L1. Matvec kernels fetch the next row group while
// working on this one: the hardware prefetcher alone leaves memory latency exposed.
VELO_INLINE void prefetch_range(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t i = 0; i < bytes; i += 64) __builtin_prefetch(c + i, 0, 3);
}
}  // namespace velo::cpu::detail

#if VELO_SIMD_AVX2
namespace velo::cpu::detail {

VELO_INLINE float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

VELO_INLINE float hmax_ps(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

VELO_INLINE int hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// acc + Σ4 u8×s8 per int32 lane. Without VNNI the pairwise int16 step saturates:
// callers keep u small enough (u ≤ 128 with |s| ≤ 127) that it cannot.
VELO_INLINE __m256i dpbusd(__m256i acc, __m256i u, __m256i s) {
#if VELO_SIMD_AVX512
  return _mm256_dpbusd_epi32(acc, u, s);
#elif VELO_SIMD_VNNI
  return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

// acc + Σ2 s16×s16 per int32 lane.
VELO_INLINE __m256i dpwssd(__m256i acc, __m256i a, __m256i b) {
#if VELO_SIMD_AVX512
  return _mm256_dpwssd_epi32(acc, a, b);
#elif VELO_SIMD_VNNI
  return _mm256_dpwssd_avx_epi32(acc, a, b);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

VELO_INLINE float half_to_float(uint16_t h) { return _cvtsh_ss(h); }


}  // namespace velo::cpu::detail
#endif
