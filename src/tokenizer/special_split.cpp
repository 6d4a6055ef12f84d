// Special-token splitting with llama.cpp's semantics but without its O(tokens * n) scan.
// llama.cpp takes special tokens longest first and cuts every occurrence of each out of the
// remaining raw text, left to right. Equivalently: among all (position, length) matches,
// accept them in order (length desc, position asc), skipping any that overlap an accepted
// one. We find only the longest match per position with a trie, and when it is rejected
// look for the longest one that still fits before the next accepted span.
#include <map>
#include <queue>

#include "tokenizer/vocab.h"

namespace velo::tok {

namespace {

// Longest special token starting at `pos` with length <= `limit`; {0, -1} if none.
std::pair<size_t, Token> longest_at(const Vocab& v, std::string_view text, size_t pos, size_t limit,
                                    bool parse_special) {
  std::pair<size_t, Token> best{0, -1};
  uint32_t node = 0;
  for (size_t i = pos; i < text.size() && i - pos < limit; ++i) {
    const auto& nd = v.trie[node];
    const uint8_t c = static_cast<uint8_t>(text[i]);
    uint32_t lo = nd.edge_begin, hi = nd.edge_end;  // binary search the sorted children
    while (lo < hi) {
      uint32_t mid = (lo + hi) / 2;
      if (v.edges[mid].byte < c) lo = mid + 1;
      else hi = mid;
    }
    if (lo == nd.edge_end || v.edges[lo].byte != c) break;
    node = v.edges[lo].child;
    Token t = v.trie[node].token;
    if (t >= 0 && (parse_special || !v.has_attr(t, kControl | kUnknown))) best = {i + 1 - pos, t};
  }
  return best;
}

struct Cand {
  size_t len, pos;
  Token token;
  bool operator<(const Cand& o) const {  // max-heap: longest first, then leftmost
    return len != o.len ? len < o.len : pos > o.pos;
  }
};

}  // namespace

void split_special(const Vocab& v, std::string_view text, bool parse_special, std::vector<Fragment>& out) {
  out.clear();
  std::priority_queue<Cand> heap;
  for (size_t p = 0; p < text.size(); ++p) {
    const uint8_t c = static_cast<uint8_t>(text[p]);
    if (!(v.first_byte[c >> 6] >> (c & 63) & 1)) continue;
    auto [len, tok] = longest_at(v, text, p, text.size() - p, parse_special);
    if (tok >= 0) heap.push({len, p, tok});
  }
  std::map<size_t, std::pair<size_t, Token>> accepted;  // start -> (end, token)
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    auto next = accepted.upper_bound(c.pos);
    if (next != accepted.begin() && std::prev(next)->second.first > c.pos) continue;  // inside a match
    size_t room = (next == accepted.end() ? text.size() : next->first) - c.pos;
    if (c.len <= room) {
      accepted.emplace(c.pos, std::make_pair(c.pos + c.len, c.token));
      continue;
    }
    auto [len, tok] = longest_at(v, text, c.pos, room, parse_special);
    if (tok >= 0) heap.push({len, c.pos, tok});
  }
  size_t at = 0;
  for (const auto& [s, et] : accepted) {
    if (s > at) out.push_back({at, s - at, -1});
    out.push_back({s, et.first - s, et.second});
    at = et.first;
  }
  if (at < text.size()) out.push_back({at, text.size() - at, -1});
}

}  // namespace velo::tok
