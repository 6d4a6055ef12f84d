// Recursive-descent parser for the jinja2 subset chat templates use. Grammar
// and operator precedence follow jinja2's parser; tags that would reach
// outside the template (include, import, extends, ...) are rejected.
#pragma once
#include <string_view>

#include "tokenizer/jinja/ast.h"

namespace velo::jinja {

struct ParseLimits {
  size_t max_tokens = 1 << 20;
  uint32_t max_block_depth = 64;  // nesting of {% %} blocks
  uint32_t max_expr_depth = 256;  // nesting of expressions
};

Result<Body> parse(std::string_view source, const ParseLimits& limits);

}  // namespace velo::jinja
