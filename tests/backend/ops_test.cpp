// CPU element-wise kernels against naive double-precision formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/ops.h"
#include "quant/fp16.h"

namespace velo::cpu {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

TEST(Ops, RmsNormMatchesFormula) {
  for (int n : {1, 7, 64, 576, 2048}) {
    auto x = randn(n, n), w = randn(n, n + 1);
    std::vector<float> y(n), y2(n);
    rmsnorm(x.data(), w.data(), y.data(), n, 1e-5f);
    rmsnorm(x.data(), nullptr, y2.data(), n, 1e-5f);
    double ss = 0;
    for (float v : x) ss += double(v) * v;
    const double s = 1.0 / std::sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; ++i) {
      EXPECT_NEAR(y[i], x[i] * s * w[i], 1e-5 * (1 + std::fabs(x[i] * s * w[i]))) << n << " " << i;
      EXPECT_NEAR(y2[i], x[i] * s, 1e-5 * (1 + std::fabs(x[i] * s)));
    }
  }
}

TEST(Ops, RmsNormInPlace) {
  auto x = randn(100, 3);
  auto y = x;
  std::vector<float> ref(100);
  rmsnorm(x.data(), nullptr, ref.data(), 100, 1e-6f);
  rmsnorm(y.data(), nullptr, y.data(), 100, 1e-6f);
  EXPECT_EQ(y, ref);
}

TEST(Ops, SoftmaxMatchesFormulaAndMasks) {
  for (int n : {1, 5, 16, 17, 100, 1000}) {
    auto x = randn(n, n, 3.0f);
    if (n > 3) x[2] = -INFINITY;
    auto y = x;
    softmax(y.data(), n);
    double mx = -INFINITY, sum = 0;
    for (float v : x) mx = std::max<double>(mx, v);
    for (float v : x) sum += std::exp(v - mx);
    double total = 0;
    for (int i = 0; i < n; ++i) {
      EXPECT_NEAR(y[i], std::exp(x[i] - mx) / sum, 1e-6) << n << " " << i;
      total += y[i];
    }
    EXPECT_NEAR(total, 1.0, 1e-5);
    if (n > 3) EXPECT_EQ(y[2], 0.0f);
  }
  std::vector<float> masked(20, -INFINITY);
  softmax(masked.data(), 20);
  for (float v : masked) EXPECT_EQ(v, 0.0f);
}

TEST(Ops, SwigluAndGeglu) {
  const int n = 1000;
  auto g = randn(n, 1, 4.0f), u = randn(n, 2);
  g[0] = -20.0f;
  g[1] = 15.0f;
  std::vector<float> a(n), b(n);
  swiglu(g.data(), u.data(), a.data(), n);
  geglu(g.data(), u.data(), b.data(), n);
  for (int i = 0; i < n; ++i) {
    const double x = g[i];
    const double silu = x / (1 + std::exp(-x));
    EXPECT_NEAR(a[i], silu * u[i], 1e-5 * (1 + std::fabs(silu * u[i]))) << i;
    const double gelu = 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    // ggml looks GELU up in an fp16 table: input and output rounded to half.
    EXPECT_NEAR(b[i], gelu * u[i], 2e-3 * (1 + std::fabs(gelu * u[i]))) << i;
  }
  EXPECT_EQ(b[0], 0.0f);
  EXPECT_FLOAT_EQ(b[1], 15.0f * u[1]);
}

// Naive RoPE: angle_i = pos * base^(-2i/n_rot) / factor_i * freq_scale, in double.
void naive_rope(std::vector<double>& v, int n_heads, int head_dim, int n_rot, double base, double freq_scale,
                const float* factors, int pos, RopeLayout layout) {
  for (int h = 0; h < n_heads; ++h) {
    double* x = v.data() + h * head_dim;
    for (int i = 0; i < n_rot / 2; ++i) {
      const double theta = pos * std::pow(base, -2.0 * i / n_rot) / (factors ? factors[i] : 1.0) * freq_scale;
      const int a = layout == RopeLayout::Norm ? 2 * i : i;
      const int b = layout == RopeLayout::Norm ? 2 * i + 1 : i + n_rot / 2;
      const double x0 = x[a], x1 = x[b];
      x[a] = x0 * std::cos(theta) - x1 * std::sin(theta);
      x[b] = x0 * std::sin(theta) + x1 * std::cos(theta);
    }
  }
}

TEST(Ops, RopeBothLayoutsMatchFormula) {
  const int heads = 3, hd = 64;
  std::vector<float> factors(16);
  for (int i = 0; i < 16; ++i) factors[i] = 1.0f + i * 0.5f;
  for (RopeLayout layout : {RopeLayout::Norm, RopeLayout::Neox}) {
    for (int n_rot : {64, 32}) {
      for (int pos : {0, 1, 7, 100, 511}) {
        for (bool with_factors : {false, true}) {
          if (with_factors && n_rot != 32) continue;
          RopeParams p{n_rot, 10000.0f, 0.5f, with_factors ? factors.data() : nullptr, layout};
          auto x = randn(heads * hd, pos + n_rot);
          std::vector<double> ref(x.begin(), x.end());
          std::vector<float> cs(n_rot);
          rope_cos_sin(p, pos, cs.data());
          rope_apply(p, cs.data(), x.data(), heads, hd);
          naive_rope(ref, heads, hd, n_rot, 10000.0, 0.5, p.freq_factors, pos, layout);
          for (int i = 0; i < heads * hd; ++i)
            ASSERT_NEAR(x[i], ref[i], 2e-4 * (1 + pos / 64.0)) << int(layout) << " rot " << n_rot << " pos " << pos << " i " << i;
        }
      }
    }
  }
}

TEST(Ops, RopeLayoutsDiffer) {
  // Same input, same angles: NORM rotates (0,1), NEOX rotates (0, n_rot/2).
  std::vector<float> x(8, 0.0f);
  x[1] = 1.0f;
  auto y = x;
  RopeParams norm{8, 10000.0f, 1.0f, nullptr, RopeLayout::Norm};
  RopeParams neox{8, 10000.0f, 1.0f, nullptr, RopeLayout::Neox};
  std::vector<float> cs(8);
  rope_cos_sin(norm, 1, cs.data());
  rope_apply(norm, cs.data(), x.data(), 1, 8);
  rope_apply(neox, cs.data(), y.data(), 1, 8);
  EXPECT_NEAR(x[0], -std::sin(1.0), 1e-6);  // pair (0,1), angle 1
  EXPECT_NEAR(y[0], 0.0, 1e-7);             // (0,4) untouched by x[1]
  EXPECT_NEAR(y[1], std::cos(std::pow(10000.0, -2.0 / 8)), 1e-6);  // pair (1,5)
}

TEST(Ops, Fp16RowConversionMatchesScalar) {
  auto x = randn(1003, 9, 100.0f);
  x[0] = 65504.0f * 2;  // overflows to inf
  x[1] = 1e-8f;         // subnormal half
  std::vector<uint16_t> h(x.size());
  std::vector<float> back(x.size());
  to_f16(x.data(), h.data(), static_cast<int>(x.size()));
  from_f16(h.data(), back.data(), static_cast<int>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(h[i], fp32_to_fp16(x[i])) << i;
    EXPECT_EQ(back[i], fp16_to_fp32(h[i])) << i;
  }
}

TEST(Ops, SoftcapAndScale) {
  std::vector<float> x = {0.0f, 1.0f, -100.0f, 100.0f};
  softcap(x.data(), 30.0f, 4);
  EXPECT_FLOAT_EQ(x[1], 30.0f * std::tanh(1.0f / 30.0f));
  EXPECT_FLOAT_EQ(x[2], -30.0f * std::tanh(100.0f / 30.0f));
  EXPECT_FLOAT_EQ(x[3], 30.0f * std::tanh(100.0f / 30.0f));
  EXPECT_EQ(x[0], 0.0f);
  scale(x.data(), 2.0f, 4);
  EXPECT_FLOAT_EQ(x[3], 60.0f * std::tanh(100.0f / 30.0f));
}

}  // namespace
}  // namespace velo::cpu
