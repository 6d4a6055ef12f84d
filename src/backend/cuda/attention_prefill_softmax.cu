// PrefillAttention's softmax between the two GEMMs, `lanes` lanes of a warp
// per S row, mirroring cpu::softmax: sums of 16 keys aligned to multiples of
// 16 (tree order of _mm512_reduce_add_ps) accumulated in double,
// p = fp16(e * float(1 / sum)). P overwrites S in place. exp is CUDA's expf
// (<= 2 ulp), not the CPU's polynomial: the logits from cuBLAS already differ
// from the CPU's in their last bits, so a bit-exact exp would buy nothing, and
// the polynomial made this kernel ALU-bound.
//
// Rows of up to lanes * kResident * 16 keys are read once into registers;
// longer rows (lanes = 32) take three sweeps through L2 (max; exp stored back;
// P written in rounds that only overwrite bytes already read).
#include <cuda_fp16.h>

#include "backend/cuda/attention_math.cuh"
#include "backend/cuda/attention_prefill_kernels.h"

namespace velo::cuda::prefill {
namespace {

constexpr int kThreads = 128;
constexpr int kResident = 4;  // 16-key chunks per lane held in registers

// Lanes per row (a power of two <= 32): enough to hold a row of `width` columns
// in registers, and enough for ~2048 threads per SM of an H100 over `rows` rows.
int lanes_for(int width, int64_t rows) {
  const int chunks = (width + 15) / 16;
  int lanes = 1;
  while (lanes < 32 && (lanes * kResident < chunks || rows * lanes < 132 * 2048)) lanes *= 2;
  return lanes;
}

__device__ __forceinline__ void load16(const float* p, float (&x)[16]) {
  const float4* p4 = reinterpret_cast<const float4*>(p);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float4 v = p4[i];
    x[4 * i] = v.x;
    x[4 * i + 1] = v.y;
    x[4 * i + 2] = v.z;
    x[4 * i + 3] = v.w;
  }
}

__device__ __forceinline__ void store16(float* p, const float (&x)[16]) {
  float4* p4 = reinterpret_cast<float4*>(p);
#pragma unroll
  for (int i = 0; i < 4; ++i) p4[i] = make_float4(x[4 * i], x[4 * i + 1], x[4 * i + 2], x[4 * i + 3]);
}

// 16 halves fp16(e[i] * inv) (32 bytes) at p.
__device__ __forceinline__ void store_p(__half* p, const float (&e)[16], float inv) {
  __half2 h[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) h[i] = __floats2half2_rn(__fmul_rn(e[2 * i], inv), __fmul_rn(e[2 * i + 1], inv));
  uint4* d = reinterpret_cast<uint4*>(p);
  d[0] = *reinterpret_cast<const uint4*>(&h[0]);
  d[1] = *reinterpret_cast<const uint4*>(&h[4]);
}

__device__ __forceinline__ void store_zero(__half* p) {
  uint4* d = reinterpret_cast<uint4*>(p);
  d[0] = make_uint4(0, 0, 0, 0);
  d[1] = make_uint4(0, 0, 0, 0);
}

// Sum of 16 lanes in the order of cpu reduce16 / _mm512_reduce_add_ps.
__device__ __forceinline__ float reduce16(const float (&a)[16]) {
  float t8[8], t4[4];
#pragma unroll
  for (int i = 0; i < 8; ++i) t8[i] = __fadd_rn(a[i + 8], a[i]);
#pragma unroll
  for (int i = 0; i < 4; ++i) t4[i] = __fadd_rn(t8[i + 4], t8[i]);
  return __fadd_rn(__fadd_rn(t4[0], t4[2]), __fadd_rn(t4[1], t4[3]));
}

// Max / sum over the `lanes` lanes of a row (an aligned group of the warp).
__device__ __forceinline__ float row_max(float x, int lanes) {
  for (int off = lanes / 2; off > 0; off >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, off));
  return x;
}
__device__ __forceinline__ double row_sum(double x, int lanes) {
  for (int off = lanes / 2; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

struct Row {
  int c_lo, c_hi;  // visible columns [c_lo, c_hi)
  float scale, softcap, inv_cap;
  // Logit of column c*16+e from the raw S value x, -inf when masked.
  __device__ __forceinline__ float logit(float x, int c, int e) const {
    const int col = c * 16 + e;
    if (col < c_lo || col >= c_hi) return -INFINITY;
    return attn::logit(x, softcap, inv_cap, scale);
  }
};

__global__ void __launch_bounds__(kThreads) softmax_kernel(const SoftmaxTile a, int lanes) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) / lanes;
  const int lane = threadIdx.x % lanes;
  // Lanes past the last row keep going (no loads or stores) for the warp-wide syncs.
  const bool live = row < static_cast<int64_t>(a.rows) * a.n_kv_heads;
  const int kvh = live ? static_cast<int>(row / a.rows) : 0, r = live ? static_cast<int>(row % a.rows) : 0;
  const int pos = a.pos0 + r / a.group;
  const int lo = a.window > 0 ? max(0, pos - a.window + 1) : 0;
  const Row rw{lo - a.key0, pos + 1 - a.key0, a.scale, a.softcap, a.softcap > 0.0f ? 1.0f / a.softcap : 0.0f};
  float* s = a.s + kvh * a.head_stride + static_cast<int64_t>(r) * a.ld;
  __half* p = reinterpret_cast<__half*>(s);
  const int first = live ? rw.c_lo / 16 : 0, last = live ? (rw.c_hi + 15) / 16 : 0;  // chunks with visible keys
  const int n_chunks = live ? (a.width + 15) / 16 : 0;                                 // chunks of P to write

  if (lanes < 32 || last - first <= 32 * kResident) {
    // One read: this lane's chunks first + lane + lanes*k in registers.
    float x[kResident][16];
    float mx = -INFINITY;
#pragma unroll
    for (int k = 0; k < kResident; ++k) {
      const int c = first + lane + lanes * k;
      if (c < last) {
        load16(s + c * 16, x[k]);
#pragma unroll
        for (int e = 0; e < 16; ++e) {
          x[k][e] = rw.logit(x[k][e], c, e);
          mx = fmaxf(mx, x[k][e]);
        }
      }
    }
    mx = row_max(mx, lanes);
    double sum = 0;
#pragma unroll
    for (int k = 0; k < kResident; ++k) {
      if (first + lane + lanes * k < last) {
#pragma unroll
        for (int e = 0; e < 16; ++e) x[k][e] = x[k][e] == -INFINITY ? 0.0f : expf(__fsub_rn(x[k][e], mx));
        sum += static_cast<double>(reduce16(x[k]));
      }
    }
    const float inv = static_cast<float>(1.0 / row_sum(sum, lanes));
    __syncwarp();  // every lane has read its S chunks before P overwrites the row
    for (int c = lane; c < first; c += lanes) store_zero(p + c * 16);
#pragma unroll
    for (int k = 0; k < kResident; ++k) {
      const int c = first + lane + lanes * k;
      if (c < last) store_p(p + c * 16, x[k], inv);
    }
    for (int c = last + lane; c < n_chunks; c += lanes) store_zero(p + c * 16);
    return;
  }

  // Long rows. Sweep 1: max (soft-capped logits are stored back so tanh runs once).
  const bool capped = a.softcap > 0.0f;
  float mx = -INFINITY;
  for (int c = first + lane; c < last; c += 32) {
    float x[16];
    load16(s + c * 16, x);
#pragma unroll
    for (int e = 0; e < 16; ++e) {
      x[e] = rw.logit(x[e], c, e);
      mx = fmaxf(mx, x[e]);
    }
    if (capped) store16(s + c * 16, x);
  }
  mx = row_max(mx, 32);
  // Sweep 2: e = exp(logit - max) (0 when masked) stored back, summed 16 keys at a time.
  double sum = 0;
  for (int c = first + lane; c < last; c += 32) {
    float x[16];
    load16(s + c * 16, x);
#pragma unroll
    for (int e = 0; e < 16; ++e) {
      const int col = c * 16 + e;
      const float v = col < rw.c_lo || col >= rw.c_hi ? -INFINITY : capped ? x[e] : __fmul_rn(x[e], a.scale);
      x[e] = v == -INFINITY ? 0.0f : expf(__fsub_rn(v, mx));
    }
    sum += static_cast<double>(reduce16(x));
    store16(s + c * 16, x);
  }
  const float inv = static_cast<float>(1.0 / row_sum(sum, 32));
  __syncwarp();
  // Sweep 3 in rounds of 32 chunks: chunk c's halves overwrite the floats of
  // chunk c/2, read in an earlier round or in this one before the __syncwarp.
  for (int base = 0; base < n_chunks; base += 32) {
    const int c = base + lane;
    const bool mine = c >= first && c < last;
    float x[16];
    if (mine) load16(s + c * 16, x);
    __syncwarp();
    if (mine)
      store_p(p + c * 16, x, inv);
    else if (c < n_chunks)
      store_zero(p + c * 16);
  }
}

}  // namespace

void softmax(const SoftmaxTile& t, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(t.rows) * t.n_kv_heads;
  const int lanes = lanes_for(t.width, rows), rows_per_cta = kThreads / lanes;
  if (rows > 0)
    softmax_kernel<<<static_cast<unsigned>((rows + rows_per_cta - 1) / rows_per_cta), kThreads, 0, stream>>>(t, lanes);
}

}  // namespace velo::cuda::prefill
