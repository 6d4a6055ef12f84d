// PrefillAttention's data movement: paged K/V + f32 q -> contiguous fp16
// GEMM operands, and the per-kv-head GEMM output -> the interleaved out rows.
#include <cuda_fp16.h>

#include "backend/cuda/attention_prefill_kernels.h"

namespace velo::cuda::prefill {
namespace {

constexpr int kThreads = 256;

struct GatherArgs {
  const uint16_t* k;
  const uint16_t* v;
  const int32_t* table;
  int block_size, n_kv_heads, head_dim, k0, k1, ctx_stride;
  const float* q;
  int64_t q_stride;
  int n, n_heads, group;
  uint16_t* qh;  // [n_kv_heads][n][group][head_dim]
  uint16_t* kc;  // [n_kv_heads][ctx_stride][head_dim]
  uint16_t* vc;
};

// One thread per 16-byte piece: first the K/V pieces (key, kv head, piece),
// then the q pieces (token, head, piece); consecutive threads read consecutive bytes.
__global__ void __launch_bounds__(kThreads) gather_kernel(const GatherArgs a) {
  const int pieces = a.head_dim / 8;
  int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t kv_items = static_cast<int64_t>(a.k1 - a.k0) * a.n_kv_heads * pieces;
  if (i < kv_items) {
    const int c = static_cast<int>(i % pieces);
    const int64_t rest = i / pieces;
    const int kvh = static_cast<int>(rest % a.n_kv_heads);
    const int key = a.k0 + static_cast<int>(rest / a.n_kv_heads);
    const int blk = key / a.block_size, slot = key - blk * a.block_size;
    const int64_t src =
        ((static_cast<int64_t>(__ldg(a.table + blk)) * a.block_size + slot) * a.n_kv_heads + kvh) * a.head_dim + c * 8;
    const int64_t dst = (static_cast<int64_t>(kvh) * a.ctx_stride + key) * a.head_dim + c * 8;
    *reinterpret_cast<uint4*>(a.kc + dst) = __ldg(reinterpret_cast<const uint4*>(a.k + src));
    *reinterpret_cast<uint4*>(a.vc + dst) = __ldg(reinterpret_cast<const uint4*>(a.v + src));
    return;
  }
  i -= kv_items;
  if (i >= static_cast<int64_t>(a.n) * a.n_heads * pieces) return;
  const int c = static_cast<int>(i % pieces);
  const int64_t rest = i / pieces;
  const int h = static_cast<int>(rest % a.n_heads);
  const int t = static_cast<int>(rest / a.n_heads);
  const float* src = a.q + t * a.q_stride + static_cast<int64_t>(h) * a.head_dim + c * 8;
  uint4 packed;
  __half2* hp = reinterpret_cast<__half2*>(&packed);
#pragma unroll
  for (int e = 0; e < 4; ++e) hp[e] = __floats2half2_rn(src[2 * e], src[2 * e + 1]);  // round to nearest even
  const int kvh = h / a.group, g = h - kvh * a.group;
  const int64_t dst = ((static_cast<int64_t>(kvh) * a.n + t) * a.group + g) * a.head_dim + c * 8;
  *reinterpret_cast<uint4*>(a.qh + dst) = packed;
}

// One thread per V floats (V = 4 when out rows allow 16-byte stores, else 1).
template <int V>
__global__ void __launch_bounds__(kThreads)
    scatter_kernel(const float* o, int n, int n_heads, int group, int head_dim, float* out, int64_t q_stride) {
  const int64_t i = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) * V;
  const int64_t row = static_cast<int64_t>(n_heads) * head_dim;
  if (i >= n * row) return;
  const int t = static_cast<int>(i / row);
  const int hd = static_cast<int>(i - t * row);
  const int h = hd / head_dim, d = hd - h * head_dim;
  const int kvh = h / group, g = h - kvh * group;
  const float* src = o + ((static_cast<int64_t>(kvh) * n + t) * group + g) * head_dim + d;
  if constexpr (V == 4)
    *reinterpret_cast<float4*>(out + t * q_stride + hd) = *reinterpret_cast<const float4*>(src);
  else
    out[t * q_stride + hd] = *src;
}

unsigned blocks_for(int64_t items) { return static_cast<unsigned>((items + kThreads - 1) / kThreads); }

}  // namespace

void gather(const KvLayer& kv, const int32_t* block_table, int k0, int k1, int ctx_stride, const float* q,
            int64_t q_stride, int n, int n_heads, uint16_t* qh, uint16_t* kc, uint16_t* vc, cudaStream_t stream) {
  const GatherArgs a{kv.k,  kv.v,    block_table, kv.block_size, kv.n_kv_heads,           kv.head_dim,
                     k0,    k1,      ctx_stride,  q,             q_stride,                n,
                     n_heads, n_heads / kv.n_kv_heads, qh,       kc,                      vc};
  const int pieces = kv.head_dim / 8;
  const int64_t items = (static_cast<int64_t>(k1 - k0) * kv.n_kv_heads + static_cast<int64_t>(n) * n_heads) * pieces;
  if (items > 0) gather_kernel<<<blocks_for(items), kThreads, 0, stream>>>(a);
}

void scatter(const float* o, int n, int n_heads, int n_kv_heads, int head_dim, float* out, int64_t q_stride,
             cudaStream_t stream) {
  const int64_t items = static_cast<int64_t>(n) * n_heads * head_dim;
  if (items <= 0) return;
  const int group = n_heads / n_kv_heads;
  if (reinterpret_cast<uintptr_t>(out) % 16 == 0 && q_stride % 4 == 0)  // head_dim % 16 == 0 already
    scatter_kernel<4><<<blocks_for(items / 4), kThreads, 0, stream>>>(o, n, n_heads, group, head_dim, out, q_stride);
  else
    scatter_kernel<1><<<blocks_for(items), kThreads, 0, stream>>>(o, n, n_heads, group, head_dim, out, q_stride);
}

}  // namespace velo::cuda::prefill
