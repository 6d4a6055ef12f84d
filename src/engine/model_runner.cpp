// ModelRunner: owns the mapped GGUF, config, weights, tokenizer, chat template,
// thread pool and the Forward (CPU Transformer, or the CUDA forward pass with
// its activations + paged KV on the GPU).
#include "engine/model_runner.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "core/cpu_info.h"
#include "core/thread_pool.h"
#include "gguf/gguf.h"
#include "model/config.h"
#include "model/transformer.h"
#include "model/weights.h"
#if defined(VELO_WITH_CUDA)
#include "backend/cuda/cuda_forward.h"
#include "backend/cuda/devices.h"
#endif

namespace velo {
namespace {

constexpr int32_t kDefaultCtxCap = 8192;

Status check_range(const char* what, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    return make_error(std::string(what) + " = " + std::to_string(v) + " is out of range [" + std::to_string(lo) +
                      ", " + std::to_string(hi) + "]");
  return {};
}

// Builds the forward pass on the device the options ask for.
Result<std::unique_ptr<Forward>> make_forward(const ModelConfig& cfg, const ModelWeights& w,
                                              const TransformerLimits& lim, const RunnerOptions& o, ThreadPool& pool) {
  auto on_cpu = [&]() -> Result<std::unique_ptr<Forward>> {
    VELO_ASSIGN_OR_RETURN(auto t, Transformer::create(cfg, w, lim, pool));
    return std::unique_ptr<Forward>(std::move(t));
  };
  if (o.device == Device::Cpu || o.gpu_layers == 0) return on_cpu();
#if defined(VELO_WITH_CUDA)
  if (o.device == Device::Auto && cuda::list_devices().empty()) return on_cpu();
  cuda::Placement where;
  where.gpu_layers = o.gpu_layers;
  where.exact_order = o.gpu_exact;
  return cuda::create_forward(cfg, w, lim, where, pool);
#else
  if (o.device == Device::Cuda)
    return make_error("this build of velollm has no CUDA backend (nvcc was not found when it was built); "
                      "use --device cpu");
  return on_cpu();
#endif
}

class Runner final : public ModelRunner {
 public:
  static Result<std::unique_ptr<ModelRunner>> create(const std::string& path, const RunnerOptions& o) {
    VELO_TRY(check_range("threads", o.threads, 0, 1024));
    VELO_TRY(check_range("ctx_size", o.ctx_size, 0, 1 << 20));
    VELO_TRY(check_range("max_seqs", o.max_seqs, 1, 4096));
    VELO_TRY(check_range("kv_block_size", o.kv_block_size, 1, 4096));
    VELO_TRY(check_range("num_kv_blocks", o.num_kv_blocks, 0, 1 << 24));
    VELO_TRY(check_range("max_batch_tokens", o.max_batch_tokens, 1, 1 << 16));
    VELO_TRY(check_range("gpu_layers", o.gpu_layers, -1, 1 << 16));

    std::unique_ptr<Runner> r(new Runner());
    VELO_ASSIGN_OR_RETURN(r->file_, gguf::File::open(path));
    VELO_ASSIGN_OR_RETURN(r->cfg_, parse_config(*r->file_));
    VELO_ASSIGN_OR_RETURN(r->weights_, bind_weights(*r->file_, r->cfg_));
    VELO_ASSIGN_OR_RETURN(r->tok_, Tokenizer::from_gguf(*r->file_));
    if (r->tok_->n_vocab() > r->cfg_.n_vocab)
      return make_error("model: tokenizer has " + std::to_string(r->tok_->n_vocab()) +
                        " tokens but token_embd.weight only " + std::to_string(r->cfg_.n_vocab) + " rows");
    VELO_ASSIGN_OR_RETURN(r->tmpl_, ChatTemplate::from_gguf(*r->file_, *r->tok_));

    const ModelConfig& c = r->cfg_;
    TransformerLimits lim;
    lim.ctx_size = o.ctx_size > 0 ? o.ctx_size : std::min(c.n_ctx_train, kDefaultCtxCap);
    lim.max_seqs = o.max_seqs;
    lim.block_size = o.kv_block_size;
    lim.max_batch_tokens = o.max_batch_tokens;
    const int64_t per_seq = (static_cast<int64_t>(lim.ctx_size) + lim.block_size - 1) / lim.block_size;
    const int64_t blocks = o.num_kv_blocks > 0 ? o.num_kv_blocks : per_seq * lim.max_seqs;
    VELO_TRY(check_range("num_kv_blocks", blocks, 1, 1 << 24));
    lim.num_kv_blocks = static_cast<int32_t>(blocks);
    r->pool_ = std::make_unique<ThreadPool>(o.threads > 0 ? o.threads : physical_cores());
    VELO_ASSIGN_OR_RETURN(r->fwd_, make_forward(r->cfg_, r->weights_, lim, o, *r->pool_));
    const char* env = std::getenv("VELO_SAMPLING");
    r->device_sampling_ = o.sampling == Sampling::Auto && !(env && std::string_view(env) == "cpu");
    return std::unique_ptr<ModelRunner>(std::move(r));
  }

  const ModelConfig& config() const override { return cfg_; }
  const Tokenizer& tokenizer() const override { return *tok_; }
  const ChatTemplate& chat_template() const override { return tmpl_; }
  int32_t n_vocab() const override { return cfg_.n_vocab; }
  int32_t ctx_size() const override { return fwd_->limits().ctx_size; }
  int32_t block_size() const override { return fwd_->limits().block_size; }
  int32_t num_kv_blocks() const override { return fwd_->limits().num_kv_blocks; }
  int32_t max_batch_tokens() const override { return fwd_->limits().max_batch_tokens; }
  std::string device() const override { return fwd_->describe(); }

  Result<std::span<const float>> execute(const StepPlan& plan) override { return fwd_->forward(plan); }
  Result<std::span<const float>> execute_all(const StepPlan& plan) override { return fwd_->forward_all(plan); }
  int32_t max_sample_penalty_tokens() const override {
    return device_sampling_ ? fwd_->max_sample_penalty_tokens() : -1;
  }
  Status execute_sample(const StepPlan& plan, const SampleBatch& batch, std::span<int32_t> tokens) override {
    if (!device_sampling_) return make_error("sampling on the device is turned off");
    return fwd_->forward_sample(plan, batch, tokens);
  }

  void copy_block(int32_t src, int32_t dst) override {
    const int32_t n = fwd_->limits().num_kv_blocks;
    if (src < 0 || dst < 0 || src >= n || dst >= n || src == dst) return;  // ids come from our own block pool
    fwd_->copy_block(src, dst);
  }

 private:
  Runner() = default;
  std::unique_ptr<gguf::File> file_;  // mapped weights: must outlive weights_ and fwd_
  ModelConfig cfg_;
  ModelWeights weights_;
  std::unique_ptr<Tokenizer> tok_;
  ChatTemplate tmpl_;
  std::unique_ptr<ThreadPool> pool_;
  bool device_sampling_ = false;   // RunnerOptions::sampling (and VELO_SAMPLING) allow it
  std::unique_ptr<Forward> fwd_;  // destroyed first (declared last)
};

}  // namespace

std::optional<Device> device_from_name(std::string_view s) {
  if (s == "auto") return Device::Auto;
  if (s == "cpu") return Device::Cpu;
  if (s == "cuda" || s == "gpu") return Device::Cuda;
  return std::nullopt;
}

Result<std::unique_ptr<ModelRunner>> ModelRunner::load(const std::string& gguf_path, const RunnerOptions& opts) {
  return Runner::create(gguf_path, opts);
}

}  // namespace velo
