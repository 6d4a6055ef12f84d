#include "tokenizer/encoders.h"

#include <algorithm>
#include <deque>

#include "tokenizer/unicode.h"

namespace velo::tok {

namespace {

struct SpmSym {
  uint32_t start, n;
  int32_t prev, next;
};
struct SpmPair {
  float score;
  int32_t left, right;
  uint32_t size;
};
// Max-heap order: highest score, then leftmost (llama.cpp's comparator).
struct SpmLess {
  bool operator()(const SpmPair& a, const SpmPair& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

void spm_encode(const Vocab& v, std::string_view text, std::vector<Token>& out) {
  if (text.empty()) return;
  std::vector<SpmSym> syms;
  syms.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    size_t len = std::min(text.size() - off, unicode::utf8_len(static_cast<uint8_t>(text[off])));
    int32_t i = static_cast<int32_t>(syms.size());
    syms.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(len), i - 1, -1});
    off += len;
    if (off < text.size()) syms.back().next = i + 1;
  }
  std::vector<SpmPair> heap;
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    uint32_t size = syms[l].n + syms[r].n;
    Token t = v.find(text.substr(syms[l].start, size));
    if (t < 0) return;
    heap.push_back({v.score[t], l, r, size});
    std::push_heap(heap.begin(), heap.end(), SpmLess{});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(syms.size()); ++i) try_add(i - 1, i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), SpmLess{});
    SpmPair p = heap.back();
    heap.pop_back();
    SpmSym& l = syms[p.left];
    SpmSym& r = syms[p.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != p.size) continue;  // stale
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = p.left;
    try_add(l.prev, p.left);
    try_add(p.left, l.next);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) {
    std::string_view s = text.substr(syms[i].start, syms[i].n);
    Token t = v.find(s);
    if (t >= 0) {
      out.push_back(t);
      continue;
    }
    for (unsigned char c : s) {  // not a token: byte fallback (<0xXX>), else <unk>
      Token b = v.byte_token[c] >= 0 ? v.byte_token[c] : v.unk;
      if (b >= 0) out.push_back(b);
    }
  }
}

namespace {
struct BpeLess {  // max-heap order: lowest rank, then leftmost
  template <class P>
  bool operator()(const P& a, const P& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};
constexpr size_t kMaxCachedWords = 1 << 16;
}  // namespace

void BpeSession::encode(std::string_view text, std::vector<Token>& out) {
  // llama.cpp decodes the fragment (bad bytes -> U+FFFD) and re-encodes every word.
  cps_.clear();
  for (size_t pos = 0; pos < text.size();) cps_.push_back(unicode::decode_lenient(text, pos));
  norm_.clear();
  norm_.reserve(text.size() + 16);
  pretok::split(v_.pre, cps_, lens_);
  size_t ci = 0;
  for (uint32_t len : lens_) {
    size_t start = norm_.size();
    for (uint32_t k = 0; k < len; ++k) unicode::append_utf8(cps_[ci + k], norm_);
    ci += len;
    std::string_view word(norm_.data() + start, norm_.size() - start);
    if (const auto* hit = cache_.find(word)) {
      out.insert(out.end(), cached_.begin() + hit->first, cached_.begin() + hit->first + hit->second);
      continue;
    }
    size_t before = out.size();
    encode_word(word, out);
    if (cache_.size() < kMaxCachedWords && word.size() <= 64) {
      keys_.emplace_back(word);
      cache_.put(keys_.back(), {static_cast<uint32_t>(cached_.size()), static_cast<uint32_t>(out.size() - before)});
      cached_.insert(cached_.end(), out.begin() + before, out.end());
    }
  }
}

void BpeSession::encode_word(std::string_view w, std::vector<Token>& out) {
  if (v_.ignore_merges) {  // llama3: a word that is a whole token is taken as is
    std::string enc;
    for (unsigned char c : w) unicode::append_utf8(unicode::byte_to_cp(c), enc);
    if (Token t = v_.find(enc); t >= 0) {
      out.push_back(t);
      return;
    }
  }
  // One symbol per byte (each byte is one byte-level codepoint).
  syms_.clear();
  heap_.clear();
  const int32_t nb = static_cast<int32_t>(w.size());
  for (int32_t i = 0; i < nb; ++i)
    syms_.push_back({v_.byte_sym[static_cast<uint8_t>(w[i])], static_cast<uint32_t>(i), 1, i - 1, i + 1 < nb ? i + 1 : -1});
  auto add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    int32_t a = syms_[l].id, b = syms_[r].id;
    if (a < 0 || b < 0) return;
    const Vocab::Merge* m = v_.merges.find((static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b));
    if (!m) return;
    heap_.push_back({m->rank, l, r, m->merged, syms_[l].n, syms_[r].n});
    std::push_heap(heap_.begin(), heap_.end(), BpeLess{});
  };
  for (int32_t i = 1; i < nb; ++i) add(i - 1, i);
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), BpeLess{});
    Pair p = heap_.back();
    heap_.pop_back();
    Sym& l = syms_[p.left];
    Sym& r = syms_[p.right];
    if (l.n != p.nl || r.n != p.nr || r.n == 0) continue;  // stale: one side changed since queued
    l.n += r.n;
    l.id = p.merged;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms_[r.next].prev = p.left;
    add(l.prev, p.left);
    add(p.left, l.next);
  }
  const int32_t nv = v_.n();
  for (int32_t i = 0; i >= 0 && nb > 0; i = syms_[i].next) {
    const Sym& s = syms_[i];
    if (s.id >= 0 && s.id < nv) {
      out.push_back(s.id);
      continue;
    }
    for (uint32_t k = 0; k < s.n; ++k) {  // not a token: llama.cpp's per-byte fallback
      const auto& fb = v_.byte_fallback[static_cast<uint8_t>(w[s.start + k])];
      out.insert(out.end(), fb.begin(), fb.end());
    }
  }
}

}  // namespace velo::tok
