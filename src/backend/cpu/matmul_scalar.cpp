// Portable scalar tile kernels: integer dot products per block against the
// quantized activations, the same math as the SIMD kernels. Used when the build
// has no SIMD path for a type (Q2_K and Q3_K always, everything with -mno-avx2).
#include <cstring>

#include "backend/cpu/matmul_kernels.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace velo::cpu::detail {
namespace {

float dot_q4_0(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const block_q4_0*>(w);
  const auto* xb = reinterpret_cast<const ActQ8*>(x);
  float sum = 0;
  for (int64_t b = 0; b < cols / 32; ++b) {
    int isum = 0;
    for (int j = 0; j < 16; ++j) {
      isum += ((wb[b].qs[j] & 0xF) - 8) * xb[b].qs[j];
      isum += ((wb[b].qs[j] >> 4) - 8) * xb[b].qs[j + 16];
    }
    sum += static_cast<float>(isum) * (fp16_to_fp32(wb[b].d) * xb[b].d);
  }
  return sum;
}

float dot_q4_1(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const block_q4_1*>(w);
  const auto* xb = reinterpret_cast<const ActQ8*>(x);
  float sum = 0;
  for (int64_t b = 0; b < cols / 32; ++b) {
    int isum = 0;
    for (int j = 0; j < 16; ++j) {
      isum += (wb[b].qs[j] & 0xF) * xb[b].qs[j];
      isum += (wb[b].qs[j] >> 4) * xb[b].qs[j + 16];
    }
    sum += static_cast<float>(isum) * (fp16_to_fp32(wb[b].d) * xb[b].d) +
           fp16_to_fp32(wb[b].m) * xb[b].s;
  }
  return sum;
}

template <class Block>
int q5_isum(const Block& w, const ActQ8& x, int offset) {
  uint32_t qh;
  std::memcpy(&qh, w.qh, 4);
  int isum = 0;
  for (int j = 0; j < 16; ++j) {
    const int lo = (w.qs[j] & 0xF) | (((qh >> j) & 1) << 4);
    const int hi = (w.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    isum += (lo - offset) * x.qs[j] + (hi - offset) * x.qs[j + 16];
  }
  return isum;
}

float dot_q5_0(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const block_q5_0*>(w);
  const auto* xb = reinterpret_cast<const ActQ8*>(x);
  float sum = 0;
  for (int64_t b = 0; b < cols / 32; ++b)
    sum += static_cast<float>(q5_isum(wb[b], xb[b], 16)) * (fp16_to_fp32(wb[b].d) * xb[b].d);
  return sum;
}

float dot_q5_1(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const block_q5_1*>(w);
  const auto* xb = reinterpret_cast<const ActQ8*>(x);
  float sum = 0;
  for (int64_t b = 0; b < cols / 32; ++b)
    sum += static_cast<float>(q5_isum(wb[b], xb[b], 0)) * (fp16_to_fp32(wb[b].d) * xb[b].d) +
           fp16_to_fp32(wb[b].m) * xb[b].s;
  return sum;
}

float dot_q8_0(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const block_q8_0*>(w);
  const auto* xb = reinterpret_cast<const ActQ8*>(x);
  float sum = 0;
  for (int64_t b = 0; b < cols / 32; ++b) {
    int isum = 0;
    for (int j = 0; j < 32; ++j) isum += wb[b].qs[j] * xb[b].qs[j];
    sum += static_cast<float>(isum) * (fp16_to_fp32(wb[b].d) * xb[b].d);
  }
  return sum;
}

// The 8 six-bit scales and mins of a Q4_K/Q5_K super-block.
void unpack_scales_k4(const uint8_t* s, uint8_t sc[8], uint8_t mn[8]) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    mn[j] = s[j + 4] & 63;
    sc[j + 4] = (s[j + 8] & 0xF) | ((s[j] >> 6) << 4);
    mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
  }
}

// q[e] for e in [0, 256): unsigned quant values of one super-block.
template <class Block>
float kquant_min_block(const Block& w, const block_q8_K& x, const uint8_t q[256]) {
  uint8_t sc[8], mn[8];
  unpack_scales_k4(w.scales, sc, mn);
  int isum = 0, msum = 0;
  for (int j = 0; j < 8; ++j) {
    int s = 0;
    for (int l = 0; l < 32; ++l) s += q[32 * j + l] * x.qs[32 * j + l];
    isum += sc[j] * s;
    msum += mn[j] * (x.bsums[2 * j] + x.bsums[2 * j + 1]);
  }
  return fp16_to_fp32(w.d) * x.d * static_cast<float>(isum) -
         fp16_to_fp32(w.dmin) * x.d * static_cast<float>(msum);
}

float dot_q4_k(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const block_q4_K*>(w);
  const auto* xb = reinterpret_cast<const block_q8_K*>(x);
  float sum = 0;
  for (int64_t b = 0; b < cols / QK_K; ++b) {
    uint8_t q[256];
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l) {
        q[64 * k + l] = wb[b].qs[32 * k + l] & 0xF;
        q[64 * k + 32 + l] = wb[b].qs[32 * k + l] >> 4;
      }
    sum += kquant_min_block(wb[b], xb[b], q);
  }
  return sum;
}

float dot_q5_k(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const block_q5_K*>(w);
  const auto* xb = reinterpret_cast<const block_q8_K*>(x);
  float sum = 0;
  for (int64_t b = 0; b < cols / QK_K; ++b) {
    uint8_t q[256];
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l) {
        const uint8_t h = wb[b].qh[l];
        q[64 * k + l] = (wb[b].qs[32 * k + l] & 0xF) | (((h >> (2 * k)) & 1) << 4);
        q[64 * k + 32 + l] = (wb[b].qs[32 * k + l] >> 4) | (((h >> (2 * k + 1)) & 1) << 4);
      }
    sum += kquant_min_block(wb[b], xb[b], q);
  }
  return sum;
}

float dot_q6_k(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const block_q6_K*>(w);
  const auto* xb = reinterpret_cast<const block_q8_K*>(x);
  float sum = 0;
  for (int64_t b = 0; b < cols / QK_K; ++b) {
    int q[256];
    for (int n = 0; n < 2; ++n) {
      const uint8_t* ql = wb[b].ql + 64 * n;
      const uint8_t* qh = wb[b].qh + 32 * n;
      for (int l = 0; l < 32; ++l) {
        q[128 * n + l] = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        q[128 * n + l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        q[128 * n + l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        q[128 * n + l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      }
    }
    int isum = 0;
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += q[16 * g + l] * xb[b].qs[16 * g + l];
      isum += wb[b].scales[g] * s;
    }
    sum += fp16_to_fp32(wb[b].d) * xb[b].d * static_cast<float>(isum);
  }
  return sum;
}

float dot_q2_k(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const block_q2_K*>(w);
  const auto* xb = reinterpret_cast<const block_q8_K*>(x);
  float sum = 0;
  for (int64_t b = 0; b < cols / QK_K; ++b) {
    int isum = 0, msum = 0;
    for (int g = 0; g < 16; ++g) {
      // Group g = elements [16g, 16g+16): half n, shift pair j, part p.
      const int n = g / 8, j = (g % 8) / 2, p = g % 2;
      int s = 0;
      for (int l = 0; l < 16; ++l)
        s += ((wb[b].qs[32 * n + 16 * p + l] >> (2 * j)) & 3) * xb[b].qs[16 * g + l];
      isum += (wb[b].scales[g] & 0xF) * s;
      msum += (wb[b].scales[g] >> 4) * xb[b].bsums[g];
    }
    sum += fp16_to_fp32(wb[b].d) * xb[b].d * static_cast<float>(isum) -
           fp16_to_fp32(wb[b].dmin) * xb[b].d * static_cast<float>(msum);
  }
  return sum;
}

float dot_q3_k(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wb = reinterpret_cast<const block_q3_K*>(w);
  const auto* xb = reinterpret_cast<const block_q8_K*>(x);
  float sum = 0;
  for (int64_t b = 0; b < cols / QK_K; ++b) {
    // 16 six-bit scales: low 4 bits in bytes 0..7 (two per byte), high 2 bits in bytes 8..11.
    const uint8_t* s = wb[b].scales;
    int sc[16];
    for (int g = 0; g < 16; ++g) {
      const int lo = g < 8 ? (s[g] & 0xF) : (s[g - 8] >> 4);
      const int hi = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
      sc[g] = (lo | (hi << 4)) - 32;
    }
    int isum = 0;
    for (int g = 0; g < 16; ++g) {
      const int n = g / 8, j = (g % 8) / 2, p = g % 2;
      int acc = 0;
      for (int l = 0; l < 16; ++l) {
        const int low = (wb[b].qs[32 * n + 16 * p + l] >> (2 * j)) & 3;
        const int high = (wb[b].hmask[16 * p + l] >> (4 * n + j)) & 1;
        acc += (low - (high ? 0 : 4)) * xb[b].qs[16 * g + l];
      }
      isum += sc[g] * acc;
    }
    sum += fp16_to_fp32(wb[b].d) * xb[b].d * static_cast<float>(isum);
  }
  return sum;
}

float dot_f32(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wf = reinterpret_cast<const float*>(w);
  const auto* xf = reinterpret_cast<const float*>(x);
  float sum = 0;
  for (int64_t i = 0; i < cols; ++i) sum += wf[i] * xf[i];
  return sum;
}

float dot_f16(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wh = reinterpret_cast<const uint16_t*>(w);
  const auto* xf = reinterpret_cast<const float*>(x);
  float sum = 0;
  for (int64_t i = 0; i < cols; ++i) sum += fp16_to_fp32(wh[i]) * xf[i];
  return sum;
}

float dot_bf16(const uint8_t* w, const uint8_t* x, int64_t cols) {
  const auto* wh = reinterpret_cast<const uint16_t*>(w);
  const auto* xf = reinterpret_cast<const float*>(x);
  float sum = 0;
  for (int64_t i = 0; i < cols; ++i) sum += bf16_to_fp32(wh[i]) * xf[i];
  return sum;
}

template <float (*Dot)(const uint8_t*, const uint8_t*, int64_t)>
void scalar_tile(const Tile& a, int nrows, int ntok) {
  for (int t = 0; t < ntok; ++t)
    for (int r = 0; r < nrows; ++r)
      a.y[t * a.y_stride + r] = Dot(a.w + r * a.w_stride, a.x + t * a.x_stride, a.cols);
}

}  // namespace

TileKernel tile_kernel_scalar(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return scalar_tile<dot_f32>;
    case GgmlType::F16: return scalar_tile<dot_f16>;
    case GgmlType::BF16: return scalar_tile<dot_bf16>;
    case GgmlType::Q4_0: return scalar_tile<dot_q4_0>;
    case GgmlType::Q4_1: return scalar_tile<dot_q4_1>;
    case GgmlType::Q5_0: return scalar_tile<dot_q5_0>;
    case GgmlType::Q5_1: return scalar_tile<dot_q5_1>;
    case GgmlType::Q8_0: return scalar_tile<dot_q8_0>;
    case GgmlType::Q2_K: return scalar_tile<dot_q2_k>;
    case GgmlType::Q3_K: return scalar_tile<dot_q3_k>;
    case GgmlType::Q4_K: return scalar_tile<dot_q4_k>;
    case GgmlType::Q5_K: return scalar_tile<dot_q5_k>;
    case GgmlType::Q6_K: return scalar_tile<dot_q6_k>;
    default: return nullptr;
  }
}

}  // namespace velo::cpu::detail
