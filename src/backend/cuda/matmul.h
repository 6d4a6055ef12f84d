// Weight-matrix × activations on the GPU: y = x · Wᵀ for m tokens, weights in
// their GGUF block layout on the device (uploaded once at load).
//
// Two paths, picked per call by m:
//  - m <= kMaxMatvecTokens (decode, batched decode): a matrix-vector kernel
//    per weight type that reads every weight byte once. The 32-element quant
//    types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) quantize the activations exactly as
//    the CPU backend does (cpu::detail::ActQ8: d = amax/127 rounded to fp16)
//    and take integer dot products per block, so each block's partial sum is
//    bit-identical to the CPU's; only the float sum over blocks differs in order.
//    F16/BF16 weights use activations rounded to fp16/bf16 (as the CPU does).
//  - larger m (prompt processing): the weights are dequantized into an F16
//    scratch (BF16 weights are used as they are) and cuBLAS multiplies in
//    F16/BF16 with F32 accumulation on the tensor cores.
//
// Every call only enqueues work on the Matmul's stream: no allocation, no
// synchronization, so calls may be captured into a CUDA graph.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>

#include "backend/cuda/common.h"
#include "core/dtype.h"
#include "core/result.h"

namespace velo::cuda {

// Raw GGUF blocks on the device: `rows` rows of `cols` elements, row_bytes(type, cols) apart.
struct DevMatrix {
  GgmlType type = GgmlType::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

// Above this many tokens a call uses dequantize + cuBLAS.
constexpr int64_t kMaxMatvecTokens = 8;

// F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K.
bool matmul_supported(GgmlType t);

// out[r][c] = fp16(W[r][c]) for a quantized W (a Q4_0..Q6_K type), enqueued on `stream`:
// a persistent F16 copy lets prompt and batched steps skip the per-call dequantization.
void dequantize_to_f16(const DevMatrix& w, uint16_t* out, cudaStream_t stream);

struct MatmulLimits {
  int64_t max_cols = 0;          // widest `cols` of any matrix used
  int64_t max_tokens = 0;        // largest m
  int64_t max_weight_elems = 0;  // largest rows*cols of a quantized matrix (dequant scratch)
};

class Matmul {
 public:
  // Creates the cuBLAS handle (bound to `stream`) and every scratch buffer.
  static Result<std::unique_ptr<Matmul>> create(const MatmulLimits& lim, cudaStream_t stream);
  // Device bytes create() will allocate for `lim` (memory planning before loading).
  static uint64_t scratch_bytes(const MatmulLimits& lim);
  ~Matmul();
  Matmul(const Matmul&) = delete;
  Matmul& operator=(const Matmul&) = delete;

  // y[i * y_stride + r] = dot(W row r, x[i * w.cols ...]) for i < m, r < w.rows.
  // x and y are device F32, must not overlap; y_stride >= w.rows. m <= max_tokens,
  // w.cols <= max_cols; matmul_supported(w.type) (violations abort: callers check at load).
  void run(const DevMatrix& w, const float* x, int64_t m, float* y, int64_t y_stride);
  void run(const DevMatrix& w, const float* x, int64_t m, float* y) { run(w, x, m, y, w.rows); }

  // One output of run_group: y = x · Wᵀ with its own stride (0: w.rows).
  struct Out {
    DevMatrix w;
    float* y = nullptr;
    int64_t y_stride = 0;
  };
  static constexpr int kMaxGroup = 4;
  // Several matrices of the same cols on the same x (Q/K/V, gate/up), n <= kMaxGroup: the
  // same outputs, bit for bit, as run() on each, with the activations converted once and,
  // for m <= kMaxMatvecTokens, one kernel launch where the types allow it (every
  // K-quant mix, any one type). Larger m: one run() per matrix.
  // x_prepared: the conversion act_prep() names was already written (by x's producer).
  void run_group(const Out* outs, int n, const float* x, int64_t m, bool x_prepared = false);

  // The activation conversion run_group(outs, n, x, m) launches before its matvec, for the
  // kernel that produces x to write in its epilogue instead (add_rmsnorm_act, norm_act.h),
  // so that the matvec waits on no launch of its own. kind kNone: the group converts x
  // itself (m > kMaxMatvecTokens, F32, F16/BF16 at m <= 2, mixed formats).
  struct ActPrep {
    enum class Kind : uint8_t { kNone, kQ8, kQ8K, kF16, kBF16 };
    Kind kind = Kind::kNone;
    void* base = nullptr;  // this Matmul's activation scratch: the layout of detail::act_q8_view
  };
  ActPrep act_prep(const Out* outs, int n, int64_t m) const;

  // On: matvecs (m <= kMaxMatvecTokens) of the 32-element quant types follow the CPU backend's
  // float order bit for bit (matvec_q32.cu); off (default): the faster kernel, within 1e-5.
  void set_exact_order(bool on);

 private:
  struct Impl;
  explicit Matmul(std::unique_ptr<Impl> impl);
  void check(const DevMatrix& w, int64_t m, int64_t y_stride) const;  // aborts on a contract violation
  std::unique_ptr<Impl> impl_;
};

}  // namespace velo::cuda
