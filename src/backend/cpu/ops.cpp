#include "backend/cpu/ops.h"

#include <cmath>
#include <mutex>
#include <vector>

#include "quant/fp16.h"

#if defined(__F16C__) && defined(__AVX2__)
#include <immintrin.h>
#define VELO_F16C 1
#endif
#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>
#define VELO_AVX512 1
#endif

namespace velo::cpu {

#ifdef VELO_AVX512
namespace {
// exp(x) for 16 floats: x = n*ln2 + b with n = round(x*log2(e)), exp(b) by a
// degree-5 polynomial, then scaled by 2^n. This is the algorithm (and the
// constants) ggml's CPU backend uses, so softmax and SiLU agree with the
// oracle bit for bit; max error ~1.5 ulp; |n| > 192 saturates to 0 or inf.
inline __m512 exp16(__m512 x) {
  const __m512 r = _mm512_set1_ps(0x1.8p23f);
  const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
  const __m512 n = _mm512_sub_ps(z, r);
  const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                    _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
  const __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
  const __m512 u = _mm512_mul_ps(b, b);
  const __m512 hi = _mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f));
  const __m512 mid = _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f));
  const __m512 lo = _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f));
  const __m512 j = _mm512_fmadd_ps(_mm512_fmadd_ps(hi, u, mid), u, lo);
  const __m512 res = _mm512_scalef_ps(j, n);
  if (big == 0) return res;
  const __m512 sat = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ),
                                          _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
  return _mm512_mask_blend_ps(big, res, sat);
}
}  // namespace
#endif

void rmsnorm(const float* x, const float* w, float* y, int n, float eps) {
  // Squares in float, summed in double: exactly ggml's order of rounding.
  double ss = 0;
  for (int i = 0; i < n; ++i) ss += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(ss / n);
  const float s = 1.0f / std::sqrt(mean + eps);
  if (w) {
    for (int i = 0; i < n; ++i) y[i] = (x[i] * s) * w[i];
  } else {
    for (int i = 0; i < n; ++i) y[i] = x[i] * s;
  }
}

void add(float* x, const float* y, int n) {
  for (int i = 0; i < n; ++i) x[i] += y[i];
}

void scale(float* x, float s, int n) {
  for (int i = 0; i < n; ++i) x[i] *= s;
}

void softcap(float* x, float cap, int n) {
  const float inv = 1.0f / cap;
  for (int i = 0; i < n; ++i) x[i] = std::tanh(x[i] * inv) * cap;
}

void softmax(float* x, int n) {
  float mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  if (mx == -INFINITY) {  // fully masked row: no probability mass anywhere
    for (int i = 0; i < n; ++i) x[i] = 0;
    return;
  }
  // exp(x - max) summed per 16-lane chunk into a double, as ggml does (the
  // tail is padded with -inf, i.e. zeros, like the oracle's masked cells).
  double sum = 0;
  int i = 0;
#ifdef VELO_AVX512
  const __m512 vmx = _mm512_set1_ps(mx);
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, x + i);
    const __m512 e = exp16(_mm512_sub_ps(v, vmx));
    _mm512_mask_storeu_ps(x + i, m, e);
    sum += static_cast<double>(_mm512_reduce_add_ps(e));
  }
#endif
  for (; i < n; ++i) {
    const float e = std::exp(x[i] - mx);
    x[i] = e;
    sum += e;
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu(const float* gate, const float* up, float* out, int n) {
  int i = 0;
#ifdef VELO_AVX512
  const __m512 one = _mm512_set1_ps(1.0f);
  // Every element through exp16 (the tail masked), so the GPU can mirror one formula.
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
  }
#endif
  for (; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
  constexpr float kCoefA = 0.044715f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + kCoefA * x * x)));
}

namespace {
// ggml evaluates GELU as table[fp16(x)] with an fp16 result; the table makes
// our GeGLU bit-identical to the oracle's for the same input.
const uint16_t* gelu_table() {
  static std::vector<uint16_t> table;
  static std::once_flag once;
  std::call_once(once, [] {
    table.resize(1 << 16);
    for (uint32_t h = 0; h < (1u << 16); ++h)
      table[h] = fp32_to_fp16(gelu_tanh(fp16_to_fp32(static_cast<uint16_t>(h))));
  });
  return table.data();
}
}  // namespace

void geglu(const float* gate, const float* up, float* out, int n) {
  const uint16_t* t = gelu_table();
  for (int i = 0; i < n; ++i) {
    const float g = gate[i];
    float act;
    if (g <= -10.0f) act = 0.0f;
    else if (g >= 10.0f) act = g;
    else act = fp16_to_fp32(t[fp32_to_fp16(g)]);
    out[i] = act * up[i];
  }
}

void rope_cos_sin(const RopeParams& p, int32_t pos, float* cs) {
  // theta_i = pos * base^(-2i/n_rot), built by repeated multiplication as ggml does.
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_rot));
  float theta = static_cast<float>(pos);
  for (int i = 0; i < p.n_rot / 2; ++i) {
    const float ff = p.freq_factors ? p.freq_factors[i] : 1.0f;
    const float t = p.freq_scale * (theta / ff);
    cs[2 * i] = std::cos(t);
    cs[2 * i + 1] = std::sin(t);
    theta *= theta_scale;
  }
}

// The rotation with its two FMAs spelled out (the ones GCC contracted the plain
// `a*c - b*s`, `a*s + b*c` into in scalar code) so that its rounding no longer
// depends on how the compiler vectorises the loop: the GPU does the same.
static inline void rotate(float& a, float& b, float c, float s) {
  const float x = a, y = b;
  a = std::fma(x, c, -(y * s));
  b = std::fma(x, s, y * c);
}

void rope_apply(const RopeParams& p, const float* cs, float* x, int n_heads, int head_dim) {
  const int half = p.n_rot / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    if (p.layout == RopeLayout::Norm) {
      for (int i = 0; i < half; ++i) rotate(v[2 * i], v[2 * i + 1], cs[2 * i], cs[2 * i + 1]);
    } else {
      for (int i = 0; i < half; ++i) rotate(v[i], v[i + half], cs[2 * i], cs[2 * i + 1]);
    }
  }
}

void to_f16(const float* x, uint16_t* y, int n) {
  int i = 0;
#ifdef VELO_F16C
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
  }
#endif
  for (; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

void from_f16(const uint16_t* x, float* y, int n) {
  int i = 0;
#ifdef VELO_F16C
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
#endif
  for (; i < n; ++i) y[i] = fp16_to_fp32(x[i]);
}

}  // namespace velo::cpu
