// SIMD tile kernels for float weights (F32, F16 via F16C, BF16 via a 16-bit
// shift) against float activations (already rounded to the weight precision for
// F16/BF16, as llama.cpp does). MicroF: two 8-lane accumulators per output, which
// is llama.cpp's AVX-512 tinyBLAS order (one 16-lane accumulator, k step 16, then
// _mm512_reduce_add_ps). F16 follows llama.cpp's choice of kernel exactly (see tile_f).
#include "backend/cpu/matmul_kernels.h"
#include "backend/cpu/simd.h"
#include "backend/cpu/tile_driver.h"
#include "quant/fp16.h"

namespace velo::cpu::detail {

#if VELO_SIMD_AVX2
namespace {

struct KF32 {
  using Elem = float;
  static VELO_INLINE __m256 load(const float* p) { return _mm256_loadu_ps(p); }
  static VELO_INLINE float scalar(float v) { return v; }
};
struct KF16 {
  using Elem = uint16_t;
  static VELO_INLINE __m256 load(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static VELO_INLINE float scalar(uint16_t v) { return half_to_float(v); }
};
struct KBF16 {
  using Elem = uint16_t;
  static VELO_INLINE __m256 load(const uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static VELO_INLINE float scalar(uint16_t v) { return bf16_to_fp32(v); }
};

template <class K>
struct MicroF {
  template <int R, int T>
  static VELO_INLINE void run(const Tile& a, int r0, int t0) {
    using E = typename K::Elem;
    const E* w[R];
    const float* x[T];
    for (int r = 0; r < R; ++r) w[r] = reinterpret_cast<const E*>(a.w + (r0 + r) * a.w_stride);
    for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<const float*>(a.x + (t0 + t) * a.x_stride);
    __m256 acc0[R][T], acc1[R][T];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc0[r][t] = acc1[r][t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= a.cols; i += 16) {
      __m256 w0[R], w1[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        w0[r] = K::load(w[r] + i);
        w1[r] = K::load(w[r] + i + 8);
      }
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const __m256 x0 = _mm256_loadu_ps(x[t] + i), x1 = _mm256_loadu_ps(x[t] + i + 8);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          acc0[r][t] = _mm256_fmadd_ps(w0[r], x0, acc0[r][t]);
          acc1[r][t] = _mm256_fmadd_ps(w1[r], x1, acc1[r][t]);
        }
      }
    }
    if (i + 8 <= a.cols) {
      for (int t = 0; t < T; ++t)
        for (int r = 0; r < R; ++r)
          acc0[r][t] = _mm256_fmadd_ps(K::load(w[r] + i), _mm256_loadu_ps(x[t] + i), acc0[r][t]);
      i += 8;
    }
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < R; ++r) {
        float s = hsum_ps(_mm256_add_ps(acc0[r][t], acc1[r][t]));
        for (int64_t k = i; k < a.cols; ++k) s += K::scalar(w[r][k]) * x[t][k];
        a.y[(t0 + t) * a.y_stride + r0 + r] = s;
      }
  }
};

// The summation order of llama.cpp's ggml_vec_dot_f16 on AVX-512, which it uses
// when tinyBLAS declines (a single token, or k not a multiple of 16): four 16-lane
// accumulators over k steps of 64 (each 16 lanes kept here as two 8-lane halves),
// folded as (s0 + s2) + (s1 + s3), reduced like _mm512_reduce_add_ps, then the
// k % 64 tail products (float) added one by one in double.
template <class K>
struct MicroVecDot {
  template <int R, int T>
  static VELO_INLINE void run(const Tile& a, int r0, int t0) {
    using E = typename K::Elem;
    const E* w[R];
    const float* x[T];
    for (int r = 0; r < R; ++r) w[r] = reinterpret_cast<const E*>(a.w + (r0 + r) * a.w_stride);
    for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<const float*>(a.x + (t0 + t) * a.x_stride);
    __m256 acc[R][T][8];  // [4 accumulators][lo, hi half]
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t)
        for (int v = 0; v < 8; ++v) acc[r][t][v] = _mm256_setzero_ps();
    const int64_t np = a.cols & ~int64_t{63};
    for (int64_t i = 0; i < np; i += 64) {
#pragma GCC unroll 8
      for (int v = 0; v < 8; ++v) {
        __m256 wv[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) wv[r] = K::load(w[r] + i + 8 * v);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          const __m256 xv = _mm256_loadu_ps(x[t] + i + 8 * v);
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r) acc[r][t][v] = _mm256_fmadd_ps(wv[r], xv, acc[r][t][v]);
        }
      }
    }
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < R; ++r) {
        const __m256* s = acc[r][t];  // s[2j] = lanes 0-7 of accumulator j, s[2j+1] = lanes 8-15
        const __m256 lo = _mm256_add_ps(_mm256_add_ps(s[0], s[4]), _mm256_add_ps(s[2], s[6]));
        const __m256 hi = _mm256_add_ps(_mm256_add_ps(s[1], s[5]), _mm256_add_ps(s[3], s[7]));
        double sum = hsum_ps(_mm256_add_ps(lo, hi));
        for (int64_t k = np; k < a.cols; ++k) sum += static_cast<double>(K::scalar(w[r][k]) * x[t][k]);
        a.y[(t0 + t) * a.y_stride + r0 + r] = static_cast<float>(sum);
      }
  }
};

constexpr int kRows = VELO_SIMD_AVX512 ? 3 : 1;

template <class K>
void tile_f(const Tile& a, int nrows, int ntok) {
  drive_tiles<MicroF<K>, kRows, 4>(a, nrows, ntok);
}

// llama.cpp runs F16 weights through tinyBLAS only for batches of 2+ tokens with
// k a multiple of 16, otherwise through ggml_vec_dot_f16: match whichever it picks.
void tile_f16(const Tile& a, int nrows, int ntok) {
  if (a.batch >= 2 && a.cols % 16 == 0)
    drive_tiles<MicroF<KF16>, kRows, 4>(a, nrows, ntok);
  else
    drive_tiles<MicroVecDot<KF16>, 1, 2>(a, nrows, ntok);
}

}  // namespace

TileKernel tile_kernel_float(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return tile_f<KF32>;
    case GgmlType::F16: return tile_f16;
    case GgmlType::BF16: return tile_f<KBF16>;
    default: return nullptr;
  }
}
#else
TileKernel tile_kernel_float(GgmlType) { return nullptr; }
#endif

}  // namespace velo::cpu::detail
