// fp16 / bf16 conversions (quant/fp16.h) against an independent exact model:
// every half bit pattern, random floats, and the edge cases (subnormals,
// overflow, inf, NaN, ties to even).
#include "quant/fp16.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

namespace velo {
namespace {

// Half bits -> value, from the IEEE definition.
double half_value(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  double v;
  if (exp == 0) v = std::ldexp(mant, -24);
  else if (exp == 31) v = mant ? std::numeric_limits<double>::quiet_NaN() : INFINITY;
  else v = std::ldexp(1024 + mant, exp - 25);
  return sign ? -v : v;
}

// Float -> half bits with round-to-nearest-even, computed in double (exact for floats).
uint16_t half_from_float_model(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(f));
  if (std::isnan(f)) return sign | 0x7E00;
  if (a >= 65520.0) return sign | 0x7C00;  // halfway to 2^16 and above round to inf
  int e;
  std::frexp(a, &e);                             // a = m * 2^e, m in [0.5, 1)
  const int ulp_exp = std::max(e - 11, -24);     // 11 significant bits, subnormal floor
  const double q = std::nearbyint(std::ldexp(a, -ulp_exp));  // default mode: ties to even
  const double r = std::ldexp(q, ulp_exp);
  if (r >= 65520.0) return sign | 0x7C00;
  // Encode r exactly (it is representable).
  if (r < std::ldexp(1.0, -14)) return sign | static_cast<uint16_t>(std::ldexp(r, 24));
  int re;
  const double m = std::frexp(r, &re);  // r = m * 2^re
  const int exp = re - 1 + 15;
  const int mant = static_cast<int>(std::ldexp(m, 11)) - 1024;
  return sign | static_cast<uint16_t>((exp << 10) | mant);
}

TEST(Fp16, EveryHalfConvertsExactlyAndRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    const double want = half_value(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(f)) << std::hex << h;
      EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(f)))) << std::hex << h;
      EXPECT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << h;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), want) << std::hex << h;
    ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << h;
    ASSERT_EQ(fp32_to_fp16(f), h) << std::hex << h;
  }
}

TEST(Fp16, RandomFloatsRoundToNearestEven) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000000; ++i) {
    const float f = fp32_from_bits(static_cast<uint32_t>(rng()));
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_fp16(f), half_from_float_model(f)) << f << " bits " << std::hex << fp32_to_bits(f);
  }
  // Dense sweep of the interesting range, where most bits round.
  for (uint32_t b = 0x33000000u; b < 0x47800000u; b += 97) {
    const float f = fp32_from_bits(b);
    ASSERT_EQ(fp32_to_fp16(f), half_from_float_model(f)) << std::hex << b;
    ASSERT_EQ(fp32_to_fp16(-f), half_from_float_model(-f)) << std::hex << b;
  }
}

TEST(Fp16, EdgeCases) {
  EXPECT_EQ(fp32_to_fp16(0.0f), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3C00);
  // Ties to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_EQ(fp32_to_fp16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3C01);
  // Largest finite half, overflow threshold, infinities.
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(std::nextafter(65520.0f, 0.0f)), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(1e30f), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(-INFINITY), 0xFC00);
  EXPECT_TRUE(std::isinf(fp16_to_fp32(0x7C00)) && fp16_to_fp32(0xFC00) < 0);
  // Subnormals: smallest 2^-24, largest 0x03FF, smallest normal 2^-14; 2^-25 ties to 0.
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(3.0f, -26)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulp ties to even (2)
  EXPECT_EQ(fp32_to_fp16(-std::ldexp(1023.0f, -24)), 0x83FF);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_fp32(0x03FF), std::ldexp(1023.0f, -24));
  // NaN stays NaN (quiet), sign kept.
  EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(NAN))));
  EXPECT_EQ(fp32_to_fp16(-NAN) & 0x8000, 0x8000);
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7C01)));  // signalling half NaN
}

TEST(Bf16, ConversionsAndRounding) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_fp32(static_cast<uint16_t>(h));
    ASSERT_EQ(fp32_to_bits(f), h << 16);
    if (!std::isnan(f)) ASSERT_EQ(fp32_to_bf16(f), h);
    else ASSERT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(f))));
  }
  // Ties to even on the dropped 16 bits.
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3F808000u)), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3F818000u)), 0x3F82);
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3F808001u)), 0x3F81);
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3F807FFFu)), 0x3F80);
  // Subnormal floats keep their top bits; FLT_MAX rounds up to inf as RNE demands.
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x00012345u)), 0x0001);
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(fp32_to_bf16(-INFINITY), 0xFF80);
  // NaN: quiet bit forced, never turned into inf by the rounding carry.
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x7F800001u)), 0x7FC0);
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0xFFFFFFFFu)), 0xFFFF);
}

}  // namespace
}  // namespace velo
