// jinja2's builtin tests ("x is defined", "x is divisibleby 3", ...).
#include <algorithm>
#include <cmath>

#include "tokenizer/jinja/interp.h"
#include "tokenizer/jinja/ustr.h"

namespace velo::jinja {

namespace {
const char* kTests[] = {"defined", "undefined", "none", "boolean", "false", "true", "integer", "float", "number",
                        "string", "mapping", "iterable", "sequence", "callable", "sameas", "escaped", "in", "odd",
                        "even", "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le",
                        "<=", "gt", "greaterthan", ">", "ge", ">=", "lower", "upper", "filter", "test"};
}

bool Interp::has_test(const std::string& n) const {
  return std::find_if(std::begin(kTests), std::end(kTests), [&](const char* x) { return n == x; }) != std::end(kTests);
}

Result<bool> Interp::test(const std::string& name, const Value& v, CallArgs& a) {
  VELO_TRY(charge(1));
  if (!has_test(name)) return make_error("no test named '" + name + "'");
  auto arg = [&]() -> Result<Value> {
    if (!a.pos.empty()) return a.pos[0];
    if (!a.kw.empty()) return a.kw[0].second;
    return make_error("test '" + name + "' needs an argument");
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind == Kind::Bool;
  if (name == "false") return v.kind == Kind::Bool && !v.b;
  if (name == "true") return v.kind == Kind::Bool && v.b;
  if (name == "integer") return v.kind == Kind::Int;
  if (name == "float") return v.kind == Kind::Float;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.kind == Kind::Dict;
  if (name == "iterable") return v.is_undefined() || v.is_string() || v.is_seq() || v.kind == Kind::Dict;
  if (name == "sequence") return v.is_undefined() || v.is_string() || v.is_seq() || v.kind == Kind::Dict;
  if (name == "callable") return v.kind == Kind::Callable;
  if (name == "escaped") return false;
  if (name == "lower" || name == "upper") {
    std::string s = py_str(v);
    bool cased = false;
    for (uint32_t c : ustr::to_cps(s)) {
      if (ustr::lower(c) == ustr::upper(c)) continue;
      cased = true;
      if (name == "lower" ? ustr::lower(c) != c : ustr::upper(c) != c) return false;
    }
    return cased;
  }
  if (name == "filter" || name == "test") {
    if (!v.is_string()) return false;
    return name == "filter" ? has_filter(v.s) : has_test(v.s);
  }
  if (name == "odd" || name == "even") {
    if (!v.is_int()) {
      if (v.kind == Kind::Float) return std::fmod(std::fabs(v.f), 2.0) == (name == "odd" ? 1.0 : 0.0);
      return make_error("test '" + name + "' needs a number, got " + type_name(v));
    }
    bool odd = (v.as_int() % 2) != 0;
    return name == "odd" ? odd : !odd;
  }
  VELO_ASSIGN_OR_RETURN(Value other, arg());
  if (name == "divisibleby") {
    if (!v.is_number() || !other.is_number()) return make_error("divisibleby needs numbers");
    if (v.is_int() && other.is_int()) {
      if (other.as_int() == 0) return make_error("integer division or modulo by zero");
      if (other.as_int() == -1) return true;
      return v.as_int() % other.as_int() == 0;
    }
    if (other.as_double() == 0) return make_error("float modulo");
    return std::fmod(v.as_double(), other.as_double()) == 0;
  }
  if (name == "sameas") {
    if (v.kind != other.kind) return false;
    switch (v.kind) {
      case Kind::List: case Kind::Tuple: return v.list == other.list;
      case Kind::Dict: case Kind::Namespace: case Kind::Object: return v.dict == other.dict;
      case Kind::Callable: return v.fn == other.fn;
      default: return equals(v, other);
    }
  }
  if (name == "in") return contains(other, v);
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, other);
  if (name == "ne" || name == "!=") return !equals(v, other);
  VELO_ASSIGN_OR_RETURN(int c, compare(v, other));
  if (name == "lt" || name == "lessthan" || name == "<") return c < 0;
  if (name == "le" || name == "<=") return c <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return c > 0;
  return c >= 0;
}

}  // namespace velo::jinja
