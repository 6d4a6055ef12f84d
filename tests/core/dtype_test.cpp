#include "core/dtype.h"

#include <gtest/gtest.h>

#include "quant/blocks.h"

namespace velo {

TEST(DType, BlockSizesMatchStructs) {
  EXPECT_EQ(type_traits(GgmlType::Q4_0)->block_bytes, sizeof(block_q4_0));
  EXPECT_EQ(type_traits(GgmlType::Q4_1)->block_bytes, sizeof(block_q4_1));
  EXPECT_EQ(type_traits(GgmlType::Q5_0)->block_bytes, sizeof(block_q5_0));
  EXPECT_EQ(type_traits(GgmlType::Q5_1)->block_bytes, sizeof(block_q5_1));
  EXPECT_EQ(type_traits(GgmlType::Q8_0)->block_bytes, sizeof(block_q8_0));
  EXPECT_EQ(type_traits(GgmlType::Q2_K)->block_bytes, sizeof(block_q2_K));
  EXPECT_EQ(type_traits(GgmlType::Q3_K)->block_bytes, sizeof(block_q3_K));
  EXPECT_EQ(type_traits(GgmlType::Q4_K)->block_bytes, sizeof(block_q4_K));
  EXPECT_EQ(type_traits(GgmlType::Q5_K)->block_bytes, sizeof(block_q5_K));
  EXPECT_EQ(type_traits(GgmlType::Q6_K)->block_bytes, sizeof(block_q6_K));
  EXPECT_EQ(type_traits(GgmlType::Q8_K)->block_bytes, sizeof(block_q8_K));
}

TEST(DType, NamesRoundTripAndUnknownIds) {
  EXPECT_EQ(type_from_name("q4_k"), GgmlType::Q4_K);
  EXPECT_EQ(type_from_name("BF16"), GgmlType::BF16);
  EXPECT_FALSE(type_from_name("Q4_Z").has_value());
  EXPECT_FALSE(type_traits(4).has_value());  // retired id
  EXPECT_EQ(type_name(4), "type 4");
}

TEST(DType, RowBytes) {
  EXPECT_EQ(row_bytes(GgmlType::Q8_0, 64), 68u);
  EXPECT_FALSE(row_bytes(GgmlType::Q8_0, 33).has_value());
  EXPECT_FALSE(row_bytes(GgmlType::F32, UINT64_MAX / 2).has_value());
}

}  // namespace velo
