// tojson as HF transformers defines it: Python json.dumps with
// ensure_ascii=False by default, optional indent/separators/sort_keys.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja/interp.h"
#include "tokenizer/jinja/ustr.h"

namespace velo::jinja {

namespace {

void json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    size_t start = i;
    uint32_t c = ustr::next_cp(s, i);
    char buf[16];
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (c < 0x20) {
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else if (ensure_ascii && c >= 0x80) {
      if (c >= 0x10000) {
        uint32_t v = c - 0x10000;
        std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
      }
      out += buf;
    } else {
      out.append(s.substr(start, i - start));
    }
  }
  out += '"';
}

struct Writer {
  Interp& in;
  const JsonStyle& st;
  std::string out;

  void newline(int level) {
    out += '\n';
    for (int k = 0; k < level; ++k) out += *st.indent;
  }

  Result<std::string> key_text(const Value& k) {
    switch (k.kind) {
      case Kind::String: return k.s;
      case Kind::Bool: return std::string(k.b ? "true" : "false");
      case Kind::Int: return std::to_string(k.i);
      case Kind::Float: return float_json(k.f);
      case Kind::None: return std::string("null");
      default: return make_error("keys must be str, int, float, bool or None, not " + type_name(k));
    }
  }

  static std::string float_json(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
    return float_repr(d);
  }

  Status write(const Value& v, int level) {
    if (level > 512) return make_error("tojson: value nested too deeply");
    VELO_TRY(in.charge(1));
    VELO_TRY(in.check_string(out.size()));
    switch (v.kind) {
      case Kind::None: out += "null"; return {};
      case Kind::Bool: out += v.b ? "true" : "false"; return {};
      case Kind::Int: out += std::to_string(v.i); return {};
      case Kind::Float: out += float_json(v.f); return {};
      case Kind::String: json_string(out, v.s, st.ensure_ascii); return {};
      case Kind::List:
      case Kind::Tuple: {
        if (v.list->empty()) { out += "[]"; return {}; }
        out += '[';
        for (size_t k = 0; k < v.list->size(); ++k) {
          if (k) out += st.item_sep;
          if (st.indent) newline(level + 1);
          VELO_TRY(write((*v.list)[k], level + 1));
        }
        if (st.indent) newline(level);
        out += ']';
        return {};
      }
      case Kind::Dict: {
        if (v.dict->size() == 0) { out += "{}"; return {}; }
        std::vector<std::pair<std::string, const Value*>> items;
        for (const auto& [k, x] : v.dict->items) {
          VELO_ASSIGN_OR_RETURN(std::string kt, key_text(k));
          items.emplace_back(std::move(kt), &x);
        }
        if (st.sort_keys)
          std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        out += '{';
        for (size_t k = 0; k < items.size(); ++k) {
          if (k) out += st.item_sep;
          if (st.indent) newline(level + 1);
          json_string(out, items[k].first, st.ensure_ascii);
          out += st.key_sep;
          VELO_TRY(write(*items[k].second, level + 1));
        }
        if (st.indent) newline(level);
        out += '}';
        return {};
      }
      default:
        return make_error("Object of type " + type_name(v) + " is not JSON serializable");
    }
  }
};

}  // namespace

Result<std::string> to_json(Interp& in, const Value& v, const JsonStyle& style) {
  Writer w{in, style, {}};
  VELO_TRY(w.write(v, 0));
  VELO_TRY(in.check_string(w.out.size()));
  return std::move(w.out);
}

}  // namespace velo::jinja
