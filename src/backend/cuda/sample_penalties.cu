// Repetition / frequency / presence penalties on the GPU, in place, for the
// distinct tokens of each sequence's penalty window: the same arithmetic as
// Sampler::apply_penalties, rounded the same way as the default build of it:
// GCC contracts its `count * freq + pres` into one fused multiply-add under
// -march=native (C++ defaults to -ffp-contract=fast), so that is an fma here,
// and every other step an explicitly rounded _rn operation.
#include "backend/cuda/sample_kernels.h"

namespace velo::cuda::sampling {
namespace {

constexpr int kThreads = 256;

// grid: one block per sequence. logits [n_seqs][n_vocab]; tokens/counts [total pairs].
__global__ void __launch_bounds__(kThreads) penalties_kernel(float* __restrict__ logits, int32_t n_vocab,
                                                             const SeqArgs* __restrict__ args,
                                                             const int32_t* __restrict__ tokens,
                                                             const int32_t* __restrict__ counts) {
  const SeqArgs& a = args[blockIdx.x];
  const int32_t n = a.n_penalty_tokens;
  if (n <= 0) return;
  float* row = logits + static_cast<size_t>(blockIdx.x) * static_cast<size_t>(n_vocab);
  const float rep = a.repeat_penalty, freq = a.frequency_penalty, pres = a.presence_penalty;
  // Tokens are distinct within a sequence, so each thread owns its logits.
  for (int32_t i = threadIdx.x; i < n; i += kThreads) {
    const int32_t t = tokens[a.penalty_offset + i];
    const int32_t c = counts[a.penalty_offset + i];
    float l = row[t];
    // llama.cpp: shrink positive logits, grow negative ones.
    if (rep != 1.0f) l = l <= 0.0f ? __fmul_rn(l, rep) : __fdiv_rn(l, rep);
    // OpenAI: l -= count * frequency + presence (the product and sum fused, like the host).
    l = __fsub_rn(l, __fmaf_rn(static_cast<float>(c), freq, pres));
    row[t] = l;
  }
}

}  // namespace

void launch_penalties(float* logits, int32_t n_seqs, int32_t n_vocab, const SeqArgs* args,
                      const int32_t* tokens, const int32_t* counts, cudaStream_t stream) {
  if (n_seqs <= 0) return;
  penalties_kernel<<<n_seqs, kThreads, 0, stream>>>(logits, n_vocab, args, tokens, counts);
}

}  // namespace velo::cuda::sampling
