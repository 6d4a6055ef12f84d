// ModelRunner: owns a loaded model (weights, tokenizer, chat template), its
// paged KV storage and the backend, and executes StepPlans. It makes no
// scheduling decisions: block tables come from the caller (scheduler, or a
// trivial contiguous table for a single sequence).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "engine/step_plan.h"
#include "model/forward.h"  // SampleArgs, SampleBatch
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace velo {

struct ModelConfig;  // model/config.h

// Where the forward pass runs. Auto: the GPU when this build has CUDA and one is
// usable (with as many layers as fit), else the CPU.
enum class Device : uint8_t { Auto, Cpu, Cuda };
// "auto", "cpu", "cuda" (also "gpu"); nullopt otherwise.
std::optional<Device> device_from_name(std::string_view s);

// Where tokens are sampled. Auto: on the device when the forward pass can
// (CUDA with the LM head on the GPU) and the step's requests allow it, else on
// the CPU. Cpu: always on the CPU (A/B figures, tests). The environment
// variable VELO_SAMPLING=cpu forces Cpu for a whole process.
enum class Sampling : uint8_t { Auto, Cpu };

struct RunnerOptions {
  Device device = Device::Auto;
  int32_t gpu_layers = -1;       // CUDA: layers on the GPU (-1: as many as fit); the rest run on the CPU
  bool gpu_exact = false;        // CUDA: steps of <= 8 tokens in the CPU backend's exact float order
                                 // (greedy output identical to the CPU's; slower at long contexts)
  int32_t threads = 0;           // 0: the machine's physical cores
  int32_t ctx_size = 0;          // max tokens per sequence; 0: the model's training context (capped at 8192)
  int32_t max_seqs = 1;          // sequences that may be resident at once
  int32_t kv_block_size = 16;    // tokens per KV block
  int32_t num_kv_blocks = 0;     // 0: enough for max_seqs full contexts
  int32_t max_batch_tokens = 512;  // largest StepPlan::num_tokens() accepted
  Sampling sampling = Sampling::Auto;
};

class ModelRunner {
 public:
  static Result<std::unique_ptr<ModelRunner>> load(const std::string& gguf_path, const RunnerOptions& opts);
  virtual ~ModelRunner() = default;

  virtual const ModelConfig& config() const = 0;
  virtual const Tokenizer& tokenizer() const = 0;
  virtual const ChatTemplate& chat_template() const = 0;
  virtual int32_t n_vocab() const = 0;
  virtual int32_t ctx_size() const = 0;
  virtual int32_t block_size() const = 0;
  virtual int32_t num_kv_blocks() const = 0;
  virtual int32_t max_batch_tokens() const = 0;
  // Where the forward pass runs ("cpu (2 threads)", "cuda:0 NVIDIA H100 ... (32/32 layers, ...)").
  virtual std::string device() const { return "cpu"; }

  // Runs one forward step over all scheduled tokens. Returns n_vocab logits per
  // sequence with need_logits, in plan order; valid until the next execute().
  virtual Result<std::span<const float>> execute(const StepPlan& plan) = 0;
  // Same step, but n_vocab logits for every scheduled token ([plan.num_tokens(), n_vocab],
  // plan order), e.g. to verify speculative tokens. Runners without it return an error.
  virtual Result<std::span<const float>> execute_all(const StepPlan& plan) {
    (void)plan;
    return make_error("this runner cannot return logits for every token");
  }
  // Sampling on the device (see Forward::forward_sample): the most penalty
  // (token, count) pairs one step may pass, or -1 when this runner cannot
  // sample on its device (CPU, the head on the CPU, or Sampling::Cpu).
  virtual int32_t max_sample_penalty_tokens() const { return -1; }
  // Runs the step and samples there: one SampleArgs per need_logits sequence
  // (plan order) in, one token id (or a SampleFailure code) per sequence out.
  virtual Status execute_sample(const StepPlan& plan, const SampleBatch& batch, std::span<int32_t> tokens) {
    (void)plan, (void)batch, (void)tokens;
    return make_error("this runner cannot sample on its device");
  }
  // Copies the K/V contents of one block into another (copy-on-write of a shared partial block).
  virtual void copy_block(int32_t src, int32_t dst) = 0;
};

}  // namespace velo
