// Private to the CUDA matmul (matmul.cu and the kernels it launches): the
// device activation formats and the launchers of each kernel file. Every
// launcher only enqueues on `stream`; shapes are validated by Matmul::run.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace velo::cuda::detail {

// Quantized activations of m token rows of `cols` elements (device arrays):
//  - Q8 (the 32-element weight types): qs = round-half-even(x * 127/amax) per 32,
//    d = fp16(amax/127), s = fp16(d_unrounded * Σqs): cpu::detail::ActQ8 bit for bit.
//  - Q8_K (the K-quants): as cpu block_q8_K: d per 256, bsum = Σqs per 16.
struct ActQ8View {
  const int8_t* qs = nullptr;    // [m][cols]
  const float* d = nullptr;      // [m][cols/32] (Q8) or [m][cols/256] (Q8_K)
  const float* s = nullptr;      // [m][cols/32] (Q8 only)
  const int32_t* bsum = nullptr; // [m][cols/16] (Q8_K only)
};

enum class ActQuant : uint8_t { kQ8, kQ8K };

// The format the matvec of weight type t quantizes activations to.
inline ActQuant act_quant_of(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K: return ActQuant::kQ8K;
    default: return ActQuant::kQ8;
  }
}

// Device bytes of quantized activations for m rows of cols (each array 256-byte aligned),
// and the view of such a buffer at `base`.
uint64_t act_q8_bytes(ActQuant f, int64_t m, int64_t cols);
ActQ8View act_q8_view(ActQuant f, void* base, int64_t m, int64_t cols);

// Launches a matvec kernel with programmatic dependent launch: it may start while the
// kernel before it (the activation conversion) still runs, load its first weights,
// and wait in wait_for_inputs() (quant_dev.cuh) before reading x or writing y.
// Whether the current device has programmatic dependent launch (compute capability >= 9).
inline bool pdl_supported() {
  static const bool yes = [] {
    int dev = 0, major = 0;
    return cudaGetDevice(&dev) == cudaSuccess &&
           cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9;
  }();
  return yes;
}

template <class... Params, class... Args>
void launch_pdl(void (*kernel)(Params...), unsigned grid, unsigned block, cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(grid);
  cfg.blockDim = dim3(block);
  cfg.stream = stream;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = pdl_supported() ? 1 : 0;  // sm_90 and newer
  cudaLaunchKernelEx(&cfg, kernel, static_cast<Params>(args)...);
}

// ---- grouped matvec calls ---------------------------------------------------
// Several matrices with the same cols on the same activations (Q/K/V, gate/up) in one
// launch: CTAs [cta_begin[i], cta_begin[i+1]) serve matrix i (a block-uniform choice),
// so the group pays one activation conversion, one ramp and one tail instead of n.
// Each CTA runs exactly the code of the single-matrix launch, so every output is bit
// for bit what a separate call gives.
constexpr int kMaxGroup = 4;
struct MatvecItem {
  GgmlType type = GgmlType::F32;
  const void* w = nullptr;
  int64_t rows = 0;
  float* y = nullptr;
  int64_t y_stride = 0;
};
// Kernel argument (by value): the items with their first CTA and which of the kernel's
// types (sel: index into its type list) each one is.
struct MvGroup {
  int n = 0;
  int cta_begin[kMaxGroup + 1] = {};  // cta_begin[n] = grid size
  int sel[kMaxGroup] = {};
  const uint8_t* w[kMaxGroup] = {};
  int rows[kMaxGroup] = {};
  float* y[kMaxGroup] = {};
  int64_t y_stride[kMaxGroup] = {};
};
// Items [0, n) at R rows per CTA; sel_of(type) picks each item's kernel type.
template <class SelOf>
MvGroup make_group(const MatvecItem* items, int n, int rows_per_cta, SelOf sel_of) {
  MvGroup g;
  g.n = n;
  int ctas = 0;
  for (int i = 0; i < n; ++i) {
    g.cta_begin[i] = ctas;
    g.sel[i] = sel_of(items[i].type);
    g.w[i] = static_cast<const uint8_t*>(items[i].w);
    g.rows[i] = static_cast<int>(items[i].rows);
    g.y[i] = items[i].y;
    g.y_stride[i] = items[i].y_stride;
    ctas += static_cast<int>((items[i].rows + rows_per_cta - 1) / rows_per_cta);
  }
  for (int i = n; i <= kMaxGroup; ++i) g.cta_begin[i] = ctas;
  return g;
}

// ---- quantize_act.cu ------------------------------------------------------
// x: [m][cols] f32 -> the quantized view's arrays (written through `base` = act_q8_view's base).
void quantize_act(ActQuant f, const float* x, int64_t m, int64_t cols, void* base, cudaStream_t stream);
// out[i] = fp16 or bf16 bits of x[i] (round to nearest even), i < n.
void round_act_half(const float* x, int64_t n, bool bf16, uint16_t* out, cudaStream_t stream);

// ---- matvec_quant.cu ------------------------------------------------------
// y[t * y_stride + r] = dot(W row r, x token t), m <= 8, for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q4_K, Q5_K, Q6_K. w: rows × row_bytes(t, cols), 16-byte aligned; x quantized per act_quant_of(t).
// exact_order: the 32-element types run matvec_q32 (the CPU's float order, bit for bit).
void matvec_quant(GgmlType t, const void* w, int64_t rows, int64_t cols, const ActQ8View& x, int64_t m,
                  float* y, int64_t y_stride, cudaStream_t stream, bool exact_order = false);
// Items of one activation format (act_quant_of), same cols, rows > 0, n <= kMaxGroup: one
// launch for K-quants of any mix or any one type, else one launch per item (on the same x).
void matvec_quant_group(const MatvecItem* items, int n, int64_t cols, const ActQ8View& x, int64_t m,
                        cudaStream_t stream, bool exact_order = false);

// ---- matvec_q32.cu -------------------------------------------------------
// matvec_quant for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: bit-identical to the CPU backend's tile kernels.
void matvec_q32(GgmlType t, const void* w, int64_t rows, int64_t cols, const ActQ8View& x, int64_t m, float* y,
                int64_t y_stride, cudaStream_t stream);

// ---- matvec_float.cu ------------------------------------------------------
// Same for F32, F16 and BF16 weights; x: f32 [m][cols]. For F16/BF16 the activations
// are rounded to the weights' precision like the CPU's (in the kernel for m <= 2, else
// first into `half`, m*cols elements, 16-byte aligned); products and sums in f32.
void matvec_float(GgmlType t, const void* w, int64_t rows, int64_t cols, const float* x, int64_t m, float* y,
                  int64_t y_stride, uint16_t* half, cudaStream_t stream);
// Items of one type (F32, F16 or BF16), same cols, rows > 0, n <= kMaxGroup: one launch
// (plus one activation rounding for m >= 3 unless half_ready).
// half_ready: `half` already holds x rounded (m >= 3; written by x's producer).
void matvec_float_group(const MatvecItem* items, int n, int64_t cols, const float* x, int64_t m, uint16_t* half,
                        bool half_ready, cudaStream_t stream);
// Which kernel matvec_float takes for BF16/F16 at m >= 3: kAuto (tensor cores for m >= 5),
// kSimt (the CUDA-core kernel for every m), kMma (tensor cores for every m >= 3). For A/B
// measurements (bench_cuda_matmul); process-wide, set before launching or capturing.
enum class FloatMatvecKernel : uint8_t { kAuto, kSimt, kMma };
void set_float_matvec_kernel(FloatMatvecKernel k);

// ---- dequantize.cu --------------------------------------------------------
// out[r][c] = fp16(dequantized W[r][c]) for the quant types (the GEMM path's weights).
void dequantize_f16(GgmlType t, const void* w, int64_t rows, int64_t cols, uint16_t* out, cudaStream_t stream);

}  // namespace velo::cuda::detail
