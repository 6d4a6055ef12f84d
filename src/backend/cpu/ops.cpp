#include "backend/cpu/ops.h"

#include <cmath>
#include <mutex>
#include <vector>

#include "quant/fp16.h"

#if defined(__F16C__) && defined(__AVX2__)
#include <immintrin.h>
#define VELO_F16C 1
#endif

namespace velo::cpu {

void rmsnorm(const float* x, const float* w, float* y, int n, float eps) {
  // Sum of squares in double like ggml, so long rows do not drift.
  double ss = 0;
  for (int i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
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
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    const float e = std::exp(x[i] - mx);
    x[i] = e;
    sum += e;
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu(const float* gate, const float* up, float* out, int n) {
  for (int i = 0; i < n; ++i) {
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

void rope_apply(const RopeParams& p, const float* cs, float* x, int n_heads, int head_dim) {
  const int half = p.n_rot / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    if (p.layout == RopeLayout::Norm) {
      for (int i = 0; i < half; ++i) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * c - b * s;
        v[2 * i + 1] = a * s + b * c;
      }
    } else {
      for (int i = 0; i < half; ++i) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = a * s + b * c;
      }
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
