#include "tokenizer/jinja/lexer.h"

#include <algorithm>

#include "tokenizer/jinja/ustr.h"

namespace velo::jinja {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Python str.rstrip(): drop trailing Unicode whitespace.
std::string rstrip_py(std::string_view s) { return ustr::strip(s, nullptr, false, true); }

// Length of the Unicode whitespace prefix of s (regex \s*).
size_t ws_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!ustr::is_space(ustr::next_cp(s, j))) break;
    i = j;
  }
  return i;
}

// True when s is non-empty and all whitespace (regex \s+ fullmatch).
bool all_space(std::string_view s) { return !s.empty() && ws_prefix(s) == s.size(); }

struct Lexer {
  std::string src;
  size_t pos = 0;
  bool line_starting = true;  // the previous match ended with a newline (lstrip_blocks rule)
  std::vector<Token> out;
  size_t max_tokens;

  mutable size_t line_pos = 0;  // line numbers are counted incrementally (positions mostly grow)
  mutable int line_no = 1;
  int line_at(size_t p) const {
    p = std::min(p, src.size());
    if (p < line_pos) { line_pos = 0; line_no = 1; }
    line_no += static_cast<int>(std::count(src.begin() + line_pos, src.begin() + p, '\n'));
    line_pos = p;
    return line_no;
  }
  Error err(size_t p, const std::string& msg) const {
    return make_error("template syntax error at line " + std::to_string(line_at(p)) + ": " + msg);
  }
  Status push(Tok t, std::string text, size_t p) {
    if (out.size() >= max_tokens) return err(p, "template too large (token limit)");
    out.push_back(Token{t, std::move(text), line_at(p)});
    return {};
  }

  // Applies "-" / lstrip_blocks to the text before a tag. sign is '-', '+' or 0.
  std::string strip_before(std::string text, char sign, bool is_var) const {
    if (sign == '-') return rstrip_py(text);
    if (sign != '+' && !is_var) {
      size_t l = text.rfind('\n');
      size_t l_pos = l == std::string::npos ? 0 : l + 1;
      if ((l_pos > 0 || line_starting) && all_space(std::string_view(text).substr(l_pos)))
        text.resize(l_pos);
    }
    return text;
  }

  // After a block or comment end: "-" eats all whitespace, plain end eats one newline.
  void after_end(char sign) {
    if (sign == '-') {
      pos += ws_prefix(std::string_view(src).substr(pos));
    } else if (sign != '+' && pos < src.size() && src[pos] == '\n') {
      ++pos;
    }
    line_starting = pos > 0 && src[pos - 1] == '\n';
  }

  Status lex_string(size_t& p) {
    char q = src[p];
    size_t start = p;
    std::string val;
    ++p;
    while (true) {
      if (p >= src.size()) return err(start, "unterminated string");
      char c = src[p];
      if (c == q) { ++p; break; }
      if (c != '\\') { val += c; ++p; continue; }
      if (p + 1 >= src.size()) return err(start, "unterminated string");
      char e = src[p + 1];
      p += 2;
      // Python "unicode-escape" decoding, as jinja2 applies to string literals.
      switch (e) {
        case '\n': break;
        case '\\': val += '\\'; break;
        case '\'': val += '\''; break;
        case '"': val += '"'; break;
        case 'a': val += '\a'; break;
        case 'b': val += '\b'; break;
        case 'f': val += '\f'; break;
        case 'n': val += '\n'; break;
        case 'r': val += '\r'; break;
        case 't': val += '\t'; break;
        case 'v': val += '\v'; break;
        case 'x': case 'u': case 'U': {
          int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (int k = 0; k < n; ++k, ++p) {
            if (p >= src.size() || !std::isxdigit(static_cast<unsigned char>(src[p])))
              return err(start, "truncated \\" + std::string(1, e) + " escape in string");
            char h = src[p];
            cp = cp * 16 + (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
          }
          if (cp > 0x10FFFF) return err(start, "illegal Unicode character in string escape");
          ustr::append_cp(val, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = e - '0';
            for (int k = 0; k < 2 && p < src.size() && src[p] >= '0' && src[p] <= '7'; ++k, ++p)
              cp = cp * 8 + (src[p] - '0');
            ustr::append_cp(val, cp);
          } else if (e == 'N') {
            return err(start, "\\N{...} escapes are not supported");
          } else {
            val += '\\';
            val += e;
          }
      }
    }
    return push(Tok::String, std::move(val), start);
  }

  // Numbers as jinja2 lexes them: ints with "_" separators, floats with . and/or exponent.
  Status lex_number(size_t& p) {
    size_t start = p;
    auto digits = [&](size_t& q) {
      size_t b = q;
      while (q < src.size() && (std::isdigit(static_cast<unsigned char>(src[q])) ||
                                (src[q] == '_' && q > b && q + 1 < src.size() &&
                                 std::isdigit(static_cast<unsigned char>(src[q + 1])))))
        ++q;
      return q > b;
    };
    size_t q = p;
    digits(q);
    bool is_float = false;
    if (q + 1 < src.size() && src[q] == '.' && std::isdigit(static_cast<unsigned char>(src[q + 1]))) {
      size_t r = q + 1;
      digits(r);
      q = r;
      is_float = true;
    }
    if (q < src.size() && (src[q] == 'e' || src[q] == 'E')) {
      size_t r = q + 1;
      if (r < src.size() && (src[r] == '+' || src[r] == '-')) ++r;
      if (r < src.size() && std::isdigit(static_cast<unsigned char>(src[r]))) {
        digits(r);
        q = r;
        is_float = true;
      }
    }
    std::string text;
    for (size_t k = start; k < q; ++k)
      if (src[k] != '_') text += src[k];
    p = q;
    return push(is_float ? Tok::Float : Tok::Int, text, start);
  }

  // Tokens inside {{ }} or {% %} up to the end marker.
  Status lex_tag(bool is_var, size_t tag_start) {
    std::vector<char> balance;
    while (true) {
      if (pos >= src.size()) return err(tag_start, is_var ? "unclosed '{{'" : "unclosed '{%'");
      char c = src[pos];
      if (balance.empty()) {
        const char* end = is_var ? "}}" : "%}";
        if (src.compare(pos, 3, std::string("-") + end) == 0) {
          VELO_TRY(push(is_var ? Tok::VarEnd : Tok::BlockEnd, "", pos));
          pos += 3;
          after_end('-');
          return {};
        }
        if (!is_var && src.compare(pos, 3, "+%}") == 0) {
          VELO_TRY(push(Tok::BlockEnd, "", pos));
          pos += 3;
          after_end('+');
          return {};
        }
        if (src.compare(pos, 2, end) == 0) {
          VELO_TRY(push(is_var ? Tok::VarEnd : Tok::BlockEnd, "", pos));
          pos += 2;
          if (is_var) {
            line_starting = false;
          } else {
            after_end(0);
          }
          return {};
        }
      }
      if (is_ws(c)) { ++pos; continue; }
      if (std::isdigit(static_cast<unsigned char>(c))) { VELO_TRY(lex_number(pos)); continue; }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t b = pos;
        while (pos < src.size() && (std::isalnum(static_cast<unsigned char>(src[pos])) || src[pos] == '_')) ++pos;
        VELO_TRY(push(Tok::Name, src.substr(b, pos - b), b));
        continue;
      }
      if (c == '\'' || c == '"') { VELO_TRY(lex_string(pos)); continue; }
      static const char* two[] = {"//", "**", "==", "!=", "<=", ">="};
      bool matched = false;
      for (const char* op : two)
        if (src.compare(pos, 2, op) == 0) {
          VELO_TRY(push(Tok::Op, op, pos));
          pos += 2;
          matched = true;
          break;
        }
      if (matched) continue;
      if (std::string_view("+-/*%~<>=.,:|()[]{};").find(c) != std::string_view::npos) {
        if (c == '(' || c == '[' || c == '{') balance.push_back(c);
        if (c == ')' || c == ']' || c == '}') {
          char want = c == ')' ? '(' : c == ']' ? '[' : '{';
          if (balance.empty() || balance.back() != want)
            return err(pos, std::string("unexpected '") + c + "'");
          balance.pop_back();
        }
        VELO_TRY(push(Tok::Op, std::string(1, c), pos));
        ++pos;
        continue;
      }
      return err(pos, "unexpected character '" + std::string(1, c) + "'");
    }
  }

  // {% raw %} ... {% endraw %}: the body is data, untouched.
  Status lex_raw(size_t body_start, size_t tag_start) {
    size_t p = body_start;
    while (true) {
      size_t k = src.find("{%", p);
      if (k == std::string::npos) return err(tag_start, "missing {% endraw %}");
      size_t q = k + 2;
      char sign = 0;
      if (q < src.size() && (src[q] == '-' || src[q] == '+')) sign = src[q++];
      while (q < src.size() && is_ws(src[q])) ++q;
      if (src.compare(q, 6, "endraw") != 0) { p = k + 2; continue; }
      q += 6;
      while (q < src.size() && is_ws(src[q])) ++q;
      char esign = 0;
      if (q < src.size() && (src[q] == '-' || src[q] == '+')) esign = src[q++];
      if (src.compare(q, 2, "%}") != 0) { p = k + 2; continue; }
      std::string body = strip_before(src.substr(body_start, k - body_start), sign, false);
      if (!body.empty()) VELO_TRY(push(Tok::Data, body, body_start));
      pos = q + 2;
      after_end(esign);
      return {};
    }
  }

  // Checks for "{% raw %}" at a block start; returns true when consumed.
  Result<bool> try_raw(size_t tag_start, size_t after_sign) {
    size_t q = after_sign;
    while (q < src.size() && is_ws(src[q])) ++q;
    if (src.compare(q, 3, "raw") != 0) return false;
    q += 3;
    while (q < src.size() && is_ws(src[q])) ++q;
    char sign = 0;
    if (q < src.size() && src[q] == '-') sign = src[q++];
    if (src.compare(q, 2, "%}") != 0) return false;
    size_t body = q + 2;
    if (sign == '-') body += ws_prefix(std::string_view(src).substr(body));
    VELO_TRY(lex_raw(body, tag_start));
    return true;
  }

  Status run() {
    while (pos < src.size()) {
      size_t k = pos;
      while (true) {
        k = src.find('{', k);
        if (k == std::string::npos || k + 1 >= src.size()) { k = std::string::npos; break; }
        char n = src[k + 1];
        if (n == '{' || n == '%' || n == '#') break;
        ++k;
      }
      if (k == std::string::npos) {
        VELO_TRY(push(Tok::Data, src.substr(pos), pos));
        pos = src.size();
        break;
      }
      char opener = src[k + 1];
      char sign = 0;
      if (k + 2 < src.size() && (src[k + 2] == '-' || src[k + 2] == '+')) sign = src[k + 2];
      std::string text = strip_before(src.substr(pos, k - pos), sign, opener == '{');
      if (!text.empty()) VELO_TRY(push(Tok::Data, std::move(text), pos));
      size_t after = k + 2 + (sign ? 1 : 0);
      if (opener == '#') {
        size_t e = src.find("#}", after);
        if (e == std::string::npos) return err(k, "unclosed comment");
        char esign = (e > after && (src[e - 1] == '-' || src[e - 1] == '+')) ? src[e - 1] : 0;
        pos = e + 2;
        after_end(esign);
        continue;
      }
      if (opener == '%') {
        VELO_ASSIGN_OR_RETURN(bool raw, try_raw(k, after));
        if (raw) continue;
      }
      VELO_TRY(push(opener == '{' ? Tok::VarBegin : Tok::BlockBegin, "", k));
      pos = after;
      VELO_TRY(lex_tag(opener == '{', k));
    }
    return push(Tok::Eof, "", src.size());
  }
};

}  // namespace

Result<std::vector<Token>> lex(std::string_view source, size_t max_tokens) {
  Lexer lx;
  lx.max_tokens = max_tokens;
  // Newlines normalised to \n and one trailing newline dropped, as jinja2 does.
  lx.src.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      lx.src += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      lx.src += source[i];
    }
  }
  if (!lx.src.empty() && lx.src.back() == '\n') lx.src.pop_back();
  VELO_TRY(lx.run());
  return std::move(lx.out);
}

}  // namespace velo::jinja
