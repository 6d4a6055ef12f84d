// Element-wise and row kernels of the transformer forward pass on the CPU.
// Numerics follow ggml's CPU backend (the fidelity oracle): sums of squares
// in double, GELU through an fp16 lookup table, RoPE angles by repeated
// multiplication, so that our logits match llama.cpp's to ~1e-5 KL.
#pragma once
#include <cstdint>

namespace velo::cpu {

// y[i] = x[i] / sqrt(mean(x^2) + eps) * (w ? w[i] : 1). x and y may alias.
void rmsnorm(const float* x, const float* w, float* y, int n, float eps);

// In-place: x[i] += y[i].
void add(float* x, const float* y, int n);
// In-place: x[i] *= s.
void scale(float* x, float s, int n);
// In-place: x[i] = cap * tanh(x[i] / cap).
void softcap(float* x, float cap, int n);

// In-place numerically stable softmax over n values; -INFINITY entries give 0.
void softmax(float* x, int n);

// out[i] = silu(gate[i]) * up[i]   (SwiGLU, llama/qwen)
void swiglu(const float* gate, const float* up, float* out, int n);
// out[i] = gelu_tanh(gate[i]) * up[i]   (GeGLU, gemma), via ggml's fp16 GELU table
void geglu(const float* gate, const float* up, float* out, int n);
// The tanh-approximated GELU in float (no table); used by tests as the naive formula.
float gelu_tanh(float x);

// Rotary position embedding.
enum class RopeLayout : uint8_t {
  Norm,  // rotate adjacent pairs (x[2i], x[2i+1])            -- llama
  Neox,  // rotate halves (x[i], x[i + n_rot/2])              -- qwen2, qwen3, gemma3
};

struct RopeParams {
  int n_rot = 0;                 // rotated dims per head (<= head_dim, even)
  float freq_base = 10000.0f;    // theta base
  float freq_scale = 1.0f;       // linear scaling: 1 / rope.scaling.factor
  const float* freq_factors = nullptr;  // [n_rot/2] divisors of the angle (rope_freqs, llama3); may be null
  RopeLayout layout = RopeLayout::Norm;
};

// cs[2*i], cs[2*i+1] = cos, sin of pair i's angle at position `pos`; cs has n_rot floats.
void rope_cos_sin(const RopeParams& p, int32_t pos, float* cs);
// Rotate the first n_rot dims of each of n_heads vectors of length head_dim at x.
void rope_apply(const RopeParams& p, const float* cs, float* x, int n_heads, int head_dim);

// Convert n floats to IEEE half (round to nearest even) and back.
void to_f16(const float* x, uint16_t* y, int n);
void from_f16(const uint16_t* x, float* y, int n);

}  // namespace velo::cpu
