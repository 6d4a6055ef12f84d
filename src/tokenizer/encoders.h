// The two merge algorithms, run on one raw-text fragment (no special tokens inside).
// Both keep symbols in a linked list over the text and merge the best adjacent pair from a
// binary heap, so a fragment of n bytes costs O(n log n) whatever its shape.
#pragma once
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace velo::tok {

// SentencePiece BPE: merges the adjacent pair whose concatenation is the vocab token with
// the highest score; leftover symbols that are not tokens become byte tokens. `text` must
// already have spaces replaced by U+2581.
void spm_encode(const Vocab& v, std::string_view text, std::vector<Token>& out);

// Byte-level BPE: pre-tokenizer words, each merged by lowest merge rank. Words repeat, so
// results are cached for the lifetime of one BpeSession (one encode call).
class BpeSession {
 public:
  explicit BpeSession(const Vocab& v) : v_(v) {}
  void encode(std::string_view text, std::vector<Token>& out);

 private:
  void encode_word(std::string_view word, std::vector<Token>& out);
  const Vocab& v_;
  std::vector<uint32_t> cps_, lens_;
  std::string norm_;  // the fragment re-encoded from its codepoints (invalid bytes -> U+FFFD)
  struct Sym {
    int32_t id;        // interned symbol id, -1 if it can never merge
    uint32_t start, n; // byte range in the word
    int32_t prev, next;
    int32_t rank, merged;  // pending merge of (this, next): rank -1 when none
  };
  std::vector<Sym> syms_;
  std::vector<uint64_t> heap_;  // (rank << 32 | left symbol), see encoders.cpp
  std::deque<std::string> keys_;  // owned copies of cached words; a deque never moves them
  StrMap<std::pair<uint32_t, uint32_t>> cache_{1024};  // word -> (offset, count) in cached_
  std::vector<Token> cached_;
};

}  // namespace velo::tok
