// PrefillAttention: one sequence's prompt chunk on the tensor cores. The Flash
// path is one fused kernel (attention_flash.cu); this file is otherwise the
// Cublas path:
//
//   gather:   K, V (paged)  -> kc, vc  fp16 [n_kv][max_ctx][hd]; q -> qh fp16 [n_kv][n][group][hd]
//   per tile of query tokens [t0, t1):
//     S = Q.K^T   cuBLAS strided batched over kv heads, fp16 in, f32 out; only the keys
//                 the tile can see (causal: < start+t1; window: from the first one visible)
//     softmax     in place, P fp16 (attention_prefill_softmax.cu)
//     O = P.V     cuBLAS, fp16 in, f32 out -> o [n_kv][n][group][hd]
//   scatter:  o -> out rows (heads concatenated).
// Tiling bounds the S scratch and keeps each tile's S (<= kTileBytes) mostly in
// L2 between the GEMM that writes it and the two kernels that read it; it also
// skips the causal upper triangle at tile granularity.
#include <cublas_v2.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/attention_flash.h"
#include "backend/cuda/attention_prefill_kernels.h"
#include "backend/cuda/common.h"
#include "backend/cuda/ops.h"

namespace velo::cuda {
namespace {

constexpr int64_t kTileBytes = 32ll << 20;  // target S bytes per tile (all heads)
constexpr int64_t kMinTileTokens = 64;      // unless max_tokens is smaller

uint64_t align256(uint64_t x) { return (x + 255) & ~uint64_t{255}; }
int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

struct Layout {
  int64_t ld_max = 0;  // widest S row (floats)
  uint64_t qh = 0, kc = 0, vc = 0, s = 0, o = 0, total = 0;
  uint64_t s_bytes = 0;
};

Layout layout(const AttnArgs& a, int max_tokens, int max_ctx) {
  Layout l;
  const int64_t hd = a.head_dim, H = a.n_heads, KV = a.n_kv_heads;
  l.ld_max = round_up(std::max(max_ctx, 1), 32);
  const int64_t row_bytes = H * l.ld_max * 4;  // S of one query token, all heads
  const int64_t rows = std::min<int64_t>(max_tokens, std::max(kMinTileTokens, kTileBytes / row_bytes));
  l.s_bytes = static_cast<uint64_t>(std::max<int64_t>(rows, 1) * row_bytes);
  l.qh = 0;                                                                   // fp16 [n_kv][max_tokens][group][hd]
  l.kc = l.qh + align256(static_cast<uint64_t>(max_tokens) * H * hd * 2);    // fp16 [n_kv][max_ctx][hd]
  l.vc = l.kc + align256(static_cast<uint64_t>(KV) * max_ctx * hd * 2);      // fp16 [n_kv][max_ctx][hd]
  l.s = l.vc + align256(static_cast<uint64_t>(KV) * max_ctx * hd * 2);       // f32 S / fp16 P, one tile
  l.o = l.s + align256(l.s_bytes);                                           // f32 [n_kv][max_tokens][group][hd]
  l.total = l.o + align256(static_cast<uint64_t>(max_tokens) * H * hd * 4);
  return l;
}

bool blas_ok(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return true;
  std::fprintf(stderr, "velo::cuda::PrefillAttention: %s failed (cuBLAS status %d)\n", what, static_cast<int>(st));
  return false;
}

}  // namespace

struct PrefillAttention::Impl {
  AttnArgs a;
  PrefillPath path = PrefillPath::Cublas;
  int max_tokens = 0, max_ctx = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  Layout lay;
  DeviceBuffer buf;
  ~Impl() {
    if (blas) cublasDestroy(blas);
  }
};

PrefillAttention::PrefillAttention(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PrefillAttention::~PrefillAttention() = default;

PrefillPath PrefillAttention::resolve(const AttnArgs& a, PrefillPath path) {
  if (path != PrefillPath::Auto) return path;
  const char* env = std::getenv("VELO_PREFILL_ATTN");
  if (env && std::strcmp(env, "cublas") == 0) return PrefillPath::Cublas;
  return prefill::flash_supported(a) ? PrefillPath::Flash : PrefillPath::Cublas;
}

PrefillPath PrefillAttention::path() const { return impl_->path; }

uint64_t PrefillAttention::scratch_bytes(const AttnArgs& a, int max_tokens, int max_ctx, PrefillPath path) {
  return resolve(a, path) == PrefillPath::Flash ? 0 : layout(a, max_tokens, max_ctx).total;
}

Result<std::unique_ptr<PrefillAttention>> PrefillAttention::create(const AttnArgs& a, int max_tokens, int max_ctx,
                                                                  cudaStream_t stream, PrefillPath path) {
  if (a.n_heads <= 0 || a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads != 0 || a.head_dim <= 0 ||
      a.head_dim % 16 != 0 || a.head_dim > 256 || max_tokens <= 0 || max_ctx <= 0)
    return make_error("PrefillAttention: bad shapes (heads " + std::to_string(a.n_heads) + "/" +
                      std::to_string(a.n_kv_heads) + ", head_dim " + std::to_string(a.head_dim) + ")");
  auto impl = std::make_unique<Impl>();
  impl->a = a;
  impl->path = resolve(a, path);
  impl->max_tokens = max_tokens;
  impl->max_ctx = max_ctx;
  impl->stream = stream;
  if (impl->path == PrefillPath::Flash) {
    if (!prefill::flash_supported(a))
      return make_error("PrefillAttention: no fused kernel for head_dim " + std::to_string(a.head_dim));
    return std::unique_ptr<PrefillAttention>(new PrefillAttention(std::move(impl)));
  }
  impl->lay = layout(a, max_tokens, max_ctx);
  VELO_ASSIGN_OR_RETURN(impl->buf, DeviceBuffer::alloc(impl->lay.total));
  if (cublasCreate(&impl->blas) != CUBLAS_STATUS_SUCCESS) {
    impl->blas = nullptr;
    return make_error("PrefillAttention: cublasCreate failed");
  }
  if (cublasSetStream(impl->blas, stream) != CUBLAS_STATUS_SUCCESS)
    return make_error("PrefillAttention: cublasSetStream failed");
  return std::unique_ptr<PrefillAttention>(new PrefillAttention(std::move(impl)));
}

void PrefillAttention::run(const KvLayer& kv, const int32_t* block_table, int start_pos, int n, const float* q,
                           float* out, int64_t q_stride) {
  Impl& m = *impl_;
  const AttnArgs& a = m.a;
  if (n <= 0) return;
  if (n > m.max_tokens || start_pos < 0 || start_pos + n > m.max_ctx) {
    std::fprintf(stderr, "velo::cuda::PrefillAttention: %d tokens at %d exceed the limits (%d tokens, %d ctx)\n",
                 n, start_pos, m.max_tokens, m.max_ctx);
    return;
  }
  if (m.path == PrefillPath::Flash) {
    prefill::flash(a, kv, block_table, start_pos, n, q, out, q_stride, m.stream);
    return;
  }
  const int hd = a.head_dim, H = a.n_heads, KV = a.n_kv_heads, G = H / KV;
  auto* base = m.buf.get<char>();
  auto* qh = reinterpret_cast<__half*>(base + m.lay.qh);
  auto* kc = reinterpret_cast<__half*>(base + m.lay.kc);
  auto* vc = reinterpret_cast<__half*>(base + m.lay.vc);
  auto* s = reinterpret_cast<float*>(base + m.lay.s);
  auto* o = reinterpret_cast<float*>(base + m.lay.o);
  const int total = start_pos + n;
  // First key a tile from token t0 on can see, rounded down to 16 (the CPU's sum chunks).
  auto key_base = [&](int t0) { return a.window > 0 ? std::max(0, start_pos + t0 - a.window + 1) & ~15 : 0; };

  prefill::gather(kv, block_table, key_base(0), total, m.max_ctx, q, q_stride, n, H,
                  reinterpret_cast<uint16_t*>(qh), reinterpret_cast<uint16_t*>(kc), reinterpret_cast<uint16_t*>(vc),
                  m.stream);

  // Tokens per tile: S of every tile fits the scratch at the widest row, ~kTileBytes.
  const int64_t row_bytes = static_cast<int64_t>(H) * round_up(total - key_base(0), 32) * 4;
  const int64_t want = std::max(kMinTileTokens, kTileBytes / row_bytes);
  const int tq = static_cast<int>(std::min<int64_t>({n, want, static_cast<int64_t>(m.lay.s_bytes) / row_bytes}));

  const float one = 1.0f, zero = 0.0f;
  const int64_t kv_stride = static_cast<int64_t>(m.max_ctx) * hd;  // halves between kv heads in kc / vc
  const int64_t q_head_stride = static_cast<int64_t>(n) * G * hd;  // between kv heads in qh and o
  for (int t0 = 0; t0 < n; t0 += tq) {
    const int rows = std::min(tq, n - t0) * G;  // S rows per kv head
    const int kb = key_base(t0);
    const int width = start_pos + t0 + rows / G - kb;  // keys kb .. start+t1-1
    const int ld = static_cast<int>(round_up(width, 32));
    const int64_t s_stride = static_cast<int64_t>(rows) * ld;
    // S^T (col-major width x rows, ld) = K_kb^T(op T of col-major hd x width) * Q^T (col-major hd x rows).
    if (!blas_ok(cublasGemmStridedBatchedEx(m.blas, CUBLAS_OP_T, CUBLAS_OP_N, width, rows, hd, &one,
                                            kc + static_cast<int64_t>(kb) * hd, CUDA_R_16F, hd, kv_stride,
                                            qh + static_cast<int64_t>(t0) * G * hd, CUDA_R_16F, hd, q_head_stride,
                                            &zero, s, CUDA_R_32F, ld, s_stride, KV, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT),
                 "S = Q.K^T"))
      return;
    prefill::SoftmaxTile st;
    st.s = s;
    st.head_stride = s_stride;
    st.ld = ld;
    st.rows = rows;
    st.n_kv_heads = KV;
    st.group = G;
    st.pos0 = start_pos + t0;
    st.key0 = kb;
    st.width = width;
    st.scale = a.scale;
    st.softcap = a.softcap;
    st.window = a.window;
    prefill::softmax(st, m.stream);
    // O^T (col-major hd x rows) = V^T (col-major hd x width) * P^T (col-major width x rows, 2*ld halves).
    if (!blas_ok(cublasGemmStridedBatchedEx(m.blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, rows, width, &one,
                                            vc + static_cast<int64_t>(kb) * hd, CUDA_R_16F, hd, kv_stride,
                                            reinterpret_cast<const __half*>(s), CUDA_R_16F, 2 * ld, 2 * s_stride,
                                            &zero, o + static_cast<int64_t>(t0) * G * hd, CUDA_R_32F, hd,
                                            q_head_stride, KV, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "O = P.V"))
      return;
  }
  prefill::scatter(o, n, H, KV, hd, out, q_stride, m.stream);
}

}  // namespace velo::cuda
