// The vocabulary a tokenizer is built from (tokenizer.ggml.* in GGUF), validated once:
// token texts/scores/attributes, special ids, flags, BPE merges, and the special-token
// splitter. Every index into it is checked here so the encoders can trust it.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "gguf/gguf.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/str_map.h"

namespace velo::tok {

using Token = int32_t;

// Token attributes as bit flags (llama.cpp may add CONTROL to an end-of-generation token).
enum Attr : uint8_t {
  kNormal = 1, kUnknown = 2, kControl = 4, kUserDefined = 8, kUnused = 16, kByte = 32, kUndefined = 64,
};

enum class VocabType { Spm, Bpe };

// Limits on untrusted vocabularies (all far above real ones: Gemma 3 has 262k tokens).
inline constexpr size_t kMaxVocab = 4u << 20;
inline constexpr size_t kMaxTokenBytes = 1u << 16;
inline constexpr size_t kMaxMerges = 4u << 20;

struct Vocab {
  VocabType type = VocabType::Spm;
  std::string model;  // "llama" | "gpt2"
  std::vector<std::string> text;
  std::vector<float> score;
  std::vector<uint8_t> attr;
  StrMap<Token> index;  // text -> id (a duplicated text maps to its last id, as llama.cpp)

  Token bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, pad = -1;
  bool add_bos = false, add_eos = false, add_space_prefix = false, clean_spaces = false;
  bool ignore_merges = false;
  pretok::PreType pre = pretok::PreType::Default;
  std::vector<uint8_t> eog;  // 1 for end-of-generation tokens

  // SPM: byte -> its <0xXX> token (or the one-char token), -1 when neither exists.
  Token byte_token[256];

  // BPE: symbols are "interned" strings: vocab ids for vocab texts, ids >= n_vocab for
  // strings that appear only in merges. merges[(left << 32) | right] = {rank, merged id}.
  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  U64Map<Merge> merges;
  int32_t byte_sym[256];                // byte -> interned id of its byte-level codepoint, -1 if none
  std::vector<Token> byte_fallback[256];  // tokens for a byte whose merged symbol is unknown

  // Special tokens matched whole in the input (CONTROL, USER_DEFINED, UNKNOWN).
  struct TrieNode {
    uint32_t edge_begin = 0, edge_end = 0;  // children in `edges`, sorted by byte
    Token token = -1;                       // token ending here, -1 if none
  };
  struct TrieEdge {
    uint8_t byte;
    uint32_t child;
  };
  std::vector<TrieNode> trie;
  std::vector<TrieEdge> edges;
  uint64_t first_byte[4] = {0, 0, 0, 0};  // bitset of bytes special tokens start with

  std::vector<std::string> piece;  // token_to_piece(t, render_special=true), precomputed

  int32_t n() const { return static_cast<int32_t>(text.size()); }
  Token find(std::string_view s) const {
    const Token* t = index.find(s);
    return t ? *t : -1;
  }
  bool has_attr(Token t, uint8_t a) const { return attr[static_cast<size_t>(t)] & a; }

  static Result<Vocab> from_gguf(const gguf::File& f);
};

// A piece of the input after special-token splitting: raw text or one special token.
struct Fragment {
  size_t pos = 0, len = 0;  // raw text: byte range of the input
  Token token = -1;         // >= 0: a special token
};
// Splits `text` at special-token occurrences exactly as llama.cpp does (longest tokens
// first; every occurrence of one token left to right, never across an earlier match).
// `parse_special` false matches USER_DEFINED tokens only. O(n log n + n * depth).
void split_special(const Vocab& v, std::string_view text, bool parse_special, std::vector<Fragment>& out);

}  // namespace velo::tok
