// SIMD tile kernels for the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) against
// Q8_K activations. A super-block of 256 is walked in 8 chunks of 32 elements:
// unsigned quants × int8 activations -> int16 pairs (maddubs, cannot saturate:
// q ≤ 63), times the int16 sub-block scales into int32 lanes (dpwssd). Mins and
// quant offsets are removed once per super-block with the activations' 16-group
// sums (bsums), then the int32 lanes are scaled in float.
#include <cstring>

#include "backend/cpu/matmul_kernels.h"
#include "backend/cpu/simd.h"
#include "backend/cpu/tile_driver.h"
#include "quant/blocks.h"

namespace velo::cpu::detail {

#if VELO_SIMD_AVX2
namespace {

VELO_INLINE __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// int16 vector with lanes 0..7 = v[2j], lanes 8..15 = v[2j+1] of 16 int16 `v16`
// (the two 16-element groups of chunk j).
VELO_INLINE __m256i pair_scales(__m256i v16, int j) {
#if VELO_SIMD_AVX512
  const short a = static_cast<short>(2 * j), b = static_cast<short>(2 * j + 1);
  return _mm256_permutexvar_epi16(_mm256_setr_epi16(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b), v16);
#else
  const __m256i half = (j < 4) ? _mm256_permute2x128_si256(v16, v16, 0x00) : _mm256_permute2x128_si256(v16, v16, 0x11);
  const char lo = static_cast<char>(4 * (j % 4)), hi = static_cast<char>(4 * (j % 4) + 2);
  const __m256i m = _mm256_setr_epi8(lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo,
                                     lo + 1, lo, lo + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1,
                                     hi, hi + 1, hi, hi + 1, hi, hi + 1);
  return _mm256_shuffle_epi8(half, m);
#endif
}

// int16 vector with all lanes = v[j] of [v0..v7 | v0..v7].
VELO_INLINE __m256i one_scale(__m256i v8x2, int j) {
  const char b = static_cast<char>(2 * j);
  const __m128i m = _mm_setr_epi8(b, b + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1);
  return _mm256_shuffle_epi8(v8x2, _mm256_broadcastsi128_si256(m));
}

// Per super-block state of one weight row.
struct RowK {
  const uint8_t* q;  // low bits (qs / ql)
  const uint8_t* h;  // high bits (qh / hmask), if any
  __m256i scales;    // int16 scales (layout per type)
  __m256i mins;      // int16 per 16-group multipliers of bsums (min or offset·scale)
  __m256 d, dmin;
};

// Q4_K / Q5_K 6-bit scales and mins: [sc0..sc7 | sc0..sc7] and [m0 m0 m1 m1 .. m7 m7] as int16.
VELO_INLINE void k4_scales(const uint8_t* s, RowK& row) {
  uint32_t u[3];
  std::memcpy(u, s, 12);
  const uint32_t sc_lo = u[0] & 0x3f3f3f3f, mn_lo = u[1] & 0x3f3f3f3f;
  const uint32_t sc_hi = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
  const uint32_t mn_hi = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
  const __m128i sc = _mm_cvtepu8_epi16(_mm_setr_epi32(static_cast<int>(sc_lo), static_cast<int>(sc_hi), 0, 0));
  const __m128i mn = _mm_cvtepu8_epi16(_mm_setr_epi32(static_cast<int>(mn_lo), static_cast<int>(mn_hi), 0, 0));
  row.scales = _mm256_broadcastsi128_si256(sc);
  row.mins = _mm256_set_m128i(_mm_unpackhi_epi16(mn, mn), _mm_unpacklo_epi16(mn, mn));
}

VELO_INLINE __m256 bcast_half(uint16_t h) { return _mm256_set1_ps(half_to_float(h)); }

struct KQ4K {
  using Block = block_q4_K;
  static VELO_INLINE RowK prep(const Block& b) {
    RowK r;
    r.q = b.qs;
    r.h = nullptr;
    k4_scales(b.scales, r);
    r.d = bcast_half(b.d);
    r.dmin = bcast_half(b.dmin);
    return r;
  }
  static VELO_INLINE __m256i quants(const RowK& r, int j) {
    const __m256i raw = load256(r.q + 32 * (j / 2));
    return _mm256_and_si256(j % 2 ? _mm256_srli_epi16(raw, 4) : raw, _mm256_set1_epi8(0x0F));
  }
  static VELO_INLINE __m256i scale(const RowK& r, int j) { return one_scale(r.scales, j); }
  static constexpr bool kHasMin = true;
  static constexpr int kOffsetShift = 0;
};

struct KQ5K {
  using Block = block_q5_K;
  static VELO_INLINE RowK prep(const Block& b) {
    RowK r;
    r.q = b.qs;
    r.h = b.qh;
    k4_scales(b.scales, r);
    r.d = bcast_half(b.d);
    r.dmin = bcast_half(b.dmin);
    return r;
  }
  static VELO_INLINE __m256i quants(const RowK& r, int j) {
    const __m256i lo = KQ4K::quants(r, j);
    // bit j of each qh byte, moved to bit 4
    const __m256i hb = load256(r.h);
    const __m256i moved = j <= 4 ? _mm256_slli_epi16(hb, 4 - j) : _mm256_srli_epi16(hb, j - 4);
    return _mm256_or_si256(lo, _mm256_and_si256(moved, _mm256_set1_epi8(0x10)));
  }
  static VELO_INLINE __m256i scale(const RowK& r, int j) { return one_scale(r.scales, j); }
  static constexpr bool kHasMin = true;
  static constexpr int kOffsetShift = 0;
};

// Q6_K: q = 6 bits (0..63) - 32; 16 int8 scales.
struct KQ6K {
  using Block = block_q6_K;
  static VELO_INLINE RowK prep(const Block& b) {
    RowK r;
    r.q = b.ql;
    r.h = b.qh;
    r.scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
    r.mins = r.scales;  // offset 32: Σ sc_g·32·bsum_g
    r.d = bcast_half(b.d);
    return r;
  }
  static VELO_INLINE __m256i quants(const RowK& r, int j) {
    const int n = j / 4, c = j % 4;
    const __m256i ql = load256(r.q + 64 * n + 32 * (c % 2));
    const __m256i qh = load256(r.h + 32 * n);
    const __m256i low = _mm256_and_si256(c < 2 ? ql : _mm256_srli_epi16(ql, 4), _mm256_set1_epi8(0x0F));
    // bits (2c, 2c+1) of qh -> bits (4, 5)
    __m256i high;
    switch (c) {
      case 0: high = _mm256_slli_epi16(qh, 4); break;
      case 1: high = _mm256_slli_epi16(qh, 2); break;
      case 2: high = qh; break;
      default: high = _mm256_srli_epi16(qh, 2); break;
    }
    return _mm256_or_si256(low, _mm256_and_si256(high, _mm256_set1_epi8(0x30)));
  }
  static VELO_INLINE __m256i scale(const RowK& r, int j) { return pair_scales(r.scales, j); }
  static constexpr bool kHasMin = false;
  static constexpr int kOffsetShift = 5;  // 32
};

// Q2_K: q = 2 bits; 4-bit scale (low nibble) and min (high nibble) per 16-group.
struct KQ2K {
  using Block = block_q2_K;
  static VELO_INLINE RowK prep(const Block& b) {
    RowK r;
    r.q = b.qs;
    r.h = nullptr;
    const __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
    r.scales = _mm256_cvtepu8_epi16(_mm_and_si128(s, _mm_set1_epi8(0x0F)));
    r.mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), _mm_set1_epi8(0x0F)));
    r.d = bcast_half(b.d);
    r.dmin = bcast_half(b.dmin);
    return r;
  }
  static VELO_INLINE __m256i quants(const RowK& r, int j) {
    const __m256i raw = load256(r.q + 32 * (j / 4));
    const int shift = 2 * (j % 4);
    return _mm256_and_si256(shift ? _mm256_srli_epi16(raw, shift) : raw, _mm256_set1_epi8(0x03));
  }
  static VELO_INLINE __m256i scale(const RowK& r, int j) { return pair_scales(r.scales, j); }
  static constexpr bool kHasMin = true;
  static constexpr int kOffsetShift = 0;
};

// Q3_K: q = (2 low bits | high bit << 2) - 4; 6-bit scales - 32.
struct KQ3K {
  using Block = block_q3_K;
  static VELO_INLINE RowK prep(const Block& b) {
    RowK r;
    r.q = b.qs;
    r.h = b.hmask;
    uint32_t u[3];
    std::memcpy(u, b.scales, 12);
    const uint32_t a0 = (u[0] & 0x0f0f0f0f) | (((u[2] >> 0) & 0x03030303) << 4);
    const uint32_t a1 = (u[1] & 0x0f0f0f0f) | (((u[2] >> 2) & 0x03030303) << 4);
    const uint32_t a2 = ((u[0] >> 4) & 0x0f0f0f0f) | (((u[2] >> 4) & 0x03030303) << 4);
    const uint32_t a3 = ((u[1] >> 4) & 0x0f0f0f0f) | (((u[2] >> 6) & 0x03030303) << 4);
    const __m128i s = _mm_sub_epi8(_mm_setr_epi32(static_cast<int>(a0), static_cast<int>(a1), static_cast<int>(a2),
                                                  static_cast<int>(a3)),
                                   _mm_set1_epi8(32));
    r.scales = _mm256_cvtepi8_epi16(s);
    r.mins = r.scales;  // offset 4: Σ sc_g·4·bsum_g
    r.d = bcast_half(b.d);
    return r;
  }
  static VELO_INLINE __m256i quants(const RowK& r, int j) {
    const int n = j / 4, jj = j % 4;
    const __m256i raw = load256(r.q + 32 * n);
    const __m256i low = _mm256_and_si256(jj ? _mm256_srli_epi16(raw, 2 * jj) : raw, _mm256_set1_epi8(0x03));
    const int bit = 4 * n + jj;  // hmask bit -> bit 2
    const __m256i hm = load256(r.h);
    const __m256i moved = bit <= 2 ? _mm256_slli_epi16(hm, 2 - bit) : _mm256_srli_epi16(hm, bit - 2);
    return _mm256_or_si256(low, _mm256_and_si256(moved, _mm256_set1_epi8(0x04)));
  }
  static VELO_INLINE __m256i scale(const RowK& r, int j) { return pair_scales(r.scales, j); }
  static constexpr bool kHasMin = false;
  static constexpr int kOffsetShift = 2;  // 4
};

template <class K>
struct MicroK {
  template <int R, int T>
  static VELO_INLINE void run(const Tile& a, int r0, int t0) {
    const int64_t nb = a.cols / QK_K;
    const typename K::Block* wrow[R];
    const block_q8_K* xrow[T];
    for (int r = 0; r < R; ++r)
      wrow[r] = reinterpret_cast<const typename K::Block*>(a.w + (r0 + r) * a.w_stride);
    for (int t = 0; t < T; ++t) xrow[t] = reinterpret_cast<const block_q8_K*>(a.x + (t0 + t) * a.x_stride);
    __m256 acc[R][T];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      if constexpr (T == 1) {
        for (int r = 0; r < R; ++r)
          prefetch_range(reinterpret_cast<const uint8_t*>(wrow[r] + b) + R * a.w_stride, sizeof(typename K::Block));
      }
      RowK row[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) row[r] = K::prep(wrow[r][b]);
      __m256i iacc[R][T];
      for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) iacc[r][t] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        __m256i q[R], s[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          q[r] = K::quants(row[r], j);
          s[r] = K::scale(row[r], j);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          const __m256i x = load256(xrow[t][b].qs + 32 * j);
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r) iacc[r][t] = dpwssd(iacc[r][t], _mm256_maddubs_epi16(q[r], x), s[r]);
        }
      }
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const __m256i bsums = load256(xrow[t][b].bsums);
        const __m256 dx = _mm256_set1_ps(xrow[t][b].d);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          const __m256i msum = _mm256_madd_epi16(row[r].mins, bsums);
          if constexpr (K::kHasMin) {
            acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[r][t]), _mm256_mul_ps(row[r].d, dx), acc[r][t]);
            acc[r][t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(row[r].dmin, dx), acc[r][t]);
          } else {
            const __m256i total = _mm256_sub_epi32(iacc[r][t], _mm256_slli_epi32(msum, K::kOffsetShift));
            acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_mul_ps(row[r].d, dx), acc[r][t]);
          }
        }
      }
    }
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < R; ++r) a.y[(t0 + t) * a.y_stride + r0 + r] = hsum_ps(acc[r][t]);
  }
};

constexpr int kRows = VELO_SIMD_AVX512 ? 2 : 1;        // × 2 tokens
constexpr int kRowsMatvec = VELO_SIMD_AVX512 ? 4 : 2;  // × 1 token

template <class K>
void tile_k(const Tile& a, int nrows, int ntok) {
  drive_tiles<MicroK<K>, kRows, kRowsMatvec>(a, nrows, ntok);
}

}  // namespace

TileKernel tile_kernel_kquant(GgmlType t) {
  switch (t) {
    case GgmlType::Q2_K: return tile_k<KQ2K>;
    case GgmlType::Q3_K: return tile_k<KQ3K>;
    case GgmlType::Q4_K: return tile_k<KQ4K>;
    case GgmlType::Q5_K: return tile_k<KQ5K>;
    case GgmlType::Q6_K: return tile_k<KQ6K>;
    default: return nullptr;
  }
}
#else
TileKernel tile_kernel_kquant(GgmlType) { return nullptr; }
#endif

}  // namespace velo::cpu::detail
