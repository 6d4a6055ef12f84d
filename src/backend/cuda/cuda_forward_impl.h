// CudaForward's class declaration, private to the CUDA backend: the forward
// pass itself is in cuda_forward.cpp, sampling on the device in
// cuda_forward_sampling.cpp. Everyone else goes through cuda_forward.h.
#pragma once
#include <cuda_runtime.h>

#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/cuda/common.h"
#include "backend/cuda/cuda_forward.h"
#include "backend/cuda/device_model.h"
#include "backend/cuda/forward_plan.h"
#include "backend/cuda/matmul.h"
#include "backend/cuda/ops.h"
#include "backend/cuda/sampling.h"
#include "model/transformer.h"

namespace velo::cuda {

class CudaForward final : public Forward {
 public:
  CudaForward(const ModelConfig& cfg, const ModelWeights& w, const TransformerLimits& lim, const MemoryPlan& mp,
              const Placement& where, ThreadPool& pool)
      : cfg_(cfg), w_(w), lim_(lim), mp_(mp), where_(where), pool_(pool), shape_(cfg, lim) {}
  ~CudaForward() override;

  Status init();
  Result<std::span<const float>> forward(const StepPlan& plan) override { return run(plan, false); }
  Result<std::span<const float>> forward_all(const StepPlan& plan) override { return run(plan, true); }
  void copy_block(int32_t src, int32_t dst) override;
  const TransformerLimits& limits() const override { return lim_; }
  std::string describe() const override { return desc_; }
  // Sampling on the device (cuda_forward_sampling.cpp): only with the head on the GPU.
  int32_t max_sample_penalty_tokens() const override;
  Status forward_sample(const StepPlan& plan, const SampleBatch& batch, std::span<int32_t> tokens) override;

 private:
  struct Segment {  // a run of plan tokens that share one attention path
    int32_t t0 = 0, n = 0;
    int32_t seq = 0, start_pos = 0;  // prefill segments: their one sequence
    bool prefill = false;
  };

  // With logits_stay_on_device the head's logits stay in logits_ (nothing is copied back).
  Result<std::span<const float>> run(const StepPlan& plan, bool all_logits, bool logits_stay_on_device = false);
  void upload_plan(const StepPlan& plan);
  void enqueue_step(int32_t T, int32_t n_out, bool all_logits);
  void enqueue_layer(int il, int32_t T);
  void enqueue_attention(int il, int32_t step_tokens);  // step_tokens: the step's query tokens
  void mm(const DevMatrix& w, const float* x, int64_t m, float* y);
  KvLayer kv_layer(int il) const;
  Result<cudaGraphExec_t> decode_graph(int32_t T);
  Status ensure_all_logits();
  Status build_f16_cache();

  const ModelConfig& cfg_;
  const ModelWeights& w_;
  TransformerLimits lim_;
  MemoryPlan mp_;
  Placement where_;
  ThreadPool& pool_;
  ForwardShape shape_;
  std::string desc_;
  int64_t max_dequant_ = 0;  // largest rows*cols the GEMM path can dequantize

  cudaStream_t stream_ = nullptr;
  DevModel dm_;
  std::unique_ptr<Matmul> mm_;
  std::unique_ptr<PrefillAttention> prefill_[2];  // [0] global layers, [1] sliding-window layers
  RopeTable rope_[2];                              // [0] global layers, [1] sliding-window layers
  std::unique_ptr<Transformer> cpu_;               // layers [gpu_layers, n_layer) + head when not all on the GPU
  DeviceBuffer kv_, act_, meta_, attn_scratch_, logits_all_, f16_;
  std::unordered_map<const void*, DevMatrix> f16_of_;  // quantized data -> its F16 copy
  float* logits_all_host_ = nullptr;               // pinned [max_batch_tokens, n_vocab], forward_all only
  void* host_ = nullptr;                           // pinned: metadata + x + logits
  std::vector<Segment> segs_;
  std::unordered_map<int32_t, cudaGraphExec_t> graphs_;
  std::unique_ptr<GpuSampler> sampler_;            // forward_sample() only, made on first use

  // Device views (into act_ / meta_), see ForwardShape for their sizes.
  float *x_ = nullptr, *xb_ = nullptr, *xb2_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr;
  float *att_ = nullptr, *hg_ = nullptr, *hu_ = nullptr, *h_ = nullptr, *logits_ = nullptr;
  int32_t *d_tok_ = nullptr, *d_pos_ = nullptr, *d_seq_ = nullptr, *d_slot_ = nullptr, *d_out_ = nullptr,
          *d_bt_ = nullptr;
  // Host views (into host_).
  int32_t *h_meta_ = nullptr, *h_tok_ = nullptr, *h_pos_ = nullptr, *h_seq_ = nullptr, *h_slot_ = nullptr,
          *h_out_ = nullptr, *h_bt_ = nullptr;
  float *h_x_ = nullptr, *h_logits_ = nullptr;
};

}  // namespace velo::cuda
