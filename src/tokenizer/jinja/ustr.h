// UTF-8 string helpers with Python str semantics (code points, not bytes):
// whitespace as str.isspace(), case mapping for the scripts chat templates meet.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace velo::jinja::ustr {

// Decodes one code point at s[i]; advances i. Invalid bytes decode as themselves (0x80..0xFF).
uint32_t next_cp(std::string_view s, size_t& i);
void append_cp(std::string& out, uint32_t cp);
std::vector<uint32_t> to_cps(std::string_view s);
std::string from_cps(const std::vector<uint32_t>& cps, size_t begin, size_t end);
size_t length(std::string_view s);  // code points

bool is_space(uint32_t cp);  // Python str.isspace()
bool is_alpha(uint32_t cp);  // letters (ASCII + common scripts; approximation for others)
bool is_word(uint32_t cp);   // regex \w
uint32_t upper(uint32_t cp);
uint32_t lower(uint32_t cp);

std::string to_upper(std::string_view s);
std::string to_lower(std::string_view s);
std::string capitalize(std::string_view s);  // str.capitalize()
std::string py_title(std::string_view s);    // str.title()

// str.strip(chars) family; chars == nullptr means whitespace.
std::string strip(std::string_view s, const std::string* chars, bool left, bool right);
// str.split(sep, maxsplit); sep == nullptr splits on whitespace runs.
std::vector<std::string> split(std::string_view s, const std::string* sep, int64_t maxsplit);
std::string replace(std::string_view s, std::string_view old, std::string_view with, int64_t count);

}  // namespace velo::jinja::ustr
