#include "tokenizer/jinja/ustr.h"

namespace velo::jinja::ustr {

uint32_t next_cp(std::string_view s, size_t& i) {
  auto c = static_cast<uint8_t>(s[i]);
  int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
  if (n <= 0 || i + n >= s.size()) {
    ++i;
    return c;
  }
  uint32_t cp = n == 1 ? c & 0x1F : n == 2 ? c & 0x0F : c & 0x07;
  for (int k = 1; k <= n; ++k) {
    auto cc = static_cast<uint8_t>(s[i + k]);
    if ((cc & 0xC0) != 0x80) { ++i; return c; }
    cp = (cp << 6) | (cc & 0x3F);
  }
  i += n + 1;
  return cp;
}

void append_cp(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::vector<uint32_t> to_cps(std::string_view s) {
  std::vector<uint32_t> r;
  r.reserve(s.size());
  for (size_t i = 0; i < s.size();) r.push_back(next_cp(s, i));
  return r;
}

std::string from_cps(const std::vector<uint32_t>& cps, size_t begin, size_t end) {
  std::string r;
  for (size_t k = begin; k < end; ++k) append_cp(r, cps[k]);
  return r;
}

size_t length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size();) { next_cp(s, i); ++n; }
  return n;
}

bool is_space(uint32_t c) {
  return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool is_alpha(uint32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  if (c == 0xD7 || c == 0xF7) return false;
  if (c >= 0xC0 && c <= 0x24F) return true;   // Latin-1 supplement, Latin extended
  if (c >= 0x370 && c <= 0x3FF) return c != 0x37E && c != 0x387;  // Greek
  if (c >= 0x400 && c <= 0x52F) return c < 0x482 || c > 0x489;    // Cyrillic
  if (c >= 0x4E00 && c <= 0x9FFF) return true;  // CJK ideographs
  if (c >= 0x3040 && c <= 0x30FF) return c != 0x30FB;  // kana
  if (c >= 0xAC00 && c <= 0xD7A3) return true;  // Hangul
  if (c >= 0x5D0 && c <= 0x5EA) return true;    // Hebrew
  if (c >= 0x620 && c <= 0x64A) return true;    // Arabic
  return false;
}

bool is_word(uint32_t c) {
  if (c < 0x80) return is_alpha(c) || (c >= '0' && c <= '9') || c == '_';
  return is_alpha(c);
}

uint32_t upper(uint32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0x80) return c;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F) {
    bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_upper) return (c % 2 == 0) ? c - 1 : c;
    return (c % 2 == 1) ? c - 1 : c;
  }
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c == 0x3C2) return 0x3A3;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}

uint32_t lower(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0x80) return c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F) {
    bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_upper) return (c % 2 == 1) ? c + 1 : c;
    return (c % 2 == 0) ? c + 1 : c;
  }
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

static std::string map_cps(std::string_view s, uint32_t (*f)(uint32_t)) {
  std::string r;
  r.reserve(s.size());
  for (size_t i = 0; i < s.size();) append_cp(r, f(next_cp(s, i)));
  return r;
}

std::string to_upper(std::string_view s) {
  std::string r;
  r.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t c = next_cp(s, i);
    if (c == 0xDF) r += "SS";  // the one common code point whose upper case is two letters
    else append_cp(r, upper(c));
  }
  return r;
}
std::string to_lower(std::string_view s) { return map_cps(s, lower); }

std::string capitalize(std::string_view s) {
  std::string r;
  bool first = true;
  for (size_t i = 0; i < s.size();) {
    uint32_t c = next_cp(s, i);
    append_cp(r, first ? upper(c) : lower(c));
    first = false;
  }
  return r;
}

std::string py_title(std::string_view s) {
  std::string r;
  bool prev_cased = false;
  for (size_t i = 0; i < s.size();) {
    uint32_t c = next_cp(s, i);
    append_cp(r, prev_cased ? lower(c) : upper(c));
    prev_cased = is_alpha(c);
  }
  return r;
}

std::string strip(std::string_view s, const std::string* chars, bool left, bool right) {
  auto cps = to_cps(s);
  std::vector<uint32_t> set;
  if (chars) set = to_cps(*chars);
  auto drop = [&](uint32_t c) {
    if (!chars) return is_space(c);
    for (uint32_t x : set)
      if (x == c) return true;
    return false;
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && drop(cps[b])) ++b;
  if (right)
    while (e > b && drop(cps[e - 1])) --e;
  return from_cps(cps, b, e);
}

std::vector<std::string> split(std::string_view s, const std::string* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      size_t k = s.find(*sep, pos);
      if (k == std::string_view::npos) break;
      out.emplace_back(s.substr(pos, k - pos));
      pos = k + sep->size();
    }
    out.emplace_back(s.substr(pos));
    return out;
  }
  auto cps = to_cps(s);
  size_t i = 0, n = cps.size();
  while (true) {
    while (i < n && is_space(cps[i])) ++i;
    if (i >= n) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
      size_t e = n;
      while (e > i && is_space(cps[e - 1])) --e;
      out.push_back(from_cps(cps, i, e));
      break;
    }
    size_t j = i;
    while (j < n && !is_space(cps[j])) ++j;
    out.push_back(from_cps(cps, i, j));
    i = j;
  }
  return out;
}

std::string replace(std::string_view s, std::string_view old, std::string_view with, int64_t count) {
  std::string r;
  if (old.empty()) {
    // Python inserts `with` between every code point (and at both ends).
    int64_t done = 0;
    size_t i = 0;
    while (i <= s.size()) {
      if (count < 0 || done < count) { r += with; ++done; }
      if (i == s.size()) break;
      size_t j = i;
      next_cp(s, j);
      r.append(s.substr(i, j - i));
      i = j;
    }
    return r;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t k = s.find(old, pos);
    if (k == std::string_view::npos) break;
    r.append(s.substr(pos, k - pos));
    r.append(with);
    pos = k + old.size();
    ++done;
  }
  r.append(s.substr(pos));
  return r;
}

}  // namespace velo::jinja::ustr
