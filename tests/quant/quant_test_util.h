// Shared helpers of the quant unit tests.
#pragma once
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "quant/quant.h"

namespace velo::test {

// The types quant.h (de)quantizes, in a stable order for parameterised tests.
inline const std::vector<GgmlType>& quant_types() {
  static const std::vector<GgmlType> v = {
      GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
      GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
      GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_K};
  return v;
}

inline std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sigma);
  std::vector<float> x(n);
  for (auto& v : x) v = nd(rng);
  return x;
}

// Quantize then dequantize x (a whole number of blocks); empty on error.
inline std::vector<float> round_trip(GgmlType t, const std::vector<float>& x) {
  const auto bytes = row_bytes(t, x.size());
  if (!bytes) return {};
  std::vector<uint8_t> q(*bytes);
  std::vector<float> y(x.size());
  const auto n = static_cast<int64_t>(x.size());
  if (!quant::quantize_row(t, x.data(), q.data(), n).ok()) return {};
  if (!quant::dequantize_row(t, q.data(), y.data(), n).ok()) return {};
  return y;
}

// sqrt(mean((x - y)^2)) / sqrt(mean(x^2)).
inline double relative_rmse(const std::vector<float>& x, const std::vector<float>& y) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = static_cast<double>(x[i]) - y[i];
    err += d * d;
    ref += static_cast<double>(x[i]) * x[i];
  }
  return ref > 0 ? std::sqrt(err / ref) : std::sqrt(err);
}

}  // namespace velo::test
