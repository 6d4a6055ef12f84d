// Pre-tokenizers of byte-level BPE vocabularies (tokenizer.ggml.pre): split text into words
// before BPE, exactly as llama.cpp's hand-written regex splitters do. Hand-written rather
// than std::regex: linear time and real Unicode categories.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace velo::pretok {

enum class PreType { Default, Gpt2, Llama3, Qwen2, Smollm };

// What a tokenizer.ggml.pre value implies (llama.cpp's table, for the names we support).
struct PreConfig {
  PreType type = PreType::Default;
  bool clean_spaces = true;    // detokenizer drops spaces before ?!., and some apostrophes
  bool ignore_merges = false;  // a word that is a whole vocab token skips BPE (llama3)
  bool add_bos = false;        // default for tokenizer.ggml.add_bos_token
};
// nullopt when the value is not supported.
std::optional<PreConfig> parse_pre_type(std::string_view pre);

// Splits the codepoints `cps` into words; appends each word's length (in codepoints) to
// `word_lens` (cleared first). The lengths sum to cps.size().
void split(PreType type, std::span<const uint32_t> cps, std::vector<uint32_t>& word_lens);

}  // namespace velo::pretok
