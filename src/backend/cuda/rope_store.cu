// The decode step's rope(q), rope(k), query pre-scale and kv_store in one launch
// (ops.h rope_store): four small kernels, and the gaps between them, become one.
//
// Every element goes through exactly the operations of the separate kernels, in
// their order: the rotation is rope.cu's (the host-built cos/sin table, the CPU's
// two FMAs), the scale scale()'s single rounded product, the store kv_store.cu's
// fp16 round to nearest even. Hence the same bits.
//
// Work unit: a pair of elements of one head row. Per token: n_heads * head_dim/2
// units of q, n_kv_heads * head_dim/2 of k, then kv_row/2 of v. A q/k unit j <
// n_rot/2 is a rotated pair (adjacent 2j, 2j+1, or neox j, j + n_rot/2); the others
// cover the unrotated tail two elements at a time.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/matmul_kernels.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/quant_dev.cuh"

namespace velo::cuda {
namespace {

constexpr int kThreads = 256;

struct RopeStoreParams {
  const int32_t* pos;
  const int32_t* slots;
  float* q;
  float* k;
  const float* v;
  uint16_t* kc;
  uint16_t* vc;
  const float* table;  // null: no rotation
  int64_t q_stride, kv_stride;
  int n_heads, n_kv_heads, head_dim, n_rot, max_pos;
  float q_scale;
  bool scale_q, neox;
};

__device__ uint16_t half_bits(float f) { return __half_as_ushort(__float2half_rn(f)); }

// grid = T * chunks: CTA c serves token c / chunks, units (c % chunks) * kThreads + thread.
__global__ void __launch_bounds__(kThreads) rope_store_kernel(RopeStoreParams p, int chunks) {
  qdev::allow_dependents();  // attention may launch now; it waits for this kernel to finish
  qdev::wait_for_inputs();   // q, k, v come from the kernels before
  const int t = blockIdx.x / chunks;
  const int hh = p.head_dim / 2, half = p.n_rot / 2;
  const int q_units = p.n_heads * hh, k_units = p.n_kv_heads * hh, row = p.n_kv_heads * p.head_dim;
  const int u = (blockIdx.x - t * chunks) * kThreads + threadIdx.x;
  if (u >= q_units + k_units + row / 2) return;
  const int32_t slot = p.slots[t];

  if (u >= q_units + k_units) {  // a pair of v
    if (slot < 0) return;
    const int e = 2 * (u - q_units - k_units);
    const float* vs = p.v + static_cast<int64_t>(t) * p.kv_stride;
    uint16_t* vd = p.vc + static_cast<int64_t>(slot) * row;
    vd[e] = half_bits(vs[e]);
    vd[e + 1] = half_bits(vs[e + 1]);
    return;
  }
  const bool is_q = u < q_units;
  const int w = is_q ? u : u - q_units;
  const int h = w / hh, j = w - h * hh;
  float* x = (is_q ? p.q + static_cast<int64_t>(t) * p.q_stride : p.k + static_cast<int64_t>(t) * p.kv_stride) +
             static_cast<int64_t>(h) * p.head_dim;
  int ia, ib;
  float a, b;
  if (j < half) {  // rope.cu's rotation
    ia = p.neox ? j : 2 * j;
    ib = p.neox ? j + half : 2 * j + 1;
    const int pp = min(max(p.pos[t], 0), p.max_pos - 1);
    const float* cs = p.table + static_cast<int64_t>(pp) * p.n_rot;
    const float c = cs[2 * j], s = cs[2 * j + 1];
    const float a0 = x[ia], b0 = x[ib];
    a = __fmaf_rn(a0, c, -__fmul_rn(b0, s));
    b = __fmaf_rn(a0, s, __fmul_rn(b0, c));
  } else {  // past n_rot: unrotated
    ia = p.n_rot + 2 * (j - half);
    ib = ia + 1;
    a = x[ia];
    b = x[ib];
    if (is_q && !p.scale_q) return;  // nothing to write
  }
  if (is_q) {
    if (p.scale_q) a = __fmul_rn(a, p.q_scale), b = __fmul_rn(b, p.q_scale);
    x[ia] = a;
    x[ib] = b;
    return;
  }
  if (j < half) x[ia] = a, x[ib] = b;  // k stays rotated in place, as rope() leaves it
  if (slot < 0) return;
  uint16_t* kd = p.kc + static_cast<int64_t>(slot) * row + static_cast<int64_t>(h) * p.head_dim;
  kd[ia] = half_bits(a);
  kd[ib] = half_bits(b);
}

}  // namespace

void rope_store(const RopeArgs& a, const int32_t* pos, float* q, int n_heads, int64_t q_stride, float q_scale,
                float* k, const float* v, int64_t kv_stride, const KvLayer& kv, const int32_t* slots, int64_t T,
                cudaStream_t stream) {
  if (T <= 0 || kv.head_dim <= 0) return;
  if (kv.head_dim % 2 != 0) {  // no pairs: the separate kernels
    rope(a, pos, q, T, n_heads, kv.head_dim, q_stride, stream);
    rope(a, pos, k, T, kv.n_kv_heads, kv.head_dim, kv_stride, stream);
    const int64_t q_row = static_cast<int64_t>(n_heads) * kv.head_dim;
    if (q_scale != 1.0f)
      for (int64_t t = 0; t < T; ++t) scale(q + t * q_stride, q_scale, q_row, stream);
    kv_store(kv, slots, k, v, T, kv_stride, stream);
    return;
  }
  const bool rot = a.n_rot >= 2 && a.table;  // rope() does nothing otherwise
  RopeStoreParams p{};
  p.pos = pos;
  p.slots = slots;
  p.q = q;
  p.k = k;
  p.v = v;
  p.kc = kv.k;
  p.vc = kv.v;
  p.table = rot ? a.table : nullptr;
  p.q_stride = q_stride;
  p.kv_stride = kv_stride;
  p.n_heads = n_heads;
  p.n_kv_heads = kv.n_kv_heads;
  p.head_dim = kv.head_dim;
  p.n_rot = rot ? a.n_rot : 0;
  p.max_pos = a.max_pos;
  p.q_scale = q_scale;
  p.scale_q = q_scale != 1.0f;
  p.neox = a.neox;
  const int64_t units = static_cast<int64_t>(n_heads + 2 * kv.n_kv_heads) * (kv.head_dim / 2);  // q, k, v
  const int chunks = static_cast<int>((units + kThreads - 1) / kThreads);
  detail::launch_pdl(rope_store_kernel, static_cast<unsigned>(T * chunks), kThreads, stream, p, chunks);
}

}  // namespace velo::cuda
