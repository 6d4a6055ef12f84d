#include "tokenizer/encoders.h"

#include <algorithm>
#include <cstring>
#include <functional>

#include "tokenizer/unicode.h"

namespace velo::tok {

namespace {

struct SpmSym {
  uint32_t start, n;
  int32_t prev, next;
  uint32_t pending;  // priority of the pair (this, next), kNone when it is not a token
};
constexpr uint32_t kNone = 0xFFFFFFFFu;

// Heap entries are one 64-bit key, (priority << 32 | left symbol), smallest first: ties go to
// the leftmost pair as in llama.cpp, and 8-byte entries keep the heap cache-friendly on huge
// inputs. The right symbol is left.next at pop time. Each symbol remembers the priority of
// the pair it currently starts (set whenever that pair changes, cleared when it is not a
// token); an entry is acted on only if its priority is still that one. An older entry with
// the same priority sits exactly where the current one does, so either gives llama.cpp's
// order (llama.cpp instead skips entries whose two sizes changed).
using Key = uint64_t;
inline Key make_key(uint32_t prio, int32_t left) { return static_cast<Key>(prio) << 32 | static_cast<uint32_t>(left); }
inline int32_t key_left(Key k) { return static_cast<int32_t>(k & 0xFFFFFFFFu); }
inline uint32_t key_prio(Key k) { return static_cast<uint32_t>(k >> 32); }

// Higher score first: map the float to an unsigned order, then invert.
inline uint32_t score_prio(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return ~u;
}

void heap_push(std::vector<Key>& h, Key k) {
  h.push_back(k);
  std::push_heap(h.begin(), h.end(), std::greater<Key>{});
}
Key heap_pop(std::vector<Key>& h) {
  std::pop_heap(h.begin(), h.end(), std::greater<Key>{});
  Key k = h.back();
  h.pop_back();
  return k;
}

}  // namespace

void spm_encode(const Vocab& v, std::string_view text, std::vector<Token>& out) {
  if (text.empty()) return;
  std::vector<SpmSym> syms;
  syms.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    size_t len = std::min(text.size() - off, unicode::utf8_len(static_cast<uint8_t>(text[off])));
    int32_t i = static_cast<int32_t>(syms.size());
    syms.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(len), i - 1, -1, kNone});
    off += len;
    if (off < text.size()) syms.back().next = i + 1;
  }
  // Recomputes the pending priority of the pair (l, l.next) and queues it.
  std::vector<Key> heap;
  heap.reserve(syms.size());
  auto update = [&](int32_t l, bool push) {
    SpmSym& sl = syms[l];
    sl.pending = kNone;
    if (sl.next < 0) return;
    Token t = v.find(text.substr(sl.start, sl.n + syms[sl.next].n));
    if (t < 0) return;
    sl.pending = score_prio(v.score[t]);
    if (sl.pending == kNone) sl.pending = kNone - 1;  // keep kNone free (a NaN score)
    if (push) heap_push(heap, make_key(sl.pending, l));
    else heap.push_back(make_key(sl.pending, l));
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) update(i, false);
  std::make_heap(heap.begin(), heap.end(), std::greater<Key>{});
  while (!heap.empty()) {
    Key k = heap_pop(heap);
    int32_t li = key_left(k);
    SpmSym& l = syms[li];
    if (l.n == 0 || l.pending != key_prio(k)) continue;  // stale
    SpmSym& r = syms[l.next];
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = li;
    if (l.prev >= 0) update(l.prev, true);
    update(li, true);
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
    syms_.push_back({v_.byte_sym[static_cast<uint8_t>(w[i])], static_cast<uint32_t>(i), 1, i - 1, i + 1 < nb ? i + 1 : -1, -1, -1});
  // Recomputes the pending merge of the pair (l, l.next) and queues it.
  auto update = [&](int32_t l, bool push) {
    Sym& sl = syms_[l];
    sl.rank = -1;
    if (sl.next < 0) return;
    int32_t a = sl.id, b = syms_[sl.next].id;
    if (a < 0 || b < 0) return;
    const Vocab::Merge* m =
        v_.merges.find((static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b));
    if (!m) return;
    sl.rank = m->rank;
    sl.merged = m->merged;
    if (push) heap_push(heap_, make_key(static_cast<uint32_t>(m->rank), l));
    else heap_.push_back(make_key(static_cast<uint32_t>(m->rank), l));
  };
  for (int32_t i = 0; i + 1 < nb; ++i) update(i, false);
  std::make_heap(heap_.begin(), heap_.end(), std::greater<Key>{});
  while (!heap_.empty()) {
    Key k = heap_pop(heap_);
    int32_t li = key_left(k);
    Sym& l = syms_[li];
    if (l.n == 0 || l.rank < 0 || static_cast<uint32_t>(l.rank) != key_prio(k)) continue;  // stale
    Sym& r = syms_[l.next];
    l.n += r.n;
    l.id = l.merged;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms_[r.next].prev = li;
    if (l.prev >= 0) update(l.prev, true);
    update(li, true);
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
