// quant.h argument checking, block layouts, and hand-computed values for each
// format (independent of the Python/ggml oracle test, which covers bit-exactness
// on random data).
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <vector>

#include "quant/blocks.h"
#include "quant/fp16.h"
#include "quant/quant.h"
#include "quant/ref.h"
#include "quant_test_util.h"

namespace velo {
namespace {

using quant::dequantize_row;
using quant::quantize_row;

TEST(QuantApi, SupportedTypes) {
  for (GgmlType t : test::quant_types()) {
    EXPECT_TRUE(quant::can_dequantize(t)) << type_name(t);
    EXPECT_TRUE(quant::can_quantize(t)) << type_name(t);
  }
  for (GgmlType t : {GgmlType::Q8_1, GgmlType::IQ2_XXS, GgmlType::IQ4_NL, GgmlType::I32, GgmlType::MXFP4}) {
    EXPECT_FALSE(quant::can_dequantize(t)) << type_name(t);
    EXPECT_FALSE(quant::can_quantize(t)) << type_name(t);
    float f[256] = {};
    uint8_t b[1024] = {};
    auto s = dequantize_row(t, b, f, 256);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("not supported"), std::string::npos) << s.message();
    EXPECT_FALSE(quantize_row(t, f, b, 256).ok());
  }
}

TEST(QuantApi, RejectsLengthsThatAreNotWholeBlocks) {
  std::vector<float> f(600, 0.5f);
  std::vector<uint8_t> b(4096);
  for (GgmlType t : test::quant_types()) {
    const uint32_t block = type_traits(t)->block_elems;
    if (block == 1) continue;
    for (int64_t n : {int64_t{1}, int64_t{block} - 1, int64_t{block} + 1, int64_t{block} + block / 2}) {
      auto d = dequantize_row(t, b.data(), f.data(), n);
      ASSERT_FALSE(d.ok()) << type_name(t) << " n=" << n;
      EXPECT_NE(d.message().find("not a multiple of the block size"), std::string::npos) << d.message();
      EXPECT_EQ(d.message().find('\n'), std::string::npos);
      auto q = quantize_row(t, f.data(), b.data(), n);
      ASSERT_FALSE(q.ok()) << type_name(t) << " n=" << n;
      EXPECT_NE(q.message().find(type_name(t)), std::string::npos) << q.message();
    }
  }
}

TEST(QuantApi, RejectsNegativeLengthAndNullBuffers) {
  float f[32] = {};
  uint8_t b[64] = {};
  EXPECT_FALSE(dequantize_row(GgmlType::Q8_0, b, f, -32).ok());
  EXPECT_FALSE(quantize_row(GgmlType::F16, f, b, -1).ok());
  EXPECT_FALSE(dequantize_row(GgmlType::Q8_0, nullptr, f, 32).ok());
  EXPECT_FALSE(quantize_row(GgmlType::Q8_0, f, nullptr, 32).ok());
  // Zero elements is a valid (empty) row, even with null buffers.
  EXPECT_TRUE(dequantize_row(GgmlType::Q4_K, nullptr, nullptr, 0).ok());
  EXPECT_TRUE(quantize_row(GgmlType::Q4_K, nullptr, nullptr, 0).ok());
}

TEST(QuantApi, BlockFieldOffsetsMatchGgml) {
  EXPECT_EQ(offsetof(block_q4_1, m), 2u);
  EXPECT_EQ(offsetof(block_q5_0, qh), 2u);
  EXPECT_EQ(offsetof(block_q5_0, qs), 6u);
  EXPECT_EQ(offsetof(block_q5_1, qs), 8u);
  EXPECT_EQ(offsetof(block_q8_0, qs), 2u);
  EXPECT_EQ(offsetof(block_q2_K, qs), 16u);
  EXPECT_EQ(offsetof(block_q2_K, d), 80u);
  EXPECT_EQ(offsetof(block_q2_K, dmin), 82u);
  EXPECT_EQ(offsetof(block_q3_K, qs), 32u);
  EXPECT_EQ(offsetof(block_q3_K, scales), 96u);
  EXPECT_EQ(offsetof(block_q3_K, d), 108u);
  EXPECT_EQ(offsetof(block_q4_K, scales), 4u);
  EXPECT_EQ(offsetof(block_q4_K, qs), 16u);
  EXPECT_EQ(offsetof(block_q5_K, qh), 16u);
  EXPECT_EQ(offsetof(block_q5_K, qs), 48u);
  EXPECT_EQ(offsetof(block_q6_K, qh), 128u);
  EXPECT_EQ(offsetof(block_q6_K, scales), 192u);
  EXPECT_EQ(offsetof(block_q6_K, d), 208u);
  EXPECT_EQ(offsetof(block_q8_K, qs), 4u);
  EXPECT_EQ(offsetof(block_q8_K, bsums), 260u);
}

TEST(QuantApi, NearestIntRoundsHalfToEven) {
  EXPECT_EQ(quant::nearest_int(2.5f), 2);
  EXPECT_EQ(quant::nearest_int(3.5f), 4);
  EXPECT_EQ(quant::nearest_int(-2.5f), -2);
  EXPECT_EQ(quant::nearest_int(-0.4f), 0);
  EXPECT_EQ(quant::nearest_int(-7.6f), -8);
  EXPECT_EQ(quant::nearest_int(4194303.f), 4194303);
  EXPECT_EQ(quant::nearest_int(-4194303.f), -4194303);
}

TEST(QuantApi, KnownQ4_0AndQ5_1Values) {
  block_q4_0 b{};
  b.d = fp32_to_fp16(0.5f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float y[32];
  ASSERT_TRUE(dequantize_row(GgmlType::Q4_0, &b, y, 32).ok());
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * (j - 8));
    EXPECT_EQ(y[j + 16], 0.5f * (15 - j - 8));
  }
  block_q5_1 c{};
  c.d = fp32_to_fp16(0.25f);
  c.m = fp32_to_fp16(-1.0f);
  const uint32_t qh = 0x80000001u;  // 5th bit of elements 0 and 31
  std::memcpy(c.qh, &qh, 4);
  for (int j = 0; j < 16; ++j) c.qs[j] = 0x33;
  ASSERT_TRUE(dequantize_row(GgmlType::Q5_1, &c, y, 32).ok());
  EXPECT_EQ(y[0], 0.25f * 19 - 1.0f);
  EXPECT_EQ(y[1], 0.25f * 3 - 1.0f);
  EXPECT_EQ(y[31], 0.25f * 19 - 1.0f);
  EXPECT_EQ(y[30], 0.25f * 3 - 1.0f);
}

TEST(QuantApi, KnownQ8_0Quantization) {
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16) * 0.5f;  // absmax 8 at j = 0
  block_q8_0 b;
  ASSERT_TRUE(quantize_row(GgmlType::Q8_0, x, &b, 32).ok());
  EXPECT_EQ(b.d, fp32_to_fp16(8.0f / 127));
  EXPECT_EQ(b.qs[0], -127);
  EXPECT_EQ(b.qs[16], 0);
  EXPECT_EQ(b.qs[31], static_cast<int8_t>(std::round(7.5f * (127 / 8.0f))));
}

// Q4_K/Q5_K pack 8 six-bit scales and mins into 12 bytes; every value must come back.
TEST(QuantApi, ScaleMinK4PackingCoversAll6BitValues) {
  for (int v = 0; v < 64; ++v) {
    uint8_t packed[12] = {};
    for (int j = 0; j < 8; ++j) {
      const int ls = (v + j) & 63, lm = (v * 7 + j * 5) & 63;
      if (j < 4) {
        packed[j] |= static_cast<uint8_t>(ls);
        packed[j + 4] |= static_cast<uint8_t>(lm);
      } else {
        packed[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
        packed[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
        packed[j] |= static_cast<uint8_t>((lm >> 4) << 6);
      }
    }
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      quant::scale_min_k4(j, packed, &sc, &m);
      EXPECT_EQ(sc, (v + j) & 63);
      EXPECT_EQ(m, (v * 7 + j * 5) & 63);
    }
  }
}

TEST(QuantApi, Q3KScaleUnpacking) {
  // Scale j = 6-bit value j*4 + 3 (minus 32 after unpacking).
  uint8_t packed[12] = {};
  for (int j = 0; j < 16; ++j) {
    const int v = j * 4 + 3;
    if (j < 8) packed[j] |= static_cast<uint8_t>(v & 0xF);
    else packed[j - 8] |= static_cast<uint8_t>((v & 0xF) << 4);
    packed[8 + j % 4] |= static_cast<uint8_t>((v >> 4) << (2 * (j / 4)));
  }
  int8_t sc[16];
  quant::unpack_q3_k_scales(packed, sc);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(sc[j], j * 4 + 3 - 32) << j;
}

TEST(QuantApi, Q8KBsumsAndScale) {
  auto x = test::gaussian(512, 11);
  x[300] = -9.0f;  // the block's largest magnitude, negative
  std::vector<block_q8_K> b(2);
  ASSERT_TRUE(quantize_row(GgmlType::Q8_K, x.data(), b.data(), 512).ok());
  for (const auto& blk : b) {
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += blk.qs[16 * g + i];
      EXPECT_EQ(blk.bsums[g], sum);
    }
  }
  // The largest-magnitude value always maps to -127; d = -max / 127 carries the sign.
  EXPECT_EQ(b[1].qs[300 - 256], -127);
  EXPECT_FLOAT_EQ(b[1].d, 9.0f / 127);
}

TEST(QuantApi, ZeroRowsStayZeroForEveryType) {
  std::vector<float> x(512, 0.0f);
  for (GgmlType t : test::quant_types()) {
    auto y = test::round_trip(t, x);
    ASSERT_EQ(y.size(), x.size()) << type_name(t);
    for (float v : y) ASSERT_EQ(v, 0.0f) << type_name(t);
  }
}

// Exactly representable data survives: Q8_0 data re-quantizes to itself, and
// F16/BF16 values pass through.
TEST(QuantApi, RequantizingDequantizedDataIsIdempotent) {
  const auto x = test::gaussian(4096, 3);
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::F16, GgmlType::BF16, GgmlType::F32}) {
    const auto y = test::round_trip(t, x);
    const auto z = test::round_trip(t, y);
    ASSERT_EQ(y, z) << type_name(t);
  }
}

// Weights are untrusted too: inf/NaN/huge/subnormal inputs must not crash or
// hit UB (ggml casts them to int8 unchecked), and must not leak into other blocks.
TEST(QuantApi, NonFiniteInputIsContainedToItsBlock) {
  const auto clean = test::gaussian(256 * 4, 9);
  auto x = clean;
  x[3] = NAN;
  x[256 + 7] = INFINITY;
  x[512 + 1] = -3e38f;
  x[512 + 2] = 3e38f;
  for (int j = 0; j < 256; ++j) x[768 + j] = 1e-41f * static_cast<float>(j % 7);  // subnormals
  for (GgmlType t : test::quant_types()) {
    const auto y = test::round_trip(t, x);
    const auto ref = test::round_trip(t, clean);
    ASSERT_EQ(y.size(), x.size()) << type_name(t);
    const size_t block = type_traits(t)->block_elems;
    // Blocks that hold only clean values are untouched by their neighbours.
    for (size_t i = 0; i < x.size(); ++i) {
      const size_t b0 = i / block * block;
      bool clean_block = true;
      for (size_t k = b0; k < b0 + block; ++k) clean_block = clean_block && x[k] == clean[k];
      if (clean_block) {
        ASSERT_EQ(y[i], ref[i]) << type_name(t) << " at " << i;
      }
    }
  }
}

}  // namespace
}  // namespace velo
