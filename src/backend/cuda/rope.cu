// Rotary position embedding, in place, for T tokens of n_heads heads.
//
// The cos/sin of every (position, pair) come from a table that the host fills
// with cpu::rope_cos_sin itself (RopeTable), so the angles and the libm cosf/
// sinf roundings are the CPU's by construction; the rotation is the CPU's two
// FMAs (cpu ops.cpp rotate). Hence bit-identical to cpu::rope_apply.
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/cuda/matmul_kernels.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/quant_dev.cuh"

namespace velo::cuda {
namespace {

constexpr int kThreads = 128;

// x: token t's heads at x + t*row_stride (head h at + h*head_dim); pos: [T];
// table: [max_pos][n_rot] (cos, sin of pair i at 2i, 2i+1). grid = T.
__global__ void __launch_bounds__(kThreads)
    rope_kernel(const int32_t* pos, float* x, int n_heads, int head_dim, int64_t row_stride, int n_rot,
                const float* table, int max_pos, bool neox) {
  qdev::allow_dependents();  // the next kernel may launch now (it waits for this one)
  qdev::wait_for_inputs();   // the inputs come from the kernel before
  const int half = n_rot / 2;
  const int t = blockIdx.x;
  const int p = min(max(pos[t], 0), max_pos - 1);  // plans are validated; never read out of bounds
  const float* cs = table + static_cast<int64_t>(p) * n_rot;
  float* xt = x + static_cast<int64_t>(t) * row_stride;
  const int pairs = n_heads * half;
  for (int k = threadIdx.x; k < pairs; k += blockDim.x) {
    const int h = k / half, i = k - h * half;
    float* v = xt + static_cast<int64_t>(h) * head_dim;
    const int ia = neox ? i : 2 * i, ib = neox ? i + half : 2 * i + 1;
    const float c = cs[2 * i], s = cs[2 * i + 1];
    const float a = v[ia], b = v[ib];
    v[ia] = __fmaf_rn(a, c, -__fmul_rn(b, s));
    v[ib] = __fmaf_rn(a, s, __fmul_rn(b, c));
  }
}

}  // namespace

uint64_t RopeTable::bytes(const cpu::RopeParams& p, int max_pos) {
  if (p.n_rot < 2 || max_pos <= 0) return 0;
  return static_cast<uint64_t>(p.n_rot) * static_cast<uint64_t>(max_pos) * sizeof(float);
}

Result<RopeTable> RopeTable::build(const cpu::RopeParams& p, int max_pos) {
  RopeTable t;
  t.args_.n_rot = p.n_rot;
  t.args_.neox = p.layout == cpu::RopeLayout::Neox;
  t.args_.max_pos = max_pos;
  const uint64_t n = bytes(p, max_pos) / sizeof(float);
  if (n == 0) return Result<RopeTable>(std::move(t));
  std::vector<float> host(n);
  for (int pos = 0; pos < max_pos; ++pos) cpu::rope_cos_sin(p, pos, &host[static_cast<size_t>(pos) * p.n_rot]);
  VELO_ASSIGN_OR_RETURN(t.buf_, DeviceBuffer::alloc(n * sizeof(float)));
  VELO_CUDA_TRY(cudaMemcpy(t.buf_.get(), host.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  t.args_.table = t.buf_.get<float>();
  return Result<RopeTable>(std::move(t));
}

void rope(const RopeArgs& a, const int32_t* pos, float* x, int64_t T, int n_heads, int head_dim,
          int64_t row_stride, cudaStream_t stream) {
  if (T <= 0 || n_heads <= 0 || a.n_rot < 2 || !a.table) return;
  // A programmatic dependent launch: the kernel waits for the one before it ahead of any access.
  detail::launch_pdl(rope_kernel, static_cast<unsigned>(T), kThreads, stream, pos, x, n_heads, head_dim, row_stride,
                     a.n_rot, a.table, a.max_pos, a.neox);
}

}  // namespace velo::cuda
