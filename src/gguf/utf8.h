// Strict UTF-8 validation for text that comes from untrusted files.
#pragma once
#include <string>
#include <string_view>

namespace velo::gguf {

// True when `s` is well-formed UTF-8: no overlong forms, no surrogates
// (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequences.
bool valid_utf8(std::string_view s);

}  // namespace velo::gguf

namespace velo::gguf {

// `s` made safe for a one-line message: printable ASCII is kept, every other
// byte becomes \xNN, and text past `max` bytes is cut with "...".
std::string printable(std::string_view s, size_t max = 80);

}  // namespace velo::gguf
