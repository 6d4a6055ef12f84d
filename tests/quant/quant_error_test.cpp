// Quantize -> dequantize error of every format on Gaussian data and on real
// weights (rows of velo-code-40m), against per-type relative-RMSE bounds set a
// small margin above what the reference quantizers measure (see kBounds).
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "quant/quant.h"
#include "quant_test_util.h"
#include "test_models.h"

namespace velo {
namespace {

struct Bound {
  GgmlType type;
  double gaussian;  // relative RMSE bound on N(0, 1) data
  double weights;   // relative RMSE bound on real weight rows
};

// Bounds are ~10% above the measured errors, which are ggml's own (the
// quantizers are bit-exact with ggml's reference). Measured, Gaussian / weights:
//   F16 2.08e-4 / 2.12e-4   BF16 1.66e-3 / 1.68e-3   Q8_0 5.38e-3 / 0 (the weights
//   are already on a Q8_0 grid, so they re-quantize exactly)   Q8_K 6.95e-3 / 7.76e-3
//   Q6_K 0.0177 / 0.0192    Q5_0 0.0427 / 0.0460     Q5_1 0.0379 / 0.0395
//   Q5_K 0.0362 / 0.0379    Q4_0 0.0859 / 0.0936     Q4_1 0.0781 / 0.0808
//   Q4_K 0.0715 / 0.0749    Q3_K 0.1509 / 0.1646     Q2_K 0.2980 / 0.3073
constexpr Bound kBounds[] = {
    {GgmlType::F32, 0.0, 0.0},
    {GgmlType::F16, 2.3e-4, 2.3e-4},
    {GgmlType::BF16, 1.85e-3, 1.85e-3},
    {GgmlType::Q8_0, 0.006, 1e-7},
    {GgmlType::Q8_K, 0.0077, 0.0086},
    {GgmlType::Q6_K, 0.0195, 0.021},
    {GgmlType::Q5_0, 0.047, 0.051},
    {GgmlType::Q5_1, 0.042, 0.044},
    {GgmlType::Q5_K, 0.040, 0.042},
    {GgmlType::Q4_0, 0.095, 0.103},
    {GgmlType::Q4_1, 0.086, 0.089},
    {GgmlType::Q4_K, 0.079, 0.083},
    {GgmlType::Q3_K, 0.166, 0.181},
    {GgmlType::Q2_K, 0.328, 0.338},
};

// Rows of real weights: a slice of three matrices of the Q8_0 test model, as floats.
std::vector<float> real_weights() {
  const std::string path = test::model_path("velo-code-40m.Q8_0.gguf");
  auto file = gguf::File::open(path);
  EXPECT_TRUE(file.ok()) << (file.ok() ? "" : file.message());
  if (!file.ok()) return {};
  std::vector<float> out;
  for (const char* name : {"blk.0.attn_q.weight", "blk.3.ffn_down.weight", "token_embd.weight"}) {
    const gguf::TensorInfo* t = (*file)->find_tensor(name);
    EXPECT_NE(t, nullptr) << name;
    if (!t) return {};
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(t->n_elements), 512 * 256);
    std::vector<float> rows(static_cast<size_t>(n));
    auto s = quant::dequantize_row(t->type, t->data, rows.data(), n);
    EXPECT_TRUE(s.ok()) << name << ": " << (s.ok() ? "" : s.message());
    out.insert(out.end(), rows.begin(), rows.end());
  }
  return out;
}

TEST(QuantError, RoundTripStaysUnderPerTypeBounds) {
  const auto gauss = test::gaussian(256 * 256, 42);
  const auto weights = real_weights();
  ASSERT_FALSE(weights.empty());
  ASSERT_EQ(weights.size() % 256, 0u);
  for (const Bound& b : kBounds) {
    const auto yg = test::round_trip(b.type, gauss);
    const auto yw = test::round_trip(b.type, weights);
    ASSERT_EQ(yg.size(), gauss.size()) << type_name(b.type);
    ASSERT_EQ(yw.size(), weights.size()) << type_name(b.type);
    const double eg = test::relative_rmse(gauss, yg), ew = test::relative_rmse(weights, yw);
    std::printf("  %-5s relative RMSE: gaussian %.6f (bound %.4g)  weights %.6f (bound %.4g)\n",
                type_name(b.type).c_str(), eg, b.gaussian, ew, b.weights);
    EXPECT_LE(eg, b.gaussian) << type_name(b.type);
    EXPECT_LE(ew, b.weights) << type_name(b.type);
  }
}

// More bits never hurt: each format's error is below the next-coarser one's.
TEST(QuantError, ErrorOrderFollowsBitWidth) {
  const auto x = test::gaussian(256 * 64, 5);
  auto e = [&](GgmlType t) { return test::relative_rmse(x, test::round_trip(t, x)); };
  EXPECT_LT(e(GgmlType::Q8_0), e(GgmlType::Q6_K));
  EXPECT_LT(e(GgmlType::Q6_K), e(GgmlType::Q5_K));
  EXPECT_LT(e(GgmlType::Q5_K), e(GgmlType::Q4_K));
  EXPECT_LT(e(GgmlType::Q4_K), e(GgmlType::Q3_K));
  EXPECT_LT(e(GgmlType::Q3_K), e(GgmlType::Q2_K));
  EXPECT_LT(e(GgmlType::Q5_0), e(GgmlType::Q4_0));
  EXPECT_LT(e(GgmlType::Q5_1), e(GgmlType::Q4_1));
}

}  // namespace
}  // namespace velo
