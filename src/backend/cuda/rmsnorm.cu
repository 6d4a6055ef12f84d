// RMSNorm rows, and the residual add fused with the next norm (one kernel
// family: a CTA per row, a block reduction of the sum of squares).
//
// Numerics as cpu::rmsnorm: squares rounded to float, summed in double (only
// the order of the double sum differs, far below float resolution), mean and
// scale in float (IEEE sqrt and division: this file is built without fast
// math), then y = (x * s) * w. The results are bit-identical to the CPU's but
// for a mean that falls within ~1e-16 of a float rounding boundary.
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/ops.h"

namespace velo::cuda {
namespace {

constexpr int kMaxThreads = 512;

// Sum of `v` over the CTA; every thread gets the total. `red` holds 32 doubles.
// Ends with a barrier, so `red` may be reused by the next call.
__device__ double block_sum(double v, double* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nwarps = blockDim.x >> 5;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = lane < nwarps ? red[lane] : 0.0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  return v;
}

// 1 / sqrt(mean + eps) exactly as the CPU rounds it.
__device__ float inv_rms(double ss, int n, float eps) {
  const float mean = static_cast<float>(ss / n);
  return 1.0f / sqrtf(mean + eps);
}

__device__ double sq4(float4 a) {
  // Each square rounded to float before the double sum, like the CPU.
  return static_cast<double>(a.x * a.x) + static_cast<double>(a.y * a.y) + static_cast<double>(a.z * a.z) +
         static_cast<double>(a.w * a.w);
}

// Rows are read as float4 (VEC: n % 4 == 0 and 16-byte aligned pointers) or as floats.
// An element group is 4 floats (VEC) or 1; group g of row r covers floats g*G .. g*G+G-1.
template <bool VEC> struct Row {
  static constexpr int G = VEC ? 4 : 1;
  __device__ static float4 load(const float* p, int g) {
    if constexpr (VEC) return reinterpret_cast<const float4*>(p)[g];
    else return make_float4(p[g], 0.f, 0.f, 0.f);
  }
  __device__ static void store(float* p, int g, float4 v) {
    if constexpr (VEC) reinterpret_cast<float4*>(p)[g] = v;
    else p[g] = v.x;
  }
};

// Explicitly rounded products and sums: nvcc would otherwise fuse x + (d * s) * d_w
// into an FMA, which the CPU (a separate rmsnorm and add) does not.
__device__ float4 mul4(float4 a, float s) {
  return make_float4(__fmul_rn(a.x, s), __fmul_rn(a.y, s), __fmul_rn(a.z, s), __fmul_rn(a.w, s));
}
__device__ float4 mul4(float4 a, float4 b) {
  return make_float4(__fmul_rn(a.x, b.x), __fmul_rn(a.y, b.y), __fmul_rn(a.z, b.z), __fmul_rn(a.w, b.w));
}
__device__ float4 add4(float4 a, float4 b) {
  return make_float4(__fadd_rn(a.x, b.x), __fadd_rn(a.y, b.y), __fadd_rn(a.z, b.z), __fadd_rn(a.w, b.w));
}

// x, y: [rows][n] (may alias); w: [n] or null. grid = rows, one CTA per row.
template <bool VEC>
__global__ void __launch_bounds__(kMaxThreads) rmsnorm_kernel(const float* x, const float* w, float* y, int n,
                                                              float eps) {
  __shared__ double red[32];
  using R = Row<VEC>;
  const int64_t off = static_cast<int64_t>(blockIdx.x) * n;
  const float* xr = x + off;
  float* yr = y + off;
  const int groups = n / R::G;
  double ss = 0;
  for (int g = threadIdx.x; g < groups; g += blockDim.x) ss += sq4(R::load(xr, g));
  const float s = inv_rms(block_sum(ss, red), n, eps);
  // Each thread rewrites only the groups it read, so x == y is safe.
  for (int g = threadIdx.x; g < groups; g += blockDim.x) {
    float4 v = mul4(R::load(xr, g), s);
    if (w) v = mul4(v, R::load(w, g));
    R::store(yr, g, v);
  }
}

// x: [rows][n] residual stream, updated; d: [rows][n] the block's output; d_w: [n] or null;
// w: [n] or null; y: [rows][n] normed for the next block. grid = rows.
// With d_w: x += rmsnorm(d) * d_w, as cpu::rmsnorm(d, d_w, tmp) then cpu::add(x, tmp).
// No pointer is __restrict__: y may alias d (each thread touches only its own groups,
// and d is fully read before y is written).
template <bool VEC>
__global__ void __launch_bounds__(kMaxThreads) add_rmsnorm_kernel(float* x, const float* d, const float* d_w,
                                                                  const float* w, float* y, int n, float eps) {
  __shared__ double red[32];
  using R = Row<VEC>;
  const int64_t off = static_cast<int64_t>(blockIdx.x) * n;
  float* xr = x + off;
  const float* dr = d + off;
  float* yr = y + off;
  const int groups = n / R::G;
  float sd = 1.0f;  // rms scale of d (post-norm), read only when d_w is set
  if (d_w) {
    double ss = 0;
    for (int g = threadIdx.x; g < groups; g += blockDim.x) ss += sq4(R::load(dr, g));
    sd = inv_rms(block_sum(ss, red), n, eps);
  }
  double ss = 0;
  for (int g = threadIdx.x; g < groups; g += blockDim.x) {
    float4 dv = R::load(dr, g);
    if (d_w) dv = mul4(mul4(dv, sd), R::load(d_w, g));
    const float4 v = add4(R::load(xr, g), dv);
    R::store(xr, g, v);
    ss += sq4(v);
  }
  const float s = inv_rms(block_sum(ss, red), n, eps);
  // Re-reads this thread's own x writes (cached), so registers stay few for any n.
  for (int g = threadIdx.x; g < groups; g += blockDim.x) {
    float4 v = mul4(R::load(xr, g), s);
    if (w) v = mul4(v, R::load(w, g));
    R::store(yr, g, v);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Threads per row: one group each up to kMaxThreads, a multiple of the warp size.
int row_threads(int groups) {
  const int t = (groups + 31) / 32 * 32;
  return t < 32 ? 32 : (t > kMaxThreads ? kMaxThreads : t);
}

}  // namespace

void rmsnorm(const float* x, const float* w, float* y, int64_t rows, int n, float eps, cudaStream_t stream) {
  if (rows <= 0 || n <= 0) return;
  const bool vec = n % 4 == 0 && aligned16(x) && aligned16(y) && (!w || aligned16(w));
  const dim3 grid(static_cast<unsigned>(rows));
  if (vec) rmsnorm_kernel<true><<<grid, row_threads(n / 4), 0, stream>>>(x, w, y, n, eps);
  else rmsnorm_kernel<false><<<grid, row_threads(n), 0, stream>>>(x, w, y, n, eps);
}

void add_rmsnorm(float* x, const float* d, const float* d_w, const float* w, float* y, int64_t rows, int n,
                 float eps, cudaStream_t stream) {
  if (rows <= 0 || n <= 0) return;
  const bool vec = n % 4 == 0 && aligned16(x) && aligned16(d) && aligned16(y) && (!d_w || aligned16(d_w)) &&
                   (!w || aligned16(w));
  const dim3 grid(static_cast<unsigned>(rows));
  if (vec) add_rmsnorm_kernel<true><<<grid, row_threads(n / 4), 0, stream>>>(x, d, d_w, w, y, n, eps);
  else add_rmsnorm_kernel<false><<<grid, row_threads(n), 0, stream>>>(x, d, d_w, w, y, n, eps);
}

}  // namespace velo::cuda
