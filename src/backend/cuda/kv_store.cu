// Writes T tokens' K and V rows into the paged fp16 cache: one CTA per token,
// f32 -> fp16 round to nearest even (bit-identical to cpu::to_f16).
// A negative slot skips its token (room for padded batches; the CPU has no such case).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/matmul_kernels.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/quant_dev.cuh"

namespace velo::cuda {
namespace {

constexpr int kThreads = 256;

__device__ uint32_t half_bits(float f) { return __half_as_ushort(__float2half_rn(f)); }

// Four halves, little-endian: element 0 in the low 16 bits.
__device__ uint2 to_half4(float4 f) {
  return make_uint2(half_bits(f.x) | half_bits(f.y) << 16, half_bits(f.z) | half_bits(f.w) << 16);
}

// kc, vc: [slots][row] fp16 bits; k, v: token t's row at + t*stride; slots: [T]. grid = T.
// VEC: row % 4 == 0, stride % 4 == 0, k and v 16-byte aligned, kc and vc 8-byte aligned.
template <bool VEC>
__global__ void __launch_bounds__(kThreads) kv_store_kernel(uint16_t* __restrict__ kc, uint16_t* __restrict__ vc,
                                                            const int32_t* __restrict__ slots,
                                                            const float* __restrict__ k,
                                                            const float* __restrict__ v, int row, int64_t stride) {
  qdev::allow_dependents();  // the next kernel may launch now (it waits for this one)
  qdev::wait_for_inputs();   // the inputs come from the kernel before
  const int t = blockIdx.x;
  const int32_t slot = slots[t];
  if (slot < 0) return;
  const float* ks = k + static_cast<int64_t>(t) * stride;
  const float* vs = v + static_cast<int64_t>(t) * stride;
  uint16_t* kd = kc + static_cast<int64_t>(slot) * row;
  uint16_t* vd = vc + static_cast<int64_t>(slot) * row;
  if constexpr (VEC) {
    for (int i = threadIdx.x; i < row / 4; i += blockDim.x) {
      reinterpret_cast<uint2*>(kd)[i] = to_half4(reinterpret_cast<const float4*>(ks)[i]);
      reinterpret_cast<uint2*>(vd)[i] = to_half4(reinterpret_cast<const float4*>(vs)[i]);
    }
  } else {
    for (int i = threadIdx.x; i < row; i += blockDim.x) {
      kd[i] = static_cast<uint16_t>(half_bits(ks[i]));
      vd[i] = static_cast<uint16_t>(half_bits(vs[i]));
    }
  }
}

bool aligned(const void* p, uintptr_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; }

}  // namespace

void kv_store(const KvLayer& kv, const int32_t* slots, const float* k, const float* v, int64_t T, int64_t stride,
              cudaStream_t stream) {
  const int row = kv.n_kv_heads * kv.head_dim;
  if (T <= 0 || row <= 0) return;
  const bool vec = row % 4 == 0 && stride % 4 == 0 && aligned(k, 16) && aligned(v, 16) && aligned(kv.k, 8) &&
                   aligned(kv.v, 8);
  const int units = vec ? row / 4 : row;
  int threads = (units + 31) / 32 * 32;
  if (threads > kThreads) threads = kThreads;
  const auto grid = static_cast<unsigned>(T);  // programmatic dependent launch, as rope()
  if (vec) detail::launch_pdl(kv_store_kernel<true>, grid, threads, stream, kv.k, kv.v, slots, k, v, row, stride);
  else detail::launch_pdl(kv_store_kernel<false>, grid, threads, stream, kv.k, kv.v, slots, k, v, row, stride);
}

}  // namespace velo::cuda
