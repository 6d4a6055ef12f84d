// In-place element-wise kernels: add, add_bias, scale, softcap. Memory bound:
// float4 accesses when the pointers allow, grid-stride loops over any length.
// Numerics as src/backend/cpu/ops.cpp: each result is one IEEE operation (bit
// exact), except softcap's tanh, taken in double and rounded once (correctly
// rounded but for astronomically rare ties; the CPU's tanhf is within 1 ulp).
// Programmatic dependent launches (detail::launch_pdl): each kernel waits for the
// one before it ahead of any access, so its launch overlaps that kernel's tail.
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/matmul_kernels.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/quant_dev.cuh"

namespace velo::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 16384;  // grid-stride beyond this; 16k CTAs fill any GPU

struct AddOp {
  __device__ float operator()(float x, float y) const { return __fadd_rn(x, y); }
};
struct ScaleOp {
  float s;
  __device__ float operator()(float x, float) const { return __fmul_rn(x, s); }
};
// cpu::softcap: tanh(x * (1 / cap)) * cap.
struct SoftcapOp {
  float cap, inv;
  __device__ float operator()(float x, float) const {
    return __fmul_rn(static_cast<float>(tanh(static_cast<double>(__fmul_rn(x, inv)))), cap);
  }
};

template <class Op> __device__ float4 apply4(float4 a, float4 b, const Op& op) {
  return make_float4(op(a.x, b.x), op(a.y, b.y), op(a.z, b.z), op(a.w, b.w));
}

// x[i] = op(x[i], y ? y[i] : 0) for i < n; x: [n], y: [n] or null.
// VEC: x and y 16-byte aligned; groups of 4 first, then the n % 4 tail.
template <bool VEC, class Op>
__global__ void __launch_bounds__(kThreads) map_kernel(float* x, const float* y, int64_t n, Op op) {
  qdev::allow_dependents();  // the next kernel may launch now (it waits for this one)
  qdev::wait_for_inputs();   // the inputs come from the kernel before
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if constexpr (VEC) {
    const int64_t n4 = n / 4;
    float4* x4 = reinterpret_cast<float4*>(x);
    const float4* y4 = reinterpret_cast<const float4*>(y);
    for (int64_t i = tid; i < n4; i += step)
      x4[i] = apply4(x4[i], y4 ? y4[i] : make_float4(0.f, 0.f, 0.f, 0.f), op);
    done = n4 * 4;
  }
  for (int64_t i = done + tid; i < n; i += step) x[i] = op(x[i], y ? y[i] : 0.0f);
}

// x[r][i] += b[i]; x: [rows][n], b: [n]. grid = rows, one CTA per row.
template <bool VEC>
__global__ void __launch_bounds__(kThreads) add_bias_kernel(float* x, const float* b, int n) {
  qdev::allow_dependents();  // the next kernel may launch now (it waits for this one)
  qdev::wait_for_inputs();   // the inputs come from the kernel before
  float* xr = x + static_cast<int64_t>(blockIdx.x) * n;
  if constexpr (VEC) {
    float4* x4 = reinterpret_cast<float4*>(xr);
    const float4* b4 = reinterpret_cast<const float4*>(b);
    for (int i = threadIdx.x; i < n / 4; i += blockDim.x) x4[i] = apply4(x4[i], b4[i], AddOp{});
  } else {
    for (int i = threadIdx.x; i < n; i += blockDim.x) xr[i] = __fadd_rn(xr[i], b[i]);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <class Op> void launch_map(float* x, const float* y, int64_t n, Op op, cudaStream_t stream) {
  if (n <= 0) return;
  const bool vec = aligned16(x) && (!y || aligned16(y));
  const int64_t units = vec ? (n + 3) / 4 : n;
  int64_t blocks = (units + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  const auto grid = static_cast<unsigned>(blocks);
  if (vec) detail::launch_pdl(map_kernel<true, Op>, grid, kThreads, stream, x, y, n, op);
  else detail::launch_pdl(map_kernel<false, Op>, grid, kThreads, stream, x, y, n, op);
}

}  // namespace

void add(float* x, const float* y, int64_t n, cudaStream_t stream) { launch_map(x, y, n, AddOp{}, stream); }

void scale(float* x, float s, int64_t n, cudaStream_t stream) { launch_map(x, nullptr, n, ScaleOp{s}, stream); }

void softcap(float* x, float cap, int64_t n, cudaStream_t stream) {
  launch_map(x, nullptr, n, SoftcapOp{cap, 1.0f / cap}, stream);
}

void add_bias(float* x, const float* b, int64_t rows, int n, cudaStream_t stream) {
  if (rows <= 0 || n <= 0) return;
  const bool vec = n % 4 == 0 && aligned16(x) && aligned16(b);
  const int units = vec ? n / 4 : n;
  int threads = (units + 31) / 32 * 32;
  if (threads > kThreads) threads = kThreads;
  const auto grid = static_cast<unsigned>(rows);
  if (vec) detail::launch_pdl(add_bias_kernel<true>, grid, threads, stream, x, b, n);
  else detail::launch_pdl(add_bias_kernel<false>, grid, threads, stream, x, b, n);
}

}  // namespace velo::cuda
