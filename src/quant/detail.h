// Internal helpers of the reference quantizers (not for use outside src/quant).
#pragma once
#include <cmath>
#include <cstdint>

namespace velo::quant::detail {

// C's float->int conversion (truncation toward zero) for values ggml converts
// with a cast; clamped to [lo, hi] so inf/NaN inputs (UB in ggml) stay defined.
inline int trunc_clamp(float v, int lo, int hi) {
  if (!(v > static_cast<float>(lo))) return lo;  // also NaN
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(v);
}

// roundf (ties away from zero) then clamp, as ggml's Q8_0 `qs[j] = roundf(x)`.
inline int round_clamp(float v, int lo, int hi) {
  if (v != v) return 0;
  return trunc_clamp(std::round(v), lo, hi);
}

}  // namespace velo::quant::detail
