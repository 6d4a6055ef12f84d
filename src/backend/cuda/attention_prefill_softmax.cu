// PrefillAttention's softmax between the two GEMMs: one CTA per S row, three
// sweeps over the row's visible columns (max; sum; write P), mirroring
// cpu::softmax: exp as the CPU computes it, sums of 16 keys aligned to
// multiples of 16 (tree order of _mm512_reduce_add_ps) accumulated in double,
// p = fp16(e * float(1 / sum)). P overwrites S in place (see write sweep).
#include <cuda_fp16.h>

#include "backend/cuda/attention_math.cuh"
#include "backend/cuda/attention_prefill_kernels.h"

namespace velo::cuda::prefill {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;

struct Row {
  float* s;
  int c_lo, c_hi;  // visible columns [c_lo, c_hi)
};

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

// Sum of 16 lanes in the order of cpu reduce16 / _mm512_reduce_add_ps.
__device__ __forceinline__ float reduce16(const float (&a)[16]) {
  float t8[8], t4[4];
#pragma unroll
  for (int i = 0; i < 8; ++i) t8[i] = __fadd_rn(a[i + 8], a[i]);
#pragma unroll
  for (int i = 0; i < 4; ++i) t4[i] = __fadd_rn(t8[i + 4], t8[i]);
  return __fadd_rn(__fadd_rn(t4[0], t4[2]), __fadd_rn(t4[1], t4[3]));
}

template <class T, class Op>
__device__ __forceinline__ T block_reduce(T x, Op op, T* sm) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) x = op(x, __shfl_xor_sync(0xffffffffu, x, off));
  if (threadIdx.x % 32 == 0) sm[threadIdx.x / 32] = x;
  __syncthreads();
  T r = sm[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) r = op(r, sm[w]);
  return r;
}

__global__ void __launch_bounds__(kThreads) softmax_kernel(const SoftmaxTile a) {
  const int kvh = blockIdx.x / a.rows, r = blockIdx.x % a.rows;
  const int pos = a.pos0 + r / a.group;
  const int lo = a.window > 0 ? max(0, pos - a.window + 1) : 0;
  const int c_lo = lo - a.key0, c_hi = pos + 1 - a.key0;
  float* s = a.s + kvh * a.head_stride + static_cast<int64_t>(r) * a.ld;
  const int first = c_lo / 16, last = (c_hi + 15) / 16;  // chunks of 16 columns holding visible keys
  const bool capped = a.softcap > 0.0f;
  const float inv_cap = capped ? 1.0f / a.softcap : 0.0f;

  // Sweep 1: max of the logits. With a soft cap, the logits are stored back so
  // that tanh runs once per element.
  float mx = -INFINITY;
  for (int c = first + threadIdx.x; c < last; c += kThreads) {
    float x[16];
    load16(s + c * 16, x);
#pragma unroll
    for (int e = 0; e < 16; ++e) {
      x[e] = attn::logit(x[e], a.softcap, inv_cap, a.scale);
      const int col = c * 16 + e;
      if (col >= c_lo && col < c_hi) mx = fmaxf(mx, x[e]);
    }
    if (capped) {
      float4* p4 = reinterpret_cast<float4*>(s + c * 16);
#pragma unroll
      for (int i = 0; i < 4; ++i) p4[i] = make_float4(x[4 * i], x[4 * i + 1], x[4 * i + 2], x[4 * i + 3]);
    }
  }
  __shared__ float sm_max[kWarps];
  __shared__ double sm_sum[kWarps];
  mx = block_reduce(mx, [](float u, float v) { return fmaxf(u, v); }, sm_max);

  // The logit of element e of a loaded chunk, -inf when masked.
  auto value = [&](const float (&x)[16], int c, int e) {
    const int col = c * 16 + e;
    if (col < c_lo || col >= c_hi) return -INFINITY;
    return capped ? x[e] : attn::logit(x[e], 0.0f, 0.0f, a.scale);
  };

  // Sweep 2: sum of exp(logit - max), 16 keys at a time as the CPU does.
  double sum = 0;
  for (int c = first + threadIdx.x; c < last; c += kThreads) {
    float x[16], ex[16];
    load16(s + c * 16, x);
#pragma unroll
    for (int e = 0; e < 16; ++e) {
      const float v = value(x, c, e);
      ex[e] = v == -INFINITY ? 0.0f : attn::exp_cpu(__fsub_rn(v, mx));
    }
    sum += static_cast<double>(reduce16(ex));
  }
  sum = block_reduce(sum, [](double u, double v) { return u + v; }, sm_sum);
  const float inv = static_cast<float>(1.0 / sum);

  // Sweep 3: P over columns [0, width) in rounds of kThreads chunks. Chunk c's
  // 16 halves overwrite the floats of chunk c/2, which an earlier round or this
  // round (before the barrier) has already read; later rounds read further on.
  __half* p = reinterpret_cast<__half*>(s);
  const int n_chunks = (a.width + 15) / 16;
  for (int base = 0; base < n_chunks; base += kThreads) {
    const int c = base + threadIdx.x;
    __half2 h[8];
    const bool any = c < n_chunks && c >= first && c < last;
    float x[16];
    if (any) load16(s + c * 16, x);
    __syncthreads();
    if (c >= n_chunks) continue;
#pragma unroll
    for (int e = 0; e < 16; e += 2) {
      float pr[2] = {0.0f, 0.0f};
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        const float v = any ? value(x, c, e + k) : -INFINITY;
        if (v != -INFINITY) pr[k] = __fmul_rn(attn::exp_cpu(__fsub_rn(v, mx)), inv);
      }
      h[e / 2] = __floats2half2_rn(pr[0], pr[1]);
    }
    uint4* dst = reinterpret_cast<uint4*>(p + c * 16);
    dst[0] = *reinterpret_cast<const uint4*>(&h[0]);
    dst[1] = *reinterpret_cast<const uint4*>(&h[4]);
  }
}

}  // namespace

void softmax(const SoftmaxTile& t, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(t.rows) * t.n_kv_heads;
  if (rows > 0) softmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(t);
}

}  // namespace velo::cuda::prefill
