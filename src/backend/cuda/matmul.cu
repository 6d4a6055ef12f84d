// Host side of the CUDA matmul: scratch layout, the cuBLAS handle, and the
// choice between the matvec kernels (m <= kMaxMatvecTokens) and dequantize +
// cuBLAS (larger m). See matmul.h for the numerics.
#include "backend/cuda/matmul.h"

#include <cublas_v2.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "backend/cuda/matmul_kernels.h"

namespace velo::cuda {
namespace {

using detail::ActQuant;

// cuBLAS workspace (its recommendation for Hopper); set once so GEMMs never allocate
// and may be captured into graphs.
constexpr uint64_t kBlasWorkspace = 32ull << 20;

uint64_t align256(uint64_t n) { return (n + 255) / 256 * 256; }

bool is_quant(GgmlType t) { return t != GgmlType::F32 && t != GgmlType::F16 && t != GgmlType::BF16; }

// One allocation; each region 256-byte aligned. Sizes depend only on the limits.
struct Layout {
  uint64_t act = 0;   // matvec activations: Q8 / Q8_K / fp16 bits, min(max_tokens, 8) rows of max_cols
  uint64_t xh = 0;    // GEMM activations: fp16 or bf16 [max_tokens][max_cols]
  uint64_t wf16 = 0;  // GEMM weights dequantized: fp16 [max_weight_elems]
  uint64_t ws = 0;    // cuBLAS workspace
  bool gemm = false;
  uint64_t total() const { return act + xh + wf16 + ws; }
};

Layout layout(const MatmulLimits& lim) {
  Layout L;
  const int64_t mv = std::min(lim.max_tokens, kMaxMatvecTokens);
  L.act = std::max({detail::act_q8_bytes(ActQuant::kQ8, mv, lim.max_cols),
                    detail::act_q8_bytes(ActQuant::kQ8K, mv, lim.max_cols),
                    align256(static_cast<uint64_t>(mv) * lim.max_cols * 2)});
  L.gemm = lim.max_tokens > kMaxMatvecTokens;
  if (L.gemm) {
    L.xh = align256(static_cast<uint64_t>(lim.max_tokens) * lim.max_cols * 2);
    L.wf16 = align256(static_cast<uint64_t>(lim.max_weight_elems) * 2);
    L.ws = kBlasWorkspace;
  }
  return L;
}

[[noreturn]] void contract_violation(const std::string& what) {
  std::fprintf(stderr, "velo::cuda::Matmul: %s\n", what.c_str());
  std::abort();
}

void blas_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    contract_violation(std::string(what) + " failed: " + cublasGetStatusString(s));
}

}  // namespace

bool matmul_supported(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q8_0:
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return true;
    default: return false;
  }
}

struct Matmul::Impl {
  MatmulLimits lim;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;  // only when max_tokens > kMaxMatvecTokens
  DeviceBuffer mem;               // all of Layout
  void* act = nullptr;
  uint16_t* xh = nullptr;
  uint16_t* wf16 = nullptr;
  bool exact = false;  // set_exact_order
  ~Impl() {
    if (blas) cublasDestroy(blas);
  }
};

Matmul::Matmul(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Matmul::~Matmul() = default;

void Matmul::set_exact_order(bool on) { impl_->exact = on; }

uint64_t Matmul::scratch_bytes(const MatmulLimits& lim) { return layout(lim).total(); }

void dequantize_to_f16(const DevMatrix& w, uint16_t* out, cudaStream_t stream) {
  detail::dequantize_f16(w.type, w.data, w.rows, w.cols, out, stream);
}

Result<std::unique_ptr<Matmul>> Matmul::create(const MatmulLimits& lim, cudaStream_t stream) {
  if (lim.max_cols <= 0 || lim.max_tokens <= 0 || lim.max_weight_elems < 0)
    return make_error("Matmul: limits must be positive (max_cols " + std::to_string(lim.max_cols) +
                      ", max_tokens " + std::to_string(lim.max_tokens) + ")");
  const Layout L = layout(lim);
  auto impl = std::make_unique<Impl>();
  impl->lim = lim;
  impl->stream = stream;
  VELO_ASSIGN_OR_RETURN(impl->mem, DeviceBuffer::alloc(L.total()));
  auto* base = impl->mem.get<uint8_t>();
  impl->act = base;
  if (L.gemm) {
    impl->xh = reinterpret_cast<uint16_t*>(base + L.act);
    impl->wf16 = reinterpret_cast<uint16_t*>(base + L.act + L.xh);
    void* ws = base + L.act + L.xh + L.wf16;
    if (cublasStatus_t s = cublasCreate(&impl->blas); s != CUBLAS_STATUS_SUCCESS) {
      impl->blas = nullptr;
      return make_error(std::string("cuBLAS: cublasCreate: ") + cublasGetStatusString(s));
    }
    // The stream first: cublasSetStream resets the workspace to cuBLAS's own pool.
    cublasStatus_t s = cublasSetStream(impl->blas, stream);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetWorkspace(impl->blas, ws, L.ws);
    if (s != CUBLAS_STATUS_SUCCESS) return make_error(std::string("cuBLAS: setup: ") + cublasGetStatusString(s));
  }
  return std::unique_ptr<Matmul>(new Matmul(std::move(impl)));
}

void Matmul::check(const DevMatrix& w, int64_t m, int64_t y_stride) const {
  const Impl& I = *impl_;
  if (!matmul_supported(w.type)) contract_violation("unsupported weight type " + type_name(w.type));
  const auto traits = type_traits(w.type);
  if (w.rows < 0 || w.cols <= 0 || w.cols % traits->block_elems != 0)
    contract_violation("bad shape " + std::to_string(w.rows) + " x " + std::to_string(w.cols) + " for " +
                       type_name(w.type));
  if (m < 0 || m > I.lim.max_tokens || w.cols > I.lim.max_cols)
    contract_violation("m " + std::to_string(m) + " or cols " + std::to_string(w.cols) + " over the limits");
  if (y_stride < w.rows || w.rows > INT32_MAX || y_stride > INT32_MAX || w.cols > INT32_MAX)
    contract_violation("bad y_stride " + std::to_string(y_stride));
  if (is_quant(w.type) && reinterpret_cast<uintptr_t>(w.data) % 16 != 0)
    contract_violation("quantized weights must be 16-byte aligned");
}

void Matmul::run(const DevMatrix& w, const float* x, int64_t m, float* y, int64_t y_stride) {
  Impl& I = *impl_;
  check(w, m, y_stride);
  if (m == 0 || w.rows == 0) return;
  const cudaStream_t st = I.stream;

  if (m <= kMaxMatvecTokens) {
    switch (w.type) {
      case GgmlType::F32:
      case GgmlType::F16:
      case GgmlType::BF16:
        detail::matvec_float(w.type, w.data, w.rows, w.cols, x, m, y, y_stride, static_cast<uint16_t*>(I.act), st);
        break;
      default: {
        const ActQuant f = detail::act_quant_of(w.type);
        detail::quantize_act(f, x, m, w.cols, I.act, st);
        detail::matvec_quant(w.type, w.data, w.rows, w.cols, detail::act_q8_view(f, I.act, m, w.cols), m, y,
                             y_stride, st, I.exact);
      }
    }
    return;
  }

  // GEMM: column-major view: Y^T (rows × m, ld y_stride) = W (cols × rows)^T · X^T (cols × m).
  const float alpha = 1.0f, beta = 0.0f;
  const int rows = static_cast<int>(w.rows), cols = static_cast<int>(w.cols), n = static_cast<int>(m);
  const void* a = w.data;
  const void* b = x;
  cudaDataType_t type = CUDA_R_32F;
  if (w.type == GgmlType::F16 || w.type == GgmlType::BF16) {
    type = w.type == GgmlType::BF16 ? CUDA_R_16BF : CUDA_R_16F;
    detail::round_act_half(x, m * w.cols, w.type == GgmlType::BF16, I.xh, st);
    b = I.xh;
  } else if (w.type != GgmlType::F32) {
    if (w.rows * w.cols > I.lim.max_weight_elems)
      contract_violation("quantized matrix larger than max_weight_elems");
    type = CUDA_R_16F;
    detail::dequantize_f16(w.type, w.data, w.rows, w.cols, I.wf16, st);
    detail::round_act_half(x, m * w.cols, false, I.xh, st);
    a = I.wf16;
    b = I.xh;
  }
  blas_check(cublasGemmEx(I.blas, CUBLAS_OP_T, CUBLAS_OP_N, rows, n, cols, &alpha, a, type, cols, b, type, cols,
                          &beta, y, CUDA_R_32F, static_cast<int>(y_stride), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
             "cublasGemmEx");
}

namespace {

// What run_group does with a group: its matvec items (rows > 0) and the conversion of x.
struct GroupPlan {
  detail::MatvecItem items[Matmul::kMaxGroup];
  int n = 0;
  int64_t cols = 0;
  bool matvec = false;  // one grouped matvec call (else one run() per item)
  Matmul::ActPrep::Kind conv = Matmul::ActPrep::Kind::kNone;
};

GroupPlan plan_group(const Matmul::Out* outs, int n, int64_t m) {
  using Kind = Matmul::ActPrep::Kind;
  GroupPlan p;
  p.cols = n > 0 ? outs[0].w.cols : 0;
  for (int i = 0; i < n; ++i) {
    const DevMatrix& w = outs[i].w;
    if (w.rows > 0) p.items[p.n++] = {w.type, w.data, w.rows, outs[i].y, outs[i].y_stride ? outs[i].y_stride : w.rows};
  }
  if (m <= 0 || m > kMaxMatvecTokens || p.n == 0) return p;
  // One kernel family per group: one float type, or quant types of one activation format.
  const GgmlType t0 = p.items[0].type;
  for (int i = 1; i < p.n; ++i) {
    const GgmlType t = p.items[i].type;
    if (is_quant(t) != is_quant(t0) || (is_quant(t) ? detail::act_quant_of(t) != detail::act_quant_of(t0) : t != t0))
      return p;
  }
  p.matvec = true;
  if (is_quant(t0)) p.conv = detail::act_quant_of(t0) == ActQuant::kQ8K ? Kind::kQ8K : Kind::kQ8;
  else if (t0 != GgmlType::F32 && m > 2) p.conv = t0 == GgmlType::BF16 ? Kind::kBF16 : Kind::kF16;  // see matvec_float
  return p;
}

}  // namespace

Matmul::ActPrep Matmul::act_prep(const Out* outs, int n, int64_t m) const {
  const GroupPlan p = plan_group(outs, n, m);
  return p.conv == ActPrep::Kind::kNone ? ActPrep{} : ActPrep{p.conv, impl_->act};
}

void Matmul::run_group(const Out* outs, int n, const float* x, int64_t m, bool x_prepared) {
  Impl& I = *impl_;
  if (n < 0 || n > kMaxGroup) contract_violation("group of " + std::to_string(n) + " matrices");
  for (int i = 0; i < n; ++i) {
    check(outs[i].w, m, outs[i].y_stride ? outs[i].y_stride : outs[i].w.rows);
    if (outs[i].w.cols != outs[0].w.cols) contract_violation("a group's matrices must have the same cols");
  }
  const GroupPlan p = plan_group(outs, n, m);
  if (m == 0 || p.n == 0) return;
  if (!p.matvec) {
    for (int i = 0; i < p.n; ++i) {
      const detail::MatvecItem& it = p.items[i];
      run({it.type, it.w, it.rows, p.cols}, x, m, it.y, it.y_stride);
    }
    return;
  }
  const bool ready = x_prepared && p.conv != ActPrep::Kind::kNone;
  if (!is_quant(p.items[0].type)) {
    detail::matvec_float_group(p.items, p.n, p.cols, x, m, static_cast<uint16_t*>(I.act), ready, I.stream);
    return;
  }
  const ActQuant f = detail::act_quant_of(p.items[0].type);
  if (!ready) detail::quantize_act(f, x, m, p.cols, I.act, I.stream);
  detail::matvec_quant_group(p.items, p.n, p.cols, detail::act_q8_view(f, I.act, m, p.cols), m, I.stream, I.exact);
}

}  // namespace velo::cuda
