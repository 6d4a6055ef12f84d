// Paged attention in the CPU backend's exact float order (cpu attention.cpp),
// for decode tokens and short chunks: the GPU's greedy decoding then follows
// the CPU's token for token (see matvec_q32.cu for why closeness is not enough).
//
// One CTA per (token, q head), as the CPU's one task per (token, head):
//  1. q rounded to fp16; each score q.k in the CPU's lanes: with more than one
//     query token in the step (the CPU's "GEMM" order) 16 lanes (index mod 16),
//     else four 16-lane accumulators (index mod 64) combined (a0+a2)+(a1+a3);
//     then _mm512_reduce_add_ps's tree. A half-warp computes one key.
//  2. soft cap, scale; max; exp with the CPU's formula; sums per 16-key chunk
//     (the tree again) added in double in chunk order; p = e * float(1/sum).
//  3. p.V: key kp accumulates fp16(p) * v into lane kp mod 16 (or 64) with one
//     fma chain per (lane, dim), keys in order; the lanes end in the same tree.
// Scores live in the split kernel's score scratch; lane sums in shared memory.
#include <cuda_fp16.h>

#include <cstdint>

#include "backend/cuda/cpu_math.cuh"
#include "backend/cuda/paged_attention.cuh"

namespace velo::cuda::paged {
namespace {

constexpr int kExactThreads = 256;
constexpr int kHalfWarps = kExactThreads / 16;
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ const uint16_t* row_at(const Params& p, const uint16_t* base, const int32_t* bt, int kp,
                                                  int kvh) {
  const int blk = p.bs_shift >= 0 ? kp >> p.bs_shift : kp / p.block_size;
  const int slot = kp - blk * p.block_size;
  return base + ((static_cast<int64_t>(bt[blk]) * p.block_size + slot) * p.n_kv_heads + kvh) * p.head_dim;
}

__device__ __forceinline__ float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }

// Dynamic shared memory: q [head_dim] | lane sums [lanes][head_dim] | chunk sums [ceil(max_ctx / 16)] | scratch [32].
__global__ void __launch_bounds__(kExactThreads) attn_exact(const Params p, bool gemm) {
  extern __shared__ float sm[];
  const int t = blockIdx.x, h = blockIdx.y;
  const int d = p.head_dim, kvh = h / p.group;
  const int lanes = gemm ? 16 : 64;
  float* qf = sm;
  float* accs = qf + d;
  float* csum = accs + lanes * d;
  float* red = csum + (p.max_ctx + 15) / 16;
  const int tid = threadIdx.x, hw = tid >> 4, l = tid & 15;

  const int pos = p.tok_pos[t];
  const int32_t* bt = p.block_tables + static_cast<int64_t>(p.tok_seq[t]) * p.max_blocks;
  const int lo = p.window > 0 ? max(0, pos - p.window + 1) : 0;
  const int first = lo & ~15, off = lo - first, n_kv = pos + 1 - first;
  float* sc = p.scores + (static_cast<int64_t>(t) * p.n_heads + h) * p.max_ctx;

  const float* q = p.q + t * p.q_stride + static_cast<int64_t>(h) * d;
  for (int i = tid; i < d; i += kExactThreads) qf[i] = cpumath::fp16_round(q[i]);
  __syncthreads();

  // 1. Scores, one key per half-warp.
  const int np = d & ~63;
  float mx = -INFINITY;
  for (int j0 = 0; j0 < n_kv; j0 += kHalfWarps) {
    const int j = j0 + hw;
    const bool live = j >= off && j < n_kv;
    const uint16_t* k = row_at(p, p.k, bt, live ? first + j : lo, kvh);
    float s;
    if (gemm) {
      float a = 0.0f;
      for (int i = l; i < d; i += 16) a = __fmaf_rn(h2f(k[i]), qf[i], a);
      s = cpumath::reduce16_lanes(a);
    } else {
      float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int i = 0; i < np; i += 64)
#pragma unroll
        for (int c = 0; c < 4; ++c) a[c] = __fmaf_rn(h2f(k[i + 16 * c + l]), qf[i + 16 * c + l], a[c]);
      double sum = cpumath::reduce16_lanes(__fadd_rn(__fadd_rn(a[0], a[2]), __fadd_rn(a[1], a[3])));
      for (int i = np; i < d; ++i) sum += static_cast<double>(__fmul_rn(qf[i], h2f(k[i])));
      s = static_cast<float>(sum);
    }
    if (p.softcap > 0) s = __fmul_rn(tanhf(__fmul_rn(s, p.inv_cap)), p.softcap);
    s = __fmul_rn(s, p.scale);
    if (l == 0 && j < n_kv) sc[j] = live ? s : -INFINITY;
    if (live) mx = fmaxf(mx, s);
  }
  // Max over the CTA (order-free).
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, o));
  if ((tid & 31) == 0) red[tid >> 5] = mx;
  __syncthreads();
  mx = red[0];
  for (int w = 1; w < kExactThreads / 32; ++w) mx = fmaxf(mx, red[w]);

  float* out = p.out + t * p.q_stride + static_cast<int64_t>(h) * d;
  if (mx == -INFINITY) {  // nothing visible: the CPU's softmax gives all zeros, so does p.V
    for (int i = tid; i < d; i += kExactThreads) out[i] = 0.0f;
    return;
  }
  // 2. exp per 16-key chunk (a half-warp each), the chunk sums, then their double sum in order.
  const int chunks = (n_kv + 15) / 16;
  for (int c0 = 0; c0 < chunks; c0 += kHalfWarps) {  // same trip count for every thread (shuffles)
    const int c = c0 + hw, j = 16 * c + l;
    const float e = j < n_kv ? cpumath::exp_ref(__fsub_rn(sc[j], mx)) : 0.0f;
    if (j < n_kv) sc[j] = e;
    const float s = cpumath::reduce16_lanes(e);
    if (l == 0 && c < chunks) csum[c] = s;
  }
  __syncthreads();
  if (tid == 0) {
    double sum = 0;
    for (int c = 0; c < chunks; ++c) sum += static_cast<double>(csum[c]);
    red[0] = static_cast<float>(1.0 / sum);
  }
  __syncthreads();
  const float inv = red[0];

  // 3. p.V: item = (lane, 4 dims); the lane's keys kp ≡ lane (mod lanes), in order.
  const int quads = d / 4;
  for (int item = tid; item < lanes * quads; item += kExactThreads) {
    const int lane = item / quads, i0 = 4 * (item - lane * quads);
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    int kp = lo + ((lane - lo) & (lanes - 1));
    for (; kp <= pos; kp += lanes) {
      const float w = cpumath::fp16_round(__fmul_rn(sc[kp - first], inv));
      if (w == 0.0f) continue;
      const uint2 raw = *reinterpret_cast<const uint2*>(row_at(p, p.v, bt, kp, kvh) + i0);
      a0 = __fmaf_rn(h2f(raw.x & 0xFFFF), w, a0);
      a1 = __fmaf_rn(h2f(raw.x >> 16), w, a1);
      a2 = __fmaf_rn(h2f(raw.y & 0xFFFF), w, a2);
      a3 = __fmaf_rn(h2f(raw.y >> 16), w, a3);
    }
    float* dst = accs + lane * d + i0;
    dst[0] = a0;
    dst[1] = a1;
    dst[2] = a2;
    dst[3] = a3;
  }
  __syncthreads();
  for (int i = tid; i < d; i += kExactThreads) {
    float lane[16];
#pragma unroll
    for (int x = 0; x < 16; ++x)
      lane[x] = gemm ? accs[x * d + i]
                     : __fadd_rn(__fadd_rn(accs[x * d + i], accs[(32 + x) * d + i]),
                                 __fadd_rn(accs[(16 + x) * d + i], accs[(48 + x) * d + i]));
    out[i] = cpumath::reduce16(lane);
  }
}

size_t exact_smem(const Params& p, bool gemm) {
  const int lanes = gemm ? 16 : 64;
  return (static_cast<size_t>(p.head_dim) * (lanes + 1) + (p.max_ctx + 15) / 16 + 32) * sizeof(float);
}

}  // namespace

bool launch_exact(const Params& p, bool gemm, int T, cudaStream_t stream) {
  if (!p.scores || p.head_dim % 16 != 0) return false;
  static int max_smem = [] {
    int dev = 0, v = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    cudaFuncSetAttribute(attn_exact, cudaFuncAttributeMaxDynamicSharedMemorySize, v);
    return v;
  }();
  const size_t smem = exact_smem(p, gemm);
  if (smem > static_cast<size_t>(max_smem)) return false;
  attn_exact<<<dim3(static_cast<unsigned>(T), static_cast<unsigned>(p.n_heads)), kExactThreads, smem, stream>>>(p,
                                                                                                              gemm);
  return true;
}

}  // namespace velo::cuda::paged
