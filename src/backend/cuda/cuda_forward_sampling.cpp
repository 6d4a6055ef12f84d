// CudaForward's sampling on the device: the step runs as in forward(), but the
// head's logits stay in device memory (logits_, [n_out, n_vocab]) and the GPU
// sampler picks each sequence's token there, so n_out ids cross PCIe instead
// of n_out x n_vocab floats, and the CPU does no per-vocabulary work.
#include <string>

#include "backend/cuda/cuda_forward_impl.h"

namespace velo::cuda {
namespace {

// Penalty (token, count) pairs the sampler is made for, per sequence slot. The
// default window (64 tokens) needs at most 64; a step whose windows need more
// in total (long whole-history windows) takes the CPU path instead.
constexpr int32_t kPenaltyTokensPerSeq = 1024;

}  // namespace

int32_t CudaForward::max_sample_penalty_tokens() const {
  if (!dm_.head) return -1;  // the logits are made on the CPU: nothing to gain
  return lim_.max_seqs * kPenaltyTokensPerSeq;
}

Status CudaForward::forward_sample(const StepPlan& plan, const SampleBatch& batch, std::span<int32_t> tokens) {
  const int32_t max_pen = max_sample_penalty_tokens();
  if (max_pen < 0) return make_error("CUDA forward: sampling on the device needs the LM head on the GPU");
  size_t n_out = 0;
  for (const auto& s : plan.seqs) n_out += s.need_logits ? 1 : 0;
  if (batch.seqs.size() != n_out || tokens.size() != n_out)
    return make_error("CUDA forward: " + std::to_string(n_out) + " sequences want a token but got " +
                      std::to_string(batch.seqs.size()) + " sampling arguments and room for " +
                      std::to_string(tokens.size()) + " tokens");
  const size_t n_pen = batch.penalty_tokens.size();
  if (batch.penalty_counts.size() != n_pen || n_pen > static_cast<size_t>(max_pen))
    return make_error("CUDA forward: " + std::to_string(n_pen) + " penalty tokens with " +
                      std::to_string(batch.penalty_counts.size()) + " counts (at most " + std::to_string(max_pen) +
                      ")");
  for (const SampleArgs& a : batch.seqs)  // the sampler checks against its capacity, not our spans
    if (a.penalty_offset < 0 || a.n_penalty_tokens < 0 ||
        static_cast<size_t>(a.penalty_offset) + static_cast<size_t>(a.n_penalty_tokens) > n_pen)
      return make_error("CUDA forward: a penalty window lies outside the step's penalty arrays");

  VELO_CUDA_TRY(cudaSetDevice(where_.device));
  if (!sampler_) {
    VELO_ASSIGN_OR_RETURN(sampler_, GpuSampler::create(cfg_.n_vocab, lim_.max_seqs, max_pen, stream_));
  }
  VELO_TRY(run(plan, false, true));
  if (n_out == 0) return {};
  // Same stream: the sampler's kernels follow the step's (graph or not); it synchronizes.
  return sampler_->sample(logits_, static_cast<int32_t>(n_out), batch.seqs.data(), batch.penalty_tokens.data(),
                          batch.penalty_counts.data(), tokens.data(), /*per_row=*/true);
}

}  // namespace velo::cuda
