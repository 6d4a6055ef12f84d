#include "tokenizer/pretokenize.h"

#include <initializer_list>

#include "tokenizer/unicode.h"

namespace velo::pretok {

namespace {

using unicode::flags;
constexpr uint32_t kOut = 0xFFFFFFFF;  // "no codepoint": past the end of the segment

// One segment [ini, end) of the text as the splitters see it: reads past either end give
// kOut / no flags, so lookahead stops at segment borders like llama.cpp's.
struct Seg {
  std::span<const uint32_t> cps;
  size_t ini, end;
  uint32_t cp(size_t p) const { return p >= ini && p < end ? cps[p] : kOut; }
  uint16_t fl(size_t p) const { return p >= ini && p < end ? flags(cps[p]) : uint16_t{0}; }
};

bool is_letter(uint16_t f) { return f & unicode::kLetter; }
bool is_number(uint16_t f) { return f & unicode::kNumber; }
bool is_space(uint16_t f) { return f & unicode::kWhitespace; }
// [^\s\p{L}\p{N}] for a codepoint inside the segment.
bool is_other(uint16_t f) { return f != 0 && !(f & (unicode::kWhitespace | unicode::kLetter | unicode::kNumber)); }

// Emits words while scanning one segment.
struct Emitter {
  std::vector<uint32_t>& out;
  size_t prev;
  size_t add(size_t end) {
    size_t len = end - prev;
    if (len > 0) out.push_back(static_cast<uint32_t>(len));
    prev = end;
    return len;
  }
};

// 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive (llama3/qwen2 lower ASCII only,
// which is exact: no non-ASCII codepoint lowercases to these letters). Returns length or 0.
size_t contraction(const Seg& s, size_t pos, bool icase) {
  if (s.cp(pos) != '\'' || pos + 1 >= s.end) return 0;
  auto low = [&](uint32_t c) { return icase && c >= 'A' && c <= 'Z' ? c + 32 : c; };
  uint32_t a = low(s.cp(pos + 1));
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (pos + 2 >= s.end) return 0;
  uint32_t b = low(s.cp(pos + 2));
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(const Seg& s, std::vector<uint32_t>& out) {
  Emitter em{out, s.ini};
  for (size_t pos = s.ini; pos < s.end;) {
    const uint32_t c = s.cp(pos);
    if (size_t n = contraction(s, pos, false)) {
      pos += em.add(pos + n);
      continue;
    }
    uint16_t f2 = c == ' ' ? s.fl(pos + 1) : s.fl(pos);
    if (is_letter(f2) || is_number(f2) || is_other(f2)) {
      auto same = is_letter(f2) ? is_letter : is_number(f2) ? is_number : is_other;
      pos += (c == ' ');
      while (same(f2)) f2 = s.fl(++pos);
      em.add(pos);
      continue;
    }
    size_t nws = 0;
    while (is_space(s.fl(pos + nws))) ++nws;
    if (nws > 1 && s.cp(pos + nws) != kOut) {  // \s+(?!\S): leave the last space to the next word
      pos += nws - 1;
      em.add(pos);
      continue;
    }
    if (nws > 0) {
      pos += nws;
      em.add(pos);
      continue;
    }
    em.add(++pos);
  }
}

// llama3 (max_digits 3):
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// qwen2 is the same with \p{N} (max_digits 1).
void split_llama3(const Seg& s, size_t max_digits, std::vector<uint32_t>& out) {
  Emitter em{out, s.ini};
  for (size_t pos = s.ini; pos < s.end;) {
    const uint32_t c = s.cp(pos);
    const uint16_t f = s.fl(pos);
    if (size_t n = contraction(s, pos, true)) {
      pos += em.add(pos + n);
      continue;
    }
    if (!(c == '\r' || c == '\n' || is_number(f)) && (is_letter(f) || is_letter(s.fl(pos + 1)))) {
      ++pos;
      while (is_letter(s.fl(pos))) ++pos;
      em.add(pos);
      continue;
    }
    if (is_number(f)) {
      size_t ini = pos;
      while (is_number(s.fl(pos))) {
        if (++pos - ini >= max_digits) {
          em.add(pos);
          ini = pos;
        }
      }
      em.add(pos);
      continue;
    }
    uint16_t f2 = c == ' ' ? s.fl(pos + 1) : f;
    if (!(f2 & (unicode::kWhitespace | unicode::kLetter | unicode::kNumber)) && f != 0) {
      pos += (c == ' ');
      while (is_other(f2)) f2 = s.fl(++pos);
      for (uint32_t c2 = s.cp(pos); c2 == '\r' || c2 == '\n'; c2 = s.cp(++pos)) {
      }
      em.add(pos);
      continue;
    }
    size_t nws = 0, last_rn = 0;
    while (is_space(s.fl(pos + nws))) {
      uint32_t c2 = s.cp(pos + nws);
      if (c2 == '\r' || c2 == '\n') last_rn = pos + nws + 1;
      ++nws;
    }
    if (last_rn > 0) {  // \s*[\r\n]+
      pos = last_rn;
      em.add(pos);
      continue;
    }
    if (nws > 1 && s.cp(pos + nws) != kOut) {
      pos += nws - 1;
      em.add(pos);
      continue;
    }
    if (nws > 0) {
      pos += nws;
      em.add(pos);
      continue;
    }
    em.add(++pos);
  }
}

// std::regex-style "isolate" splits on llama.cpp's category-collapsed text: matches and
// the gaps between them both become segments.
bool ascii_punct_default(uint32_t c) {  // [\p{P}\$\+<=>\^~\|] restricted to ASCII
  switch (c) {
    case '!': case '"': case '#': case '%': case '&': case '\'': case '(': case ')': case '*':
    case ',': case '-': case '.': case '/': case ':': case ';': case '?': case '@': case '[':
    case '\\': case ']': case '_': case '{': case '}': case '$': case '+': case '<': case '=':
    case '>': case '^': case '~': case '|':
      return true;
    default:
      return false;
  }
}
// Category test as the collapsed text sees it: non-ASCII whitespace collapses to \v first.
bool collapsed_is(uint32_t c, uint16_t cat) {
  if (c < 128) return false;
  uint16_t f = flags(c);
  return !(f & unicode::kWhitespace) && (f & unicode::kCategoryMask) == cat;
}
bool punct_default(uint32_t c) { return c < 128 ? ascii_punct_default(c) : collapsed_is(c, unicode::kPunct); }
bool number_cp(uint32_t c) { return c < 128 ? (c >= '0' && c <= '9') : collapsed_is(c, unicode::kNumber); }
bool ascii_digit(uint32_t c) { return c >= '0' && c <= '9'; }

// Each maximal run of `pred` codepoints (or each single one when !runs) is isolated.
template <class Pred>
void isolate(const Seg& s, Pred pred, bool runs, std::vector<uint32_t>& out) {
  Emitter em{out, s.ini};
  for (size_t pos = s.ini; pos < s.end;) {
    if (!pred(s.cps[pos])) {
      ++pos;
      continue;
    }
    em.add(pos);
    size_t e = pos + 1;
    if (runs)
      while (e < s.end && pred(s.cps[e])) ++e;
    em.add(e);
    pos = e;
  }
  em.add(s.end);
}

// [0-9][0-9][0-9], leftmost non-overlapping matches.
void isolate_digit_triples(const Seg& s, std::vector<uint32_t>& out) {
  Emitter em{out, s.ini};
  for (size_t pos = s.ini; pos < s.end;) {
    if (pos + 3 <= s.end && ascii_digit(s.cps[pos]) && ascii_digit(s.cps[pos + 1]) &&
        ascii_digit(s.cps[pos + 2])) {
      em.add(pos);
      em.add(pos + 3);
      pos += 3;
    } else {
      ++pos;
    }
  }
  em.add(s.end);
}

// Runs one stage over every current segment.
template <class F>
void stage(std::span<const uint32_t> cps, std::vector<uint32_t>& lens, std::vector<uint32_t>& tmp, F f) {
  tmp.clear();
  size_t start = 0;
  for (uint32_t len : lens) {
    f(Seg{cps, start, start + len}, tmp);
    start += len;
  }
  lens.swap(tmp);
}

}  // namespace

std::optional<PreConfig> parse_pre_type(std::string_view pre) {
  auto in = [&](std::initializer_list<std::string_view> names) {
    for (auto n : names)
      if (pre == n) return true;
    return false;
  };
  if (pre.empty() || pre == "default") return PreConfig{PreType::Default, true, false, false};
  if (in({"gpt-2", "phi-2", "roberta-bpe", "mpt", "olmo"})) return PreConfig{PreType::Gpt2, true, false, false};
  if (in({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"}))
    return PreConfig{PreType::Llama3, true, true, true};
  if (in({"qwen2", "deepseek-r1-qwen"})) return PreConfig{PreType::Qwen2, false, false, false};
  if (pre == "stablelm2") return PreConfig{PreType::Qwen2, true, false, false};
  if (pre == "smollm") return PreConfig{PreType::Smollm, false, false, false};
  if (in({"starcoder", "refact", "codeshell"})) return PreConfig{PreType::Smollm, true, false, false};
  return std::nullopt;
}

void split(PreType type, std::span<const uint32_t> cps, std::vector<uint32_t>& lens) {
  lens.clear();
  if (cps.empty()) return;
  lens.push_back(static_cast<uint32_t>(cps.size()));
  std::vector<uint32_t> tmp;
  tmp.reserve(cps.size() / 2 + 1);
  switch (type) {
    case PreType::Gpt2:
      stage(cps, lens, tmp, split_gpt2);
      break;
    case PreType::Smollm:
      stage(cps, lens, tmp, [](const Seg& s, auto& o) { isolate(s, number_cp, false, o); });
      stage(cps, lens, tmp, split_gpt2);
      break;
    case PreType::Llama3:
      stage(cps, lens, tmp, [](const Seg& s, auto& o) { split_llama3(s, 3, o); });
      break;
    case PreType::Qwen2:
      stage(cps, lens, tmp, [](const Seg& s, auto& o) { split_llama3(s, 1, o); });
      break;
    case PreType::Default:
      stage(cps, lens, tmp, [](const Seg& s, auto& o) { isolate(s, punct_default, true, o); });
      stage(cps, lens, tmp, split_gpt2);
      stage(cps, lens, tmp, [](const Seg& s, auto& o) { isolate(s, number_cp, true, o); });
      stage(cps, lens, tmp, isolate_digit_triples);
      break;
  }
}

}  // namespace velo::pretok
