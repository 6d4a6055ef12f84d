// Synthetic models: random weights in the exact shapes of a real model, with a
// real vocabulary copied from another GGUF, so hardware can be benchmarked
// without multi-gigabyte downloads (`velollm synth`). The files load in our
// loader and in llama.cpp: same metadata keys, tensor names, shapes and the
// tensor-type mix llama.cpp's quantizer would choose.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/result.h"
#include "model/config.h"

namespace velo::synth {

// The hyperparameters of a real model (values from its Hugging Face config.json).
struct Preset {
  std::string_view name;  // "llama-3.1-8b"
  Arch arch = Arch::Llama;
  int32_t n_layer = 0, n_embd = 0, n_ff = 0, n_head = 0, n_head_kv = 0, head_dim = 0;
  int32_t n_vocab = 0;  // rows of token_embd / output
  int32_t n_ctx = 0;    // training context (<arch>.context_length)
  float rope_base = 10000.0f;
  float norm_eps = 1e-5f;
  // llama3 RoPE scaling (written as a rope_freqs tensor); factor 0: none.
  float rope_factor = 0, rope_low_freq = 1, rope_high_freq = 4;
  int32_t rope_orig_ctx = 8192;
  int32_t sliding_window = 0;  // gemma3: window of its local layers
  bool tied = false;           // output projection shares token_embd
};

std::span<const Preset> presets();
const Preset* find_preset(std::string_view name);
std::string preset_names();  // "llama-3.1-8b, llama-3.2-1b, ..."

// Weight types accepted by --type (bf16 f16 q8_0 q4_k q4_0 q6_k). q4_k writes
// llama.cpp's Q4_K_M mix (some attn_v/ffn_down in Q6_K), the others are uniform
// but for the output projection, which is Q6_K for 4-bit types as llama.cpp does.
std::optional<GgmlType> parse_type(std::string_view name);
std::string type_names();

struct Options {
  Preset preset;                  // a table entry, possibly edited (tests shrink the dims)
  GgmlType type = GgmlType::Q4_K;
  std::string vocab_from;         // GGUF whose tokenizer.* metadata is copied
  std::string out;                // file to write (written as OUT.tmp-PID, then renamed)
  uint64_t seed = 1;
  int32_t threads = 0;            // 0: every logical CPU
  // Called after each written piece (bytes of tensor data done, of total); may be empty.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

// What a tensor's values are: matrices and biases ~U with std 0.02, norms 1 +- 0.017,
// rope_freqs the llama3 scaling divisors.
enum class Fill : uint8_t { Weight, Bias, Norm, RopeFreqs };

// One tensor as it will be written.
struct TensorPlan {
  std::string name;
  GgmlType type;
  std::vector<uint64_t> ne;  // ne[0] = row length
  uint64_t bytes = 0;
  Fill fill = Fill::Weight;
};

struct Plan {
  int32_t n_vocab = 0;       // token_embd rows = tokens in the file
  int32_t source_tokens = 0; // tokens in --vocab-from
  int32_t pad_tokens = 0;    // "<|synth_pad_N|>" CONTROL tokens appended
  uint64_t n_params = 0;     // elements of all tensors
  uint64_t data_bytes = 0;   // tensor bytes (without alignment padding)
  std::vector<TensorPlan> tensors;
  std::vector<std::string> notes;  // type fallbacks, vocabulary size changes
};

// The tensors and vocabulary size the options produce (reads --vocab-from's token count).
Result<Plan> plan(const Options& o);

// Writes the model; returns the plan it followed.
Result<Plan> write_model(const Options& o);

}  // namespace velo::synth
