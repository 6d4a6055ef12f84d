// RMSNorm rows, and the residual add fused with the next norm (one kernel
// family: a CTA per row, a block reduction of the sum of squares).
//
// Numerics as cpu::rmsnorm: squares rounded to float, summed in double (only
// the order of the double sum differs, far below float resolution), mean and
// scale in float (IEEE sqrt and division: this file is built without fast
// math), then y = (x * s) * w. The results are bit-identical to the CPU's but
// for a mean that falls within ~1e-16 of a float rounding boundary.
//
// Every kernel here is a programmatic dependent launch (detail::launch_pdl): it
// waits for the kernel before it ahead of any access and lets the next one launch
// at once, so that launch overlaps this kernel (sm_90+; plain launches elsewhere).
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/act_quant_dev.cuh"
#include "backend/cuda/matmul_kernels.h"
#include "backend/cuda/norm_act.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/quant_dev.cuh"

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

using Kind = Matmul::ActPrep::Kind;

// Where the conversion of y goes (detail::act_q8_view of the Matmul's scratch for all rows).
struct ActDst {
  int8_t* qs = nullptr;
  float* d = nullptr;
  float* s = nullptr;        // Q8
  int32_t* bsum = nullptr;   // Q8_K
  uint16_t* half = nullptr;  // F16 / BF16: [rows][n]
};

// Row blockIdx.x of y (just written by this CTA) converted as the standalone kernels do:
// a warp per Q8 / Q8_K block, each element read back after the barrier.
template <Kind ACT>
__device__ void convert_row(const float* yr, int n, const ActDst& a) {
  __syncthreads();  // the CTA's y writes are visible to all its threads
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  if constexpr (ACT == Kind::kQ8K) {
    const int nb = n / QK_K;
    for (int j = warp; j < nb; j += nwarps) {
      float v[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = yr[j * QK_K + 8 * lane + i];
      qdev::quantize_q8k_block(v, static_cast<int64_t>(blockIdx.x) * nb + j, lane, a.qs, a.d, a.bsum);
    }
  } else if constexpr (ACT == Kind::kQ8) {
    const int nb = n / 32;
    for (int j = warp; j < nb; j += nwarps)
      qdev::quantize_q8_block(yr[j * 32 + lane], static_cast<int64_t>(blockIdx.x) * nb + j, lane, a.qs, a.d, a.s);
  } else {
    uint16_t* out = a.half + static_cast<int64_t>(blockIdx.x) * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = qdev::to_half_bits(yr[i], ACT == Kind::kBF16);
  }
}

// x, y: [rows][n] (may alias); w: [n] or null. grid = rows, one CTA per row.
template <bool VEC>
__global__ void __launch_bounds__(kMaxThreads) rmsnorm_kernel(const float* x, const float* w, float* y, int n,
                                                              float eps) {
  qdev::allow_dependents();
  qdev::wait_for_inputs();  // x comes from the kernel before
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
// ACT (add_rmsnorm_act): the conversion of y for the next matmul group (Matmul::ActPrep::Kind),
// written after y.
// Qualified names: nvcc's generated host-side launch code needs them for the default argument.
template <bool VEC, Matmul::ActPrep::Kind ACT = Matmul::ActPrep::Kind::kNone>
__global__ void __launch_bounds__(kMaxThreads) add_rmsnorm_kernel(float* x, const float* d, const float* d_w,
                                                                  const float* w, float* y, int n, float eps,
                                                                  ActDst act = {}) {
  qdev::allow_dependents();  // the next kernel (a matvec) may launch and load weights now
  qdev::wait_for_inputs();   // d (and x) come from the kernels before
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
  if constexpr (ACT != Kind::kNone) convert_row<ACT>(yr, n, act);
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
  const auto rows_u = static_cast<unsigned>(rows);
  if (vec) detail::launch_pdl(rmsnorm_kernel<true>, rows_u, row_threads(n / 4), stream, x, w, y, n, eps);
  else detail::launch_pdl(rmsnorm_kernel<false>, rows_u, row_threads(n), stream, x, w, y, n, eps);
}

void add_rmsnorm(float* x, const float* d, const float* d_w, const float* w, float* y, int64_t rows, int n,
                 float eps, cudaStream_t stream) {
  if (rows <= 0 || n <= 0) return;
  const bool vec = n % 4 == 0 && aligned16(x) && aligned16(d) && aligned16(y) && (!d_w || aligned16(d_w)) &&
                   (!w || aligned16(w));
  const auto rows_u = static_cast<unsigned>(rows);
  if (vec)
    detail::launch_pdl(add_rmsnorm_kernel<true>, rows_u, row_threads(n / 4), stream, x, d, d_w, w, y, n, eps, ActDst{});
  else
    detail::launch_pdl(add_rmsnorm_kernel<false>, rows_u, row_threads(n), stream, x, d, d_w, w, y, n, eps, ActDst{});
}

namespace {

template <bool VEC, Kind ACT>
void launch_add_rmsnorm_act(float* x, const float* d, const float* d_w, const float* w, float* y, int64_t rows,
                            int n, float eps, const ActDst& dst, cudaStream_t stream) {
  detail::launch_pdl(add_rmsnorm_kernel<VEC, ACT>, static_cast<unsigned>(rows),
                     static_cast<unsigned>(row_threads(VEC ? n / 4 : n)), stream, x, d, d_w, w, y, n, eps, dst);
}

template <bool VEC>
void add_rmsnorm_act_vec(float* x, const float* d, const float* d_w, const float* w, float* y, int64_t rows, int n,
                         float eps, const Matmul::ActPrep& act, cudaStream_t stream) {
  ActDst dst;
  if (act.kind == Kind::kQ8 || act.kind == Kind::kQ8K) {
    const auto f = act.kind == Kind::kQ8 ? detail::ActQuant::kQ8 : detail::ActQuant::kQ8K;
    const detail::ActQ8View v = detail::act_q8_view(f, act.base, rows, n);
    dst = {const_cast<int8_t*>(v.qs), const_cast<float*>(v.d), const_cast<float*>(v.s), const_cast<int32_t*>(v.bsum),
           nullptr};
  } else {
    dst.half = static_cast<uint16_t*>(act.base);
  }
  switch (act.kind) {
    case Kind::kQ8: return launch_add_rmsnorm_act<VEC, Kind::kQ8>(x, d, d_w, w, y, rows, n, eps, dst, stream);
    case Kind::kQ8K: return launch_add_rmsnorm_act<VEC, Kind::kQ8K>(x, d, d_w, w, y, rows, n, eps, dst, stream);
    case Kind::kF16: return launch_add_rmsnorm_act<VEC, Kind::kF16>(x, d, d_w, w, y, rows, n, eps, dst, stream);
    case Kind::kBF16: return launch_add_rmsnorm_act<VEC, Kind::kBF16>(x, d, d_w, w, y, rows, n, eps, dst, stream);
    case Kind::kNone: break;
  }
}

}  // namespace

void add_rmsnorm_act(float* x, const float* d, const float* d_w, const float* w, float* y, int64_t rows, int n,
                     float eps, const Matmul::ActPrep& act, cudaStream_t stream) {
  if (act.kind == Kind::kNone) return add_rmsnorm(x, d, d_w, w, y, rows, n, eps, stream);
  if (rows <= 0 || n <= 0) return;
  const bool vec = n % 4 == 0 && aligned16(x) && aligned16(d) && aligned16(y) && (!d_w || aligned16(d_w)) &&
                   (!w || aligned16(w));
  if (vec) add_rmsnorm_act_vec<true>(x, d, d_w, w, y, rows, n, eps, act, stream);
  else add_rmsnorm_act_vec<false>(x, d, d_w, w, y, rows, n, eps, act, stream);
}

}  // namespace velo::cuda
