// matmul against double-precision references built from the reference
// dequantizer (quant/quant.h) for every supported weight type.
#include "backend/cpu/matmul.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/matmul_kernels.h"
#include "quant/blocks.h"
#include "quant/fp16.h"
#include "quant/quant.h"

namespace velo::cpu {
namespace {

using detail::ActFormat;

const GgmlType kTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0,
                           GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                           GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                           GgmlType::Q6_K};

// Random weights quantized with the reference quantizer, plus their dequantized values.
struct Weights {
  std::vector<uint8_t> bytes;
  std::vector<float> deq;  // rows × cols
  WeightMatrix view() const { return {type, bytes.data(), rows, cols}; }
  GgmlType type;
  int64_t rows, cols;
};

Weights make_weights(GgmlType t, int64_t rows, int64_t cols, uint32_t seed) {
  Weights w;
  w.type = t;
  w.rows = rows;
  w.cols = cols;
  const uint64_t rb = *row_bytes(t, cols);
  w.bytes.resize(rb * rows);
  w.deq.resize(rows * cols);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> src(cols);
  for (int64_t r = 0; r < rows; ++r) {
    const float row_scale = 0.02f * (1 + r % 7);  // rows of different magnitudes
    for (auto& v : src) v = nd(rng) * row_scale + (r % 3 == 0 ? 0.01f : 0.0f);
    EXPECT_TRUE(quant::quantize_row(t, src.data(), w.bytes.data() + r * rb, cols).ok());
    EXPECT_TRUE(quant::dequantize_row(t, w.bytes.data() + r * rb, w.deq.data() + r * cols, cols).ok());
  }
  return w;
}

std::vector<float> make_x(int64_t m, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(m * cols);
  for (auto& v : x) v = nd(rng);
  // An outlier channel, as real activations have, and an all-zero block.
  for (int64_t i = 0; i < m; ++i) {
    if (cols > 3) x[i * cols + 3] = 20.0f;
    if (cols >= 512)
      for (int j = 256; j < 288; ++j) x[i * cols + j] = 0.0f;
  }
  return x;
}

// The activation values the kernels actually multiply with (dequantized converted row),
// and a bound on |that - x| per element.
void effective_x(GgmlType t, const float* x, int64_t cols, std::vector<double>& xe,
                 std::vector<double>& err) {
  const ActFormat f = detail::act_format(t);
  std::vector<uint8_t> buf(detail::act_row_bytes(f, cols));
  detail::quantize_act_row_scalar(f, x, buf.data(), cols);
  xe.assign(cols, 0);
  err.assign(cols, 0);
  for (int64_t i = 0; i < cols; ++i) {
    switch (f) {
      case ActFormat::kF32: xe[i] = x[i]; break;
      case ActFormat::kF32AsF16:
      case ActFormat::kF32AsBF16:
        xe[i] = reinterpret_cast<const float*>(buf.data())[i];
        err[i] = std::fabs(x[i]) * (f == ActFormat::kF32AsF16 ? 0x1p-11 : 0x1p-8);
        break;
      case ActFormat::kQ8: {
        const auto& b = reinterpret_cast<const detail::ActQ8*>(buf.data())[i / 32];
        xe[i] = static_cast<double>(b.d) * b.qs[i % 32];
        err[i] = 0.57 * b.d + 1e-30;  // half a step, plus the fp16 rounding of d times |q| ≤ 127
        break;
      }
      case ActFormat::kQ8K: {
        const auto& b = reinterpret_cast<const block_q8_K*>(buf.data())[i / QK_K];
        xe[i] = static_cast<double>(b.d) * b.qs[i % QK_K];
        err[i] = 0.51 * std::fabs(b.d) + 1e-30;
        break;
      }
    }
  }
}

std::vector<float> run(const Weights& w, const std::vector<float>& x, int64_t m, int threads) {
  ThreadPool pool(threads);
  std::vector<float> y(m * w.rows, NAN);
  matmul(w.view(), x.data(), m, y.data(), pool);
  return y;
}

// Weights with a min (Q4_1, Q5_1) take Σ m_w·s_x with s stored as fp16 (llama.cpp's
// block_q8_1), not m_w·d_x·Σq as the dequantized product has: the difference, per row.
template <class Block>
double min_term_fix(const Weights& w, int64_t r, const detail::ActQ8* xb) {
  const auto* wb = reinterpret_cast<const Block*>(w.bytes.data() + r * (w.bytes.size() / w.rows));
  double fix = 0;
  for (int64_t b = 0; b < w.cols / 32; ++b) {
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += xb[b].qs[j];
    fix += static_cast<double>(fp16_to_fp32(wb[b].m)) *
           (static_cast<double>(xb[b].s) - static_cast<double>(xb[b].d) * sum);
  }
  return fix;
}

void check_against_references(const Weights& w, const std::vector<float>& x, int64_t m,
                              const std::vector<float>& y) {
  std::vector<double> xe, err;
  const ActFormat f = detail::act_format(w.type);
  std::vector<uint8_t> xq(detail::act_row_bytes(f, w.cols));
  for (int64_t i = 0; i < m; ++i) {
    effective_x(w.type, x.data() + i * w.cols, w.cols, xe, err);
    detail::quantize_act_row_scalar(f, x.data() + i * w.cols, xq.data(), w.cols);
    const auto* xb = reinterpret_cast<const detail::ActQ8*>(xq.data());
    for (int64_t r = 0; r < w.rows; ++r) {
      const float* wr = w.deq.data() + r * w.cols;
      double ref_q = w.type == GgmlType::Q4_1   ? min_term_fix<block_q4_1>(w, r, xb)
                     : w.type == GgmlType::Q5_1 ? min_term_fix<block_q5_1>(w, r, xb)
                                                : 0.0;
      double ref_x = 0, mag = 0, bound = 0;
      for (int64_t c = 0; c < w.cols; ++c) {
        ref_q += wr[c] * xe[c];
        ref_x += static_cast<double>(wr[c]) * x[i * w.cols + c];
        mag += std::fabs(wr[c] * xe[c]);
        bound += std::fabs(wr[c]) * err[c];
      }
      const double got = y[i * w.rows + r];
      // Tight: same inputs as the kernel, only float rounding differs.
      ASSERT_NEAR(got, ref_q, 1e-5 * mag + 1e-6)
          << type_name(w.type) << " m=" << m << " token " << i << " row " << r;
      // Loose: against the unconverted activations, within the conversion error bound.
      ASSERT_NEAR(got, ref_x, bound + 1e-5 * mag + 1e-6)
          << type_name(w.type) << " m=" << m << " token " << i << " row " << r;
    }
  }
}

class MatmulTypes : public ::testing::TestWithParam<GgmlType> {};

TEST_P(MatmulTypes, MatchesReferences) {
  const GgmlType t = GetParam();
  ASSERT_TRUE(matmul_supported(t));
  for (int64_t cols : {256, 768}) {
    const Weights w = make_weights(t, 37, cols, 1234 + static_cast<uint32_t>(cols));
    for (int64_t m : {1, 2, 3, 7, 33}) {
      const auto x = make_x(m, cols, 99 + static_cast<uint32_t>(m));
      const auto y = run(w, x, m, 2);
      check_against_references(w, x, m, y);
    }
  }
}

TEST_P(MatmulTypes, DeterministicAcrossThreadCountsAndShapes) {
  const GgmlType t = GetParam();
  const int64_t cols = 512;
  for (int64_t rows : {1, 5, 131}) {
    const Weights w = make_weights(t, rows, cols, 7 + static_cast<uint32_t>(rows));
    for (int64_t m : {1, 6, 70}) {  // 70 > 64: more than one token block
      const auto x = make_x(m, cols, 5);
      const auto y1 = run(w, x, m, 1);
      for (int threads : {2, 3}) {
        const auto yn = run(w, x, m, threads);
        ASSERT_EQ(0, std::memcmp(y1.data(), yn.data(), y1.size() * sizeof(float)))
            << type_name(t) << " rows=" << rows << " m=" << m << " threads=" << threads;
      }
      // Token i of a batch equals the same token alone (tiles do not change the math),
      // except F16, which like llama.cpp sums in another order for one token than for a batch.
      std::vector<float> xi(x.end() - cols, x.end());
      const auto ylast = run(w, xi, 1, 2);
      if (t != GgmlType::F16 || m == 1)
        ASSERT_EQ(0, std::memcmp(ylast.data(), y1.data() + (m - 1) * rows, rows * sizeof(float)))
            << type_name(t) << " rows=" << rows << " m=" << m;
      if (rows == 131 && m == 70) check_against_references(w, x, m, y1);
    }
  }
}

TEST_P(MatmulTypes, SimdMatchesScalarKernel) {
  const GgmlType t = GetParam();
  const int64_t rows = 19, cols = 512, m = 5;
  const Weights w = make_weights(t, rows, cols, 77);
  const auto x = make_x(m, cols, 78);
  const ActFormat f = detail::act_format(t);
  const size_t xrow = detail::act_row_bytes(f, cols);
  std::vector<uint8_t> xq(xrow * m);
  for (int64_t i = 0; i < m; ++i) detail::quantize_act_row_scalar(f, x.data() + i * cols, xq.data() + i * xrow, cols);
  std::vector<float> ys(m * rows), yv(m * rows);
  const uint64_t rb = *row_bytes(t, cols);
  detail::Tile tile{w.bytes.data(), rb, xq.data(), xrow, ys.data(), rows, cols};
  detail::tile_kernel_scalar(t)(tile, rows, m);
  tile.y = yv.data();
  detail::tile_kernel(t)(tile, rows, m);
  for (size_t i = 0; i < ys.size(); ++i) {
    double mag = 0;
    for (int64_t c = 0; c < cols; ++c) mag += std::fabs(w.deq[(i % rows) * cols + c] * x[(i / rows) * cols + c]);
    ASSERT_NEAR(yv[i], ys[i], 1e-5 * mag + 1e-6) << type_name(t) << " output " << i;
  }
}

std::string type_param_name(const ::testing::TestParamInfo<GgmlType>& info) {
  return type_name(info.param);
}
INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulTypes, ::testing::ValuesIn(kTypes), type_param_name);

TEST(Matmul, StridedOutputLeavesOtherColumnsAlone) {
  const Weights w = make_weights(GgmlType::Q8_0, 10, 256, 3);
  const int64_t m = 3, stride = 16;
  const auto x = make_x(m, 256, 4);
  ThreadPool pool(2);
  std::vector<float> y(m * stride, -7.0f);
  matmul_strided(w.view(), x.data(), m, y.data(), stride, pool);
  const auto dense = run(w, x, m, 2);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < stride; ++c) {
      if (c < 10) EXPECT_EQ(y[i * stride + c], dense[i * 10 + c]);
      else EXPECT_EQ(y[i * stride + c], -7.0f);
    }
}

// Float weights take any column count: the SIMD main loop, the 8-wide step and the scalar tail.
TEST(Matmul, FloatTypesOddColumnCounts) {
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16})
    for (int64_t cols : {1, 7, 24, 37, 100}) {
      const Weights w = make_weights(t, 9, cols, 11 + static_cast<uint32_t>(cols));
      for (int64_t m : {1, 5}) {
        const auto x = make_x(m, cols, 12);
        check_against_references(w, x, m, run(w, x, m, 2));
      }
    }
}

// matmul_many gives exactly what separate matmul calls give, across activation formats.
TEST(Matmul, ManyMatchesSeparateCalls) {
  const int64_t cols = 512;
  const GgmlType types[] = {GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::F16, GgmlType::Q4_1, GgmlType::F32};
  std::vector<Weights> ws;
  for (int j = 0; j < 5; ++j) ws.push_back(make_weights(types[j], 20 + 13 * j, cols, 40 + j));
  ws.push_back(make_weights(GgmlType::Q8_0, 0, cols, 50));  // an empty matrix
  ThreadPool pool(2);
  for (int64_t m : {1, 3, 70}) {
    const auto x = make_x(m, cols, 41);
    std::vector<std::vector<float>> ys(ws.size());
    std::vector<MatmulJob> jobs;
    for (size_t j = 0; j < ws.size(); ++j) {
      ys[j].assign(m * ws[j].rows + 1, -3.0f);
      jobs.push_back({ws[j].view(), ys[j].data(), ws[j].rows});
    }
    matmul_many(jobs.data(), static_cast<int>(jobs.size()), x.data(), m, pool);
    for (size_t j = 0; j < ws.size(); ++j) {
      const auto want = run(ws[j], x, m, 1);
      // (memcmp with an empty matrix's null data() is undefined; compare only when there is output)
      if (!want.empty())
        ASSERT_EQ(0, std::memcmp(want.data(), ys[j].data(), want.size() * sizeof(float)))
            << type_name(ws[j].type) << " m=" << m;
      EXPECT_EQ(ys[j].back(), -3.0f);  // nothing written past the output
    }
  }
}

TEST(Matmul, UnsupportedTypes) {
  EXPECT_FALSE(matmul_supported(GgmlType::Q8_K));
  EXPECT_FALSE(matmul_supported(GgmlType::IQ2_XXS));
  EXPECT_FALSE(matmul_supported(GgmlType::I32));
}

// llama.cpp's x86 quantize_row_q8_0/q8_1 (what the oracle runs), modelled
// independently: q = nearbyint(x · (127/amax)) in the default round-half-even mode.
void q8_x86_model(const float* x, int8_t* q, float* d, float* s) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float dr = amax / 127.0f;
  const float id = amax != 0 ? 127.0f / amax : 0.0f;
  int sum = 0;
  for (int j = 0; j < 32; ++j) {
    q[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
    sum += q[j];
  }
  *d = fp16_to_fp32(fp32_to_fp16(dr));
  *s = fp16_to_fp32(fp32_to_fp16(dr * static_cast<float>(sum)));
}

// The SIMD activation quantizer is bit-identical to the scalar one, Q8 blocks
// match llama.cpp's x86 rounding and Q8_K blocks the reference quantizer.
TEST(QuantizeAct, MatchesLlamaCppQuantizers) {
  const int64_t cols = 1024;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> x(cols);
  for (auto& v : x) v = nd(rng);
  x[5] = -40.0f;   // a negative extreme (Q8_K scale sign)
  x[300] = 12.5f;  // ties between +/- extremes
  x[301] = -12.5f;
  for (int j = 512; j < 544; ++j) x[j] = 0;  // all-zero blocks
  for (int j = 768; j < 1024; ++j) x[j] = 0;
  for (int j = 600; j < 632; ++j) x[j] = (j - 616) * 0.5f;
  // amax 127 makes the multiplier exactly 1: x.5 values are rounding ties, where
  // half-to-even (x86 llama.cpp) and roundf (the _ref quantizer) disagree.
  for (int j = 640; j < 671; ++j) x[j] = static_cast<float>(j - 656) + 0.5f;
  x[671] = 127.0f;

  for (ActFormat f : {ActFormat::kF32AsF16, ActFormat::kF32AsBF16, ActFormat::kQ8, ActFormat::kQ8K}) {
    std::vector<uint8_t> a(detail::act_row_bytes(f, cols)), b(a.size());
    detail::quantize_act_row_scalar(f, x.data(), a.data(), cols);
    detail::quantize_act_row(f, x.data(), b.data(), cols);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size())) << static_cast<int>(f);
  }
  std::vector<uint8_t> q8_row(detail::act_row_bytes(ActFormat::kQ8, cols));
  detail::quantize_act_row(ActFormat::kQ8, x.data(), q8_row.data(), cols);
  const auto* q8 = reinterpret_cast<const detail::ActQ8*>(q8_row.data());
  const float* q8_d = detail::act_q8_d(q8_row.data(), cols / 32);
  const float* q8_s = detail::act_q8_s(q8_row.data(), cols / 32);
  for (int64_t b = 0; b < cols / 32; ++b) {
    int8_t q[32];
    float d, s;
    q8_x86_model(x.data() + 32 * b, q, &d, &s);
    EXPECT_EQ(q8[b].d, d) << b;
    EXPECT_EQ(q8[b].s, s) << b;
    for (int j = 0; j < 32; ++j) EXPECT_EQ(q8[b].qs[j], q[j]) << b << ":" << j;
    EXPECT_EQ(q8_d[b], q8[b].d);
    EXPECT_EQ(q8_s[b], q8[b].s);
  }
  EXPECT_EQ(q8[20].qs[0], -16);  // -15.5 to even, where roundf gives -16 too
  EXPECT_EQ(q8[20].qs[1], -14);  // -14.5 to even (roundf: -15)
  EXPECT_EQ(q8[20].qs[16], 0);   // 0.5 to even (roundf: 1)
  EXPECT_EQ(q8[20].qs[17], 2);   // 1.5 to even
  std::vector<block_q8_K> qk(cols / QK_K), refk(cols / QK_K);
  detail::quantize_act_row(ActFormat::kQ8K, x.data(), qk.data(), cols);
  ASSERT_TRUE(quant::quantize_row(GgmlType::Q8_K, x.data(), refk.data(), cols).ok());
  EXPECT_EQ(0, std::memcmp(qk.data(), refk.data(), qk.size() * sizeof(block_q8_K)));
}

}  // namespace
}  // namespace velo::cpu
