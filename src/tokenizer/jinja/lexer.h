// Template lexer with jinja2's whitespace rules as HF transformers configures
// them (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False),
// plus "-"/"+" whitespace control on tags.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace velo::jinja {

enum class Tok : uint8_t {
  Data,        // literal template text
  VarBegin,    // {{
  VarEnd,      // }}
  BlockBegin,  // {%
  BlockEnd,    // %}
  Name, String, Int, Float, Op,
  Eof,
};

struct Token {
  Tok type;
  std::string text;  // Data text, name, decoded string, number text, operator
  int line = 1;
};

Result<std::vector<Token>> lex(std::string_view source, size_t max_tokens);

}  // namespace velo::jinja
