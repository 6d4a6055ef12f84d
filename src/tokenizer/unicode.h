// Unicode helpers for the tokenizers: codepoint category flags (generated tables, Unicode
// 15.1 like llama.cpp), lenient UTF-8 decoding with llama.cpp's exact error behaviour, and
// the GPT-2 byte <-> printable-codepoint map of byte-level BPE.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace velo::unicode {

enum Flag : uint16_t {
  kNumber = 1 << 0,      // \p{N}
  kLetter = 1 << 1,      // \p{L}
  kSeparator = 1 << 2,   // \p{Z}
  kMark = 1 << 3,        // \p{M}
  kPunct = 1 << 4,       // \p{P}
  kSymbol = 1 << 5,      // \p{S}
  kControl = 1 << 6,     // \p{C} except Cn
  kUndefined = 1 << 7,   // Cn (unassigned) and anything above U+10FFFF
  kWhitespace = 1 << 8,  // White_Space property (\s)
};
inline constexpr uint16_t kCategoryMask = 0xFF;

struct CodepointRange {
  uint32_t start;
  uint16_t flags;
};
extern const CodepointRange kCodepointRanges[];
extern const size_t kNumCodepointRanges;

// Flags of a codepoint (kUndefined above U+10FFFF). O(1) after a one-time table build.
uint16_t flags(uint32_t cp);

// Length of the UTF-8 sequence a lead byte announces, as llama.cpp counts it: 1 for ASCII
// and stray continuation bytes, 2/3/4 by the high nibble (0xF8..0xFF count as 4).
inline size_t utf8_len(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

inline constexpr uint32_t kReplacement = 0xFFFD;

// Decodes like llama.cpp: no overlong/surrogate checks; a malformed sequence yields U+FFFD
// and consumes one byte. Codepoints above U+10FFFF (lead bytes F4..F7) are also replaced by
// U+FFFD (llama.cpp throws there). Returns the codepoint and advances `pos`.
uint32_t decode_lenient(std::string_view s, size_t& pos);
std::vector<uint32_t> decode_all(std::string_view s);

void append_utf8(uint32_t cp, std::string& out);  // cp <= 0x10FFFF

// Strict length of the UTF-8 sequence at `pos`: 1..4, 0 when invalid, -1 when `s` ends
// inside a sequence that is valid so far.
int valid_seq_len(std::string_view s, size_t pos);
// True when `s` is a well-formed UTF-8 string (strict: no overlongs, no surrogates).
bool valid_utf8(std::string_view s);
// Length of the longest prefix of `s` that does not end inside an incomplete but so far
// valid sequence (bytes that can never become valid are part of the prefix).
size_t complete_utf8_prefix(std::string_view s);

// Byte-level BPE: byte -> codepoint (printable bytes map to themselves, the rest to
// U+0100..), and back; byte_of() returns -1 for codepoints outside the map.
uint32_t byte_to_cp(uint8_t b);
int byte_of(uint32_t cp);

}  // namespace velo::unicode
