#include "backend/cuda/device_model.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>

#include <unistd.h>

namespace velo::cuda {
namespace {

constexpr uint64_t kAlign = 256;
uint64_t align_up(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

uint64_t matrix_bytes(const cpu::WeightMatrix& m) {
  if (!m.data) return 0;
  return static_cast<uint64_t>(m.rows) * *row_bytes(m.type, static_cast<uint64_t>(m.cols));
}

// Visits every tensor of the placement in one fixed order: (host source, bytes, where its
// device pointer goes). Sizing and uploading share it, so they cannot disagree.
struct Visitor {
  std::function<void(const void* src, uint64_t bytes, const void** dst)> fn;
  void vec(const float* p, int64_t n, const float** dst) {
    if (p) fn(p, static_cast<uint64_t>(n) * sizeof(float), reinterpret_cast<const void**>(dst));
  }
  void mat(const cpu::WeightMatrix& m, DevMatrix* dst) {
    *dst = DevMatrix{m.type, nullptr, m.rows, m.cols};
    if (m.data) fn(m.data, matrix_bytes(m), &dst->data);
  }
};

void visit(const ModelConfig& c, const ModelWeights& w, int gpu_layers, bool head, DevModel& dm, Visitor& v) {
  dm.layers.assign(static_cast<size_t>(gpu_layers), DevLayer{});
  for (int il = 0; il < gpu_layers; ++il) {
    const LayerWeights& L = w.layers[il];
    DevLayer& D = dm.layers[il];
    v.vec(L.attn_norm, c.n_embd, &D.attn_norm);
    v.mat(L.wq, &D.wq);
    v.mat(L.wk, &D.wk);
    v.mat(L.wv, &D.wv);
    v.vec(L.bq, c.q_dim(), &D.bq);
    v.vec(L.bk, c.kv_dim(), &D.bk);
    v.vec(L.bv, c.kv_dim(), &D.bv);
    v.vec(L.q_norm, c.head_dim, &D.q_norm);
    v.vec(L.k_norm, c.head_dim, &D.k_norm);
    v.mat(L.wo, &D.wo);
    v.vec(L.post_attn_norm, c.n_embd, &D.post_attn_norm);
    v.vec(L.ffn_norm, c.n_embd, &D.ffn_norm);
    v.mat(L.w_gate, &D.w_gate);
    v.mat(L.w_up, &D.w_up);
    v.mat(L.w_down, &D.w_down);
    v.vec(L.post_ffn_norm, c.n_embd, &D.post_ffn_norm);
  }
  v.vec(w.rope_freqs, c.n_rot / 2, &dm.rope_freqs);
  dm.head = head;
  if (head) {
    v.mat(w.tok_embd, &dm.tok_embd);
    v.vec(w.output_norm, c.n_embd, &dm.output_norm);
    if (w.tied_output) dm.output = dm.tok_embd;  // pointer fixed up after the upload
    else v.mat(w.output, &dm.output);
  }
}

}  // namespace

uint64_t device_model_bytes(const ModelConfig& cfg, const ModelWeights& w, int gpu_layers, bool head) {
  uint64_t total = 0;
  DevModel dm;
  Visitor v{[&](const void*, uint64_t bytes, const void**) { total += align_up(bytes); }};
  visit(cfg, w, gpu_layers, head, dm, v);
  return total;
}

Result<DevModel> upload_model(const ModelConfig& cfg, const ModelWeights& w, int gpu_layers, bool head,
                              cudaStream_t stream, bool progress) {
  DevModel dm;
  const uint64_t total = device_model_bytes(cfg, w, gpu_layers, head);
  VELO_ASSIGN_OR_RETURN(dm.arena, DeviceBuffer::alloc(total));

  // Two pinned staging buffers: the mmapped file is copied into one while the
  // other is on its way to the device (pageable copies run at a fraction of the bus).
  constexpr uint64_t kStage = uint64_t{64} << 20;
  void* stage[2] = {nullptr, nullptr};
  cudaEvent_t done[2] = {nullptr, nullptr};
  Status st;
  auto cleanup = [&] {
    for (int i = 0; i < 2; ++i) {
      if (done[i]) cudaEventDestroy(done[i]);
      if (stage[i]) cudaFreeHost(stage[i]);
    }
  };
  for (int i = 0; i < 2; ++i) {
    if (cudaError_t e = cudaMallocHost(&stage[i], kStage); e != cudaSuccess) st = cuda_status(e, "cudaMallocHost");
    else if (cudaError_t e2 = cudaEventCreateWithFlags(&done[i], cudaEventDisableTiming); e2 != cudaSuccess)
      st = cuda_status(e2, "cudaEventCreate");
    if (!st.ok()) {
      cleanup();
      return st.error();
    }
  }

  auto* base = dm.arena.get<uint8_t>();
  uint64_t off = 0, copied = 0;
  int cur = 0;
  int last_pct = -1;
  const auto t0 = std::chrono::steady_clock::now();
  Visitor v{[&](const void* src, uint64_t bytes, const void** dst) {
    *dst = base + off;
    const auto* s = static_cast<const uint8_t*>(src);
    for (uint64_t done_b = 0; done_b < bytes && st.ok(); done_b += kStage) {
      const uint64_t n = std::min(kStage, bytes - done_b);
      if (cudaError_t e = cudaEventSynchronize(done[cur]); e != cudaSuccess) {
        st = cuda_status(e, "upload");
        return;
      }
      std::memcpy(stage[cur], s + done_b, n);
      cudaError_t e = cudaMemcpyAsync(base + off + done_b, stage[cur], n, cudaMemcpyHostToDevice, stream);
      if (e == cudaSuccess) e = cudaEventRecord(done[cur], stream);
      if (e != cudaSuccess) st = cuda_status(e, "upload");
      cur ^= 1;
      copied += n;
      // Every percent on a terminal, every 10% in a log.
      const int step = isatty(fileno(stderr)) ? 1 : 10;
      const int pct = static_cast<int>(copied * 100 / std::max<uint64_t>(total, 1)) / step * step;
      if (progress && pct != last_pct) {
        last_pct = pct;
        std::fprintf(stderr, "\rloading weights to the GPU: %3d%% (%.1f / %.1f GiB)", pct, copied / 1073741824.0,
                     total / 1073741824.0);
      }
    }
    off += align_up(bytes);
  }};
  visit(cfg, w, gpu_layers, head, dm, v);
  if (st.ok()) st = cuda_status(cudaStreamSynchronize(stream), "upload");
  cleanup();
  if (!st.ok()) return st.error();
  if (head && w.tied_output) dm.output = dm.tok_embd;
  if (progress) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "\rloaded %.2f GiB of weights to the GPU in %.1f s%20s\n", total / 1073741824.0, s, "");
  }
  return dm;
}

}  // namespace velo::cuda
