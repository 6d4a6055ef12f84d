// Dequantize every tensor of the real test models (Q8_0, Q4_1, Q5_0, Q4_K,
// Q6_K, F32 weights) through quant.h, and check that Q8_0 tensors re-quantize
// to exactly the bytes in the file (the reference quantizer reproduces them).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "quant/quant.h"
#include "test_models.h"

namespace velo {
namespace {

struct ModelStats {
  int tensors = 0;
  int q8_0_tensors_requantized = 0;
  std::map<std::string, int> per_type;
};

ModelStats check_model(const std::string& name) {
  ModelStats st;
  const std::string path = test::model_path(name);
  auto file = gguf::File::open(path);
  EXPECT_TRUE(file.ok()) << name << ": " << (file.ok() ? "" : file.message());
  if (!file.ok()) return st;
  std::vector<float> buf;
  std::vector<uint8_t> requant;
  for (const gguf::TensorInfo& t : (*file)->tensors()) {
    ++st.tensors;
    ++st.per_type[type_name(t.type)];
    EXPECT_TRUE(quant::can_dequantize(t.type)) << t.name << " " << type_name(t.type);
    const uint64_t row = t.ne.empty() ? 1 : t.ne[0];
    const uint64_t row_size = *row_bytes(t.type, row);
    const uint64_t rows = t.n_elements / row;
    const uint64_t rows_per_chunk = std::max<uint64_t>(1, (1u << 20) / row);  // bounded memory
    double sum_sq = 0;
    bool requant_same = true;
    for (uint64_t r0 = 0; r0 < rows; r0 += rows_per_chunk) {
      const uint64_t nr = std::min(rows_per_chunk, rows - r0);
      const int64_t n = static_cast<int64_t>(nr * row);
      buf.resize(static_cast<size_t>(n));
      const uint8_t* src = t.data + r0 * row_size;
      auto s = quant::dequantize_row(t.type, src, buf.data(), n);
      EXPECT_TRUE(s.ok()) << t.name << ": " << (s.ok() ? "" : s.message());
      if (!s.ok()) return st;
      for (float v : buf) {
        if (!std::isfinite(v)) {
          ADD_FAILURE() << t.name << ": non-finite value " << v;
          return st;
        }
        sum_sq += static_cast<double>(v) * v;
      }
      if (t.type == GgmlType::Q8_0) {
        requant.resize(nr * row_size);
        EXPECT_TRUE(quant::quantize_row(t.type, buf.data(), requant.data(), n).ok());
        requant_same = requant_same && std::memcmp(requant.data(), src, requant.size()) == 0;
      }
    }
    const double rms = std::sqrt(sum_sq / static_cast<double>(t.n_elements));
    // Quantized matrices hold real weights: not all zero, not garbage-scaled.
    // (F32 norm vectors are exempt: gemma's post-norm gains reach the hundreds.)
    if (t.type != GgmlType::F32) {
      EXPECT_GT(rms, 1e-4) << t.name;
      EXPECT_LT(rms, 10.0) << t.name;
    }
    if (t.type == GgmlType::Q8_0) {
      EXPECT_TRUE(requant_same) << t.name << ": re-quantized Q8_0 bytes differ from the file";
      ++st.q8_0_tensors_requantized;
    }
  }
  return st;
}

TEST(QuantModels, VeloCode40mEveryTensor) {
  const auto st = check_model("velo-code-40m.Q8_0.gguf");
  EXPECT_EQ(st.tensors, 74);
  EXPECT_EQ(st.q8_0_tensors_requantized, st.per_type.at("Q8_0"));
  EXPECT_EQ(st.per_type.size(), 2u);  // Q8_0 and F32
}

TEST(QuantModels, SmolLM2Q4_1EveryTensor) {
  const auto st = check_model("SmolLM2-135M-Instruct.Q4_1.gguf");
  EXPECT_GT(st.per_type.count("Q4_1"), 0u);
}

TEST(QuantModels, Gemma3Q4_K_MEveryTensor) {
  const auto st = check_model("gemma-3-270m-q4_k_m.gguf");
  for (const char* t : {"Q4_K", "Q6_K", "Q5_0", "Q8_0", "F32"}) EXPECT_GT(st.per_type.count(t), 0u) << t;
}

}  // namespace
}  // namespace velo
