#include "tokenizer/unicode.h"

#include <array>
#include <memory>

namespace velo::unicode {

namespace {

constexpr uint32_t kMaxCp = 0x110000;

// Flat table built once from the run-length ranges: 2.2 MB, one load per lookup.
const uint16_t* flag_table() {
  static const std::unique_ptr<uint16_t[]> table = [] {
    auto t = std::make_unique<uint16_t[]>(kMaxCp);
    for (size_t i = 0; i < kNumCodepointRanges; ++i) {
      uint32_t end = i + 1 < kNumCodepointRanges ? kCodepointRanges[i + 1].start : kMaxCp;
      for (uint32_t c = kCodepointRanges[i].start; c < end; ++c) t[c] = kCodepointRanges[i].flags;
    }
    return t;
  }();
  return table.get();
}

struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 512> from_cp{};  // every mapped codepoint is below U+0144
  ByteMap() {
    from_cp.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      from_cp[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

}  // namespace

uint16_t flags(uint32_t cp) { return cp < kMaxCp ? flag_table()[cp] : uint16_t{kUndefined}; }

uint32_t decode_lenient(std::string_view s, size_t& pos) {
  auto at = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  auto cont = [&](size_t i) { return i < s.size() && (at(i) & 0xC0) == 0x80; };
  const uint8_t c = at(pos);
  if (c < 0x80) {
    pos += 1;
    return c;
  }
  uint32_t cp = kReplacement;
  size_t n = 1;
  if ((c & 0x40) == 0) {
    // stray continuation byte
  } else if ((c & 0x20) == 0) {
    if (cont(pos + 1)) cp = ((c & 0x1Fu) << 6) | (at(pos + 1) & 0x3Fu), n = 2;
  } else if ((c & 0x10) == 0) {
    if (cont(pos + 1) && cont(pos + 2))
      cp = ((c & 0x0Fu) << 12) | ((at(pos + 1) & 0x3Fu) << 6) | (at(pos + 2) & 0x3Fu), n = 3;
  } else if ((c & 0x08) == 0) {
    if (cont(pos + 1) && cont(pos + 2) && cont(pos + 3)) {
      cp = ((c & 0x07u) << 18) | ((at(pos + 1) & 0x3Fu) << 12) | ((at(pos + 2) & 0x3Fu) << 6) |
           (at(pos + 3) & 0x3Fu);
      n = 4;
      if (cp >= kMaxCp) cp = kReplacement;
    }
  }
  pos += n;
  return cp;
}

std::vector<uint32_t> decode_all(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) out.push_back(decode_lenient(s, pos));
  return out;
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {
// Strict check of one sequence at `pos`: its length, 0 when invalid, or -1 when the string
// ends inside a sequence that is valid so far.
int strict_seq(std::string_view s, size_t pos) {
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t c = b(pos);
  if (c < 0x80) return 1;
  int n;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if (c >= 0xE1 && c <= 0xEC) n = 3;
  else if (c == 0xED) n = 3, hi = 0x9F;
  else if (c >= 0xEE && c <= 0xEF) n = 3;
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else if (c == 0xF4) n = 4, hi = 0x8F;
  else return 0;
  for (int k = 1; k < n; ++k) {
    if (pos + k >= s.size()) return -1;
    uint8_t x = b(pos + k);
    if (k == 1 ? (x < lo || x > hi) : (x & 0xC0) != 0x80) return 0;
  }
  return n;
}
}  // namespace

int valid_seq_len(std::string_view s, size_t pos) { return strict_seq(s, pos); }

bool valid_utf8(std::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    int n = strict_seq(s, pos);
    if (n <= 0) return false;
    pos += static_cast<size_t>(n);
  }
  return true;
}

size_t complete_utf8_prefix(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    int n = strict_seq(s, pos);
    if (n < 0) return pos;  // incomplete tail: hold it back
    pos += n == 0 ? 1 : static_cast<size_t>(n);
  }
  return pos;
}

uint32_t byte_to_cp(uint8_t b) { return byte_map().to_cp[b]; }

int byte_of(uint32_t cp) { return cp < 512 ? byte_map().from_cp[cp] : -1; }

}  // namespace velo::unicode
