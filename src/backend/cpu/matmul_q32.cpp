// SIMD tile kernels for the 32-element block quants (Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0) against ActQ8 activations. Per block and (row, token): one u8×s8 dot
// into 8 int32 lanes (VNNI dpbusd, or maddubs+madd), converted to float and
// scaled by d_w·d_x. Signed weights are made unsigned (q + offset) and the
// offset is removed by starting the dot from -offset·Σa, computed once per token.
#include <cstring>

#include "backend/cpu/matmul_kernels.h"
#include "backend/cpu/simd.h"
#include "backend/cpu/tile_driver.h"
#include "quant/blocks.h"

namespace velo::cpu::detail {

#if VELO_SIMD_AVX2
namespace {

// 32 nibbles of a Q4/Q5 block, element order (low nibbles = elements 0..15).
VELO_INLINE __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// 0x10 in byte j where bit j of the 32-bit qh is set.
VELO_INLINE __m256i high_bits_x16(const uint8_t* qh_bytes) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
#if VELO_SIMD_AVX512
  return _mm256_maskz_set1_epi8(qh, 0x10);
#else
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(qh)),
      _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3,
                       3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
#endif
}

// Activation block prepared once per token and block.
struct XBlock {
  __m256i a;     // 32 int8 quants
  __m256i corr;  // -offset·Σa spread over the int32 lanes (offset per weight type)
};

template <int kOffset>
VELO_INLINE XBlock load_x(const ActQ8& x) {
  XBlock b;
  b.a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
  b.corr = _mm256_setzero_si256();
  if constexpr (kOffset != 0)  // offset ≤ 16 (or 128 with VNNI): dpbusd cannot saturate
    b.corr = _mm256_sub_epi32(b.corr, dpbusd(b.corr, _mm256_set1_epi8(static_cast<char>(kOffset)), b.a));
  return b;
}

struct WBlock {
  __m256i q;  // unsigned quants (or, for Q8_0 without VNNI, |q|)
  __m256i w;  // Q8_0 without VNNI: the signed quants
};

// The fp16 field at byte `offset` of `n` ≤ 8 consecutive blocks, as floats (zeros past n).
template <class Block>
VELO_INLINE __m256 gather_halves(const Block* b, size_t offset, int n) {
  const auto* p = reinterpret_cast<const uint8_t*>(b) + offset;
  auto h = [&](int k) -> uint64_t {
    uint16_t v;
    std::memcpy(&v, p + k * sizeof(Block), 2);
    return v;
  };
  uint64_t lo = 0, hi = 0;
  if (n == 8) {
    lo = h(0) | h(1) << 16 | h(2) << 32 | h(3) << 48;
    hi = h(4) | h(5) << 16 | h(6) << 32 | h(7) << 48;
  } else {
    for (int k = 0; k < n; ++k) (k < 4 ? lo : hi) |= h(k) << (16 * (k % 4));
  }
  return _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(hi), static_cast<int64_t>(lo)));
}

// Unsigned nibbles of a Q4/Q5 block as 32 bytes in element order.
VELO_INLINE __m256i nibbles(const uint8_t* qs) {
#if VELO_SIMD_AVX512
  // [qs | qs] with the upper copy shifted right by 4: one load, one variable shift.
  const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  const __m256i shifted = _mm256_srlv_epi16(both, _mm256_setr_epi64x(0, 0, 0x0004000400040004, 0x0004000400040004));
  return _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F));
#else
  return unpack_nibbles(qs);
#endif
}

// Q4_0: x = d·(q - 8)
struct KQ4_0 {
  using Block = block_q4_0;
  static constexpr int kOffset = 8;
  static constexpr bool kHasMin = false;
  static VELO_INLINE WBlock load(const Block& b) { return {nibbles(b.qs), _mm256_setzero_si256()}; }
  static VELO_INLINE __m256i dot(const WBlock& w, const XBlock& x) { return dpbusd(x.corr, w.q, x.a); }
};

// Q5_0: x = d·(q - 16), q = nibble | high bit << 4
struct KQ5_0 {
  using Block = block_q5_0;
  static constexpr int kOffset = 16;
  static constexpr bool kHasMin = false;
  static VELO_INLINE WBlock load(const Block& b) {
    return {_mm256_or_si256(nibbles(b.qs), high_bits_x16(b.qh)), _mm256_setzero_si256()};
  }
  static VELO_INLINE __m256i dot(const WBlock& w, const XBlock& x) { return dpbusd(x.corr, w.q, x.a); }
};

// Q4_1: x = d·q + m; Σ x·a = d·dx·Σ q·qa + m·s
struct KQ4_1 {
  using Block = block_q4_1;
  static constexpr int kOffset = 0;
  static constexpr bool kHasMin = true;
  static VELO_INLINE WBlock load(const Block& b) { return {nibbles(b.qs), _mm256_setzero_si256()}; }
  static VELO_INLINE __m256i dot(const WBlock& w, const XBlock& x) {
    return dpbusd(_mm256_setzero_si256(), w.q, x.a);
  }
};

struct KQ5_1 {
  using Block = block_q5_1;
  static constexpr int kOffset = 0;
  static constexpr bool kHasMin = true;
  static VELO_INLINE WBlock load(const Block& b) {
    return {_mm256_or_si256(nibbles(b.qs), high_bits_x16(b.qh)), _mm256_setzero_si256()};
  }
  static VELO_INLINE __m256i dot(const WBlock& w, const XBlock& x) { return KQ4_1::dot(w, x); }
};

// Q8_0: x = d·q, q signed. With VNNI: (q + 128) unsigned, offset 128. Without:
// maddubs(|q|, sign(a, q)), which cannot saturate (|q|·|a| ≤ 128·127, two per lane).
struct KQ8_0 {
  using Block = block_q8_0;
#if VELO_SIMD_VNNI
  static constexpr int kOffset = 128;
#else
  static constexpr int kOffset = 0;
#endif
  static constexpr bool kHasMin = false;
  static VELO_INLINE WBlock load(const Block& b) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
#if VELO_SIMD_VNNI
    return {_mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80))), _mm256_setzero_si256()};
#else
    return {_mm256_sign_epi8(q, q), q};
#endif
  }
  static VELO_INLINE __m256i dot(const WBlock& w, const XBlock& x) {
#if VELO_SIMD_VNNI
    return dpbusd(x.corr, w.q, x.a);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w.q, _mm256_sign_epi8(x.a, w.w)), _mm256_set1_epi16(1));
#endif
  }
};

// Every output: acc += cvt(isum_b) · (d_w·d_x) per block b, in block order, then a
// horizontal sum; types with a min add Σ m_w·s_x, accumulated 8 blocks per vector. The weight scales of 8 blocks are
// converted together; for one token the products d_w·d_x are formed 8 at a time
// (the same float products as one at a time, so T = 1 and T > 1 agree bit for bit).
template <class K>
struct Micro32 {
  template <int R, int T>
  static VELO_INLINE void run(const Tile& a, int r0, int t0) {
    const int64_t nb = a.cols / 32;
    const typename K::Block* wrow[R];
    const ActQ8* xrow[T];
    const float* xd[T];
    const float* xs[T];
    for (int r = 0; r < R; ++r)
      wrow[r] = reinterpret_cast<const typename K::Block*>(a.w + (r0 + r) * a.w_stride);
    for (int t = 0; t < T; ++t) {
      xrow[t] = reinterpret_cast<const ActQ8*>(a.x + (t0 + t) * a.x_stride);
      xd[t] = act_q8_d(xrow[t], nb);
      xs[t] = act_q8_s(xrow[t], nb);
    }
    __m256 acc[R][T];
    __m256 macc[K::kHasMin ? R : 1][K::kHasMin ? T : 1];  // Σ m_w·s_x, 8 blocks per lane set
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    if constexpr (K::kHasMin)
      for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) macc[r][t] = _mm256_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += 8) {
      const int cnt = static_cast<int>(nb - b0 < 8 ? nb - b0 : 8);
      alignas(32) float sd[R][8];  // T = 1: d_w·d_x; else d_w
      if constexpr (T == 1) {
        for (int r = 0; r < R; ++r)
          prefetch_range(reinterpret_cast<const uint8_t*>(wrow[r] + b0) + R * a.w_stride,
                         cnt * sizeof(typename K::Block));
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        __m256 dw = gather_halves(wrow[r] + b0, 0, cnt);
        if constexpr (T == 1) dw = _mm256_mul_ps(dw, _mm256_loadu_ps(xd[0] + b0));
        _mm256_store_ps(sd[r], dw);
        if constexpr (K::kHasMin) {
          // m_w of 8 blocks (zero past cnt) times s_x of the same blocks
          const __m256 m = gather_halves(wrow[r] + b0, 2, cnt);
          for (int t = 0; t < T; ++t) macc[r][t] = _mm256_fmadd_ps(m, _mm256_loadu_ps(xs[t] + b0), macc[r][t]);
        }
      }
      for (int k = 0; k < cnt; ++k) {
        const int64_t b = b0 + k;
        WBlock w[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) w[r] = K::load(wrow[r][b]);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          const XBlock x = load_x<K::kOffset>(xrow[t][b]);
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r) {
            const __m256 isum = _mm256_cvtepi32_ps(K::dot(w[r], x));
            __m256 scale;
            if constexpr (T == 1) scale = _mm256_broadcast_ss(&sd[r][k]);
            else scale = _mm256_mul_ps(_mm256_broadcast_ss(&sd[r][k]), _mm256_broadcast_ss(xd[t] + b));
            acc[r][t] = _mm256_fmadd_ps(isum, scale, acc[r][t]);
          }
        }
      }
    }
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < R; ++r) {
        float y = hsum_ps(acc[r][t]);
        if constexpr (K::kHasMin) y += hsum_ps(macc[r][t]);
        a.y[(t0 + t) * a.y_stride + r0 + r] = y;
      }
  }
};

// Register budget: 32 vector registers with AVX-512VL, 16 with AVX2.
constexpr int kRows = VELO_SIMD_AVX512 ? 4 : 2;  // × 4 tokens
constexpr int kRowsMatvec = 4;                    // × 1 token (8 measured no better)

template <class K>
void tile_q32(const Tile& a, int nrows, int ntok) {
  // The min accumulators double the register use of a micro-tile.
  constexpr int rows = (K::kHasMin && kRows > 2) ? 2 : kRows;
  drive_tiles<Micro32<K>, rows, kRowsMatvec>(a, nrows, ntok);
}

}  // namespace

TileKernel tile_kernel_q32(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return tile_q32<KQ4_0>;
    case GgmlType::Q4_1: return tile_q32<KQ4_1>;
    case GgmlType::Q5_0: return tile_q32<KQ5_0>;
    case GgmlType::Q5_1: return tile_q32<KQ5_1>;
    case GgmlType::Q8_0: return tile_q32<KQ8_0>;
    default: return nullptr;
  }
}
#else
TileKernel tile_kernel_q32(GgmlType) { return nullptr; }
#endif

}  // namespace velo::cpu::detail
