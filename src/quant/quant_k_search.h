// Scale searches used by the K-quant reference quantizers (internal to src/quant).
// They follow ggml's reference algorithms operation for operation, so the
// chosen scales (and therefore the output bytes) match ggml's *_ref functions.
#pragma once
#include <cstdint>

namespace velo::quant::detail {

// Asymmetric fit x ~ scale * L - min with L in [0, nmax], min >= 0, minimising
// the weighted squared (or absolute, use_mad) error. Starts from the min/max
// grid, then tries nstep+1 grid densities (nmax + rmin + rdelta*k) / (max - min)
// and, for each, solves the 2x2 weighted least-squares system for (scale, min).
// Returns scale; *the_min receives min (a non-negative offset to subtract).
// Laux is scratch of n bytes.
float fit_scale_min(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                    uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad);

// Symmetric fit x ~ scale * (L - nmax) with L - nmax in [-nmax, nmax-1], weights
// x^2: the absmax grid, then 18 nearby grids (nmax +- 0.1k), keeping the one with
// the largest (sum w x l)^2 / (sum w l^2). Returns the scale (negative when the
// largest-magnitude value is positive, so it maps to -nmax).
float fit_scale_symmetric(int n, int nmax, const float* x, int8_t* L);

// Symmetric fit for 3-bit quants: the absmax grid, then up to 5 passes of
// coordinate descent moving single L values when that improves the x^2-weighted
// least-squares fit. L receives values offset by nmax.
float fit_scale_q3(int n, int nmax, const float* x, int8_t* L);

}  // namespace velo::quant::detail
