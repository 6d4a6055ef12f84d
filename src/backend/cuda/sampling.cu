// GpuSampler: host glue. Checks a step's arguments, stages them in pinned
// buffers made at create(), enqueues the penalty and selection kernels, and
// brings the token ids back. See sampling.h for the contract.
#include "backend/cuda/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/common.h"
#include "backend/cuda/sample_kernels.h"

namespace velo::cuda {

using sampling::SeqArgs;

namespace {

// Owning pinned host allocation (cudaMallocHost), so the async copies really are async.
template <class T>
struct PinnedArray {
  T* p = nullptr;
  PinnedArray() = default;
  PinnedArray(const PinnedArray&) = delete;
  PinnedArray& operator=(const PinnedArray&) = delete;
  ~PinnedArray() {
    if (p) cudaFreeHost(p);
  }
  Status alloc(size_t n) {
    if (n == 0) return {};
    void* q = nullptr;
    VELO_CUDA_TRY(cudaMallocHost(&q, n * sizeof(T)));
    p = static_cast<T*>(q);
    return {};
  }
};

std::string seq_error(int32_t i, const std::string& what) {
  return "GPU sampler: sequence " + std::to_string(i) + ": " + what;
}

}  // namespace

struct GpuSampler::Impl {
  int32_t n_vocab = 0, max_seqs = 0, max_penalty_tokens = 0;
  cudaStream_t stream = nullptr;
  DeviceBuffer d_args;       // [max_seqs] SeqArgs
  DeviceBuffer d_pen_tokens; // [max_penalty_tokens] int32
  DeviceBuffer d_pen_counts; // [max_penalty_tokens] int32
  DeviceBuffer d_out;        // [2][max_seqs] int32: tokens, then SampleCode
  PinnedArray<SeqArgs> h_args;        // [max_seqs]
  PinnedArray<int32_t> h_pen_tokens;  // [max_penalty_tokens]
  PinnedArray<int32_t> h_pen_counts;  // [max_penalty_tokens]
  PinnedArray<int32_t> h_out;         // [2][max_seqs]
  std::vector<uint32_t> seen;         // [n_vocab] stamp of the last sequence that listed the token
  uint32_t stamp = 0;
};

GpuSampler::GpuSampler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuSampler::~GpuSampler() = default;

Result<std::unique_ptr<GpuSampler>> GpuSampler::create(int32_t n_vocab, int32_t max_seqs, int32_t max_penalty_tokens,
                                                       cudaStream_t stream) {
  if (n_vocab <= 0 || max_seqs <= 0 || max_penalty_tokens < 0)
    return make_error("GPU sampler: bad sizes (n_vocab " + std::to_string(n_vocab) + ", max_seqs " +
                      std::to_string(max_seqs) + ", max_penalty_tokens " + std::to_string(max_penalty_tokens) + ")");
  VELO_TRY(sampling::init_select_kernel());
  auto im = std::make_unique<Impl>();
  im->n_vocab = n_vocab;
  im->max_seqs = max_seqs;
  im->max_penalty_tokens = max_penalty_tokens;
  im->stream = stream;
  const size_t ns = static_cast<size_t>(max_seqs), np = static_cast<size_t>(max_penalty_tokens);
  VELO_ASSIGN_OR_RETURN(im->d_args, DeviceBuffer::alloc(ns * sizeof(SeqArgs)));
  VELO_ASSIGN_OR_RETURN(im->d_pen_tokens, DeviceBuffer::alloc(np * sizeof(int32_t)));
  VELO_ASSIGN_OR_RETURN(im->d_pen_counts, DeviceBuffer::alloc(np * sizeof(int32_t)));
  VELO_ASSIGN_OR_RETURN(im->d_out, DeviceBuffer::alloc(2 * ns * sizeof(int32_t)));
  VELO_TRY(im->h_args.alloc(ns));
  VELO_TRY(im->h_pen_tokens.alloc(np));
  VELO_TRY(im->h_pen_counts.alloc(np));
  VELO_TRY(im->h_out.alloc(2 * ns));
  im->seen.assign(static_cast<size_t>(n_vocab), 0);
  return std::unique_ptr<GpuSampler>(new GpuSampler(std::move(im)));
}

Status GpuSampler::sample(float* logits, int32_t n_seqs, const SampleArgs* args, const int32_t* penalty_tokens,
                          const int32_t* penalty_counts, int32_t* tokens, bool per_row) {
  Impl& m = *impl_;
  if (n_seqs < 0 || n_seqs > m.max_seqs)
    return make_error("GPU sampler: " + std::to_string(n_seqs) + " sequences, made for at most " +
                      std::to_string(m.max_seqs));
  if (n_seqs == 0) return {};
  if (!logits || !args || !tokens) return make_error("GPU sampler: null logits, args or tokens");

  // Check and stage the arguments; derived constants use the CPU Sampler's own calls.
  int64_t n_pen = 0;  // penalty pairs used: [0, max(offset + n))
  for (int32_t i = 0; i < n_seqs; ++i) {
    const SampleArgs& a = args[i];
    if (!std::isfinite(a.temperature) || std::isnan(a.top_p) || !(a.min_p <= 1.0f) || std::isnan(a.presence_penalty) ||
        std::isnan(a.frequency_penalty) || !(a.repeat_penalty > 0.0f) || !(a.u >= 0.0 && a.u < 1.0))
      return make_error(seq_error(i, "invalid sampling arguments"));
    if (a.n_penalty_tokens < 0 || a.penalty_offset < 0 ||
        int64_t{a.penalty_offset} + a.n_penalty_tokens > m.max_penalty_tokens)
      return make_error(seq_error(i, "penalty tokens [" + std::to_string(a.penalty_offset) + ", +" +
                                         std::to_string(a.n_penalty_tokens) + ") beyond the " +
                                         std::to_string(m.max_penalty_tokens) + " made for"));
    if (a.n_penalty_tokens > 0) {
      if (!penalty_tokens || !penalty_counts) return make_error("GPU sampler: null penalty arrays");
      n_pen = std::max(n_pen, int64_t{a.penalty_offset} + a.n_penalty_tokens);
      // Tokens must be distinct (each thread of the kernel owns its logit) and in range.
      if (++m.stamp == 0) {
        std::fill(m.seen.begin(), m.seen.end(), 0u);
        m.stamp = 1;
      }
      for (int32_t j = 0; j < a.n_penalty_tokens; ++j) {
        const int32_t t = penalty_tokens[a.penalty_offset + j];
        if (t < 0 || t >= m.n_vocab) return make_error(seq_error(i, "penalty token " + std::to_string(t) + " out of range"));
        if (penalty_counts[a.penalty_offset + j] < 1)
          return make_error(seq_error(i, "penalty count below 1 for token " + std::to_string(t)));
        if (m.seen[t] == m.stamp) return make_error(seq_error(i, "penalty token " + std::to_string(t) + " listed twice"));
        m.seen[t] = m.stamp;
      }
    }
    SeqArgs& d = m.h_args.p[i];
    d = SeqArgs{};
    d.u = a.u;
    d.temperature = a.temperature;
    d.inv_t = a.temperature > 0.0f ? 1.0 / a.temperature : 0.0;  // as Sampler::draw
    d.top_k = a.top_k;
    d.top_p = a.top_p;
    d.min_p = a.min_p;
    d.log_min_p = a.min_p > 0.0f ? std::log(a.min_p) : 0.0f;  // float overload, as Sampler::sample
    d.repeat_penalty = a.repeat_penalty;
    d.presence_penalty = a.presence_penalty;
    d.frequency_penalty = a.frequency_penalty;
    d.n_penalty_tokens = a.n_penalty_tokens;
    d.penalty_offset = a.penalty_offset;
  }

  cudaStream_t st = m.stream;
  VELO_CUDA_TRY(cudaMemcpyAsync(m.d_args.get(), m.h_args.p, static_cast<size_t>(n_seqs) * sizeof(SeqArgs),
                                cudaMemcpyHostToDevice, st));
  if (n_pen > 0) {
    const size_t bytes = static_cast<size_t>(n_pen) * sizeof(int32_t);
    std::memcpy(m.h_pen_tokens.p, penalty_tokens, bytes);
    std::memcpy(m.h_pen_counts.p, penalty_counts, bytes);
    VELO_CUDA_TRY(cudaMemcpyAsync(m.d_pen_tokens.get(), m.h_pen_tokens.p, bytes, cudaMemcpyHostToDevice, st));
    VELO_CUDA_TRY(cudaMemcpyAsync(m.d_pen_counts.get(), m.h_pen_counts.p, bytes, cudaMemcpyHostToDevice, st));
    sampling::launch_penalties(logits, n_seqs, m.n_vocab, m.d_args.get<SeqArgs>(), m.d_pen_tokens.get<int32_t>(),
                               m.d_pen_counts.get<int32_t>(), st);
    VELO_CUDA_TRY(cudaGetLastError());
  }
  sampling::launch_select(logits, n_seqs, m.n_vocab, m.d_args.get<SeqArgs>(), m.d_out.get<int32_t>(), st);
  VELO_CUDA_TRY(cudaGetLastError());
  // d_out holds [2][max_seqs] but the kernel packs [2][n_seqs]: copy just that.
  VELO_CUDA_TRY(cudaMemcpyAsync(m.h_out.p, m.d_out.get(), 2 * static_cast<size_t>(n_seqs) * sizeof(int32_t),
                                cudaMemcpyDeviceToHost, st));
  VELO_CUDA_TRY(cudaStreamSynchronize(st));

  const int32_t* ids = m.h_out.p;
  const int32_t* codes = m.h_out.p + n_seqs;
  std::copy(ids, ids + n_seqs, tokens);
  for (int32_t i = 0; i < n_seqs; ++i) {
    if (per_row && codes[i] != sampling::kSampleOk) {
      switch (codes[i]) {
        case sampling::kSampleNaN: tokens[i] = static_cast<int32_t>(SampleFailure::NaN); continue;
        case sampling::kSampleNoToken: tokens[i] = static_cast<int32_t>(SampleFailure::NoToken); continue;
        case sampling::kSampleInfinite: tokens[i] = static_cast<int32_t>(SampleFailure::Infinite); continue;
        default: break;  // an unknown code stays an error
      }
    }
    switch (codes[i]) {
      case sampling::kSampleOk: break;
      case sampling::kSampleNaN: return make_error(seq_error(i, "the model produced NaN logits"));
      case sampling::kSampleNoToken: return make_error(seq_error(i, "no token can be sampled: every logit is -inf"));
      case sampling::kSampleInfinite: return make_error(seq_error(i, "a +inf logit leaves no distribution to draw from"));
      default: return make_error(seq_error(i, "bad kernel result code " + std::to_string(codes[i])));
    }
  }
  return {};
}

}  // namespace velo::cuda
