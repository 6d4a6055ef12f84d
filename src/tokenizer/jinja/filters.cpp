// jinja2's builtin filters (the subset chat templates use), plus tojson as HF
// transformers overrides it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "tokenizer/jinja/interp.h"
#include "tokenizer/jinja/ustr.h"

namespace velo::jinja {

namespace {

// Binds call arguments to a filter's parameter names (positional, then keywords).
class Bind {
 public:
  static Result<Bind> make(const std::string& filter, CallArgs& a, std::vector<std::string> names) {
    Bind b;
    b.vals_.resize(names.size());
    if (a.pos.size() > names.size())
      return make_error("filter '" + filter + "' got too many arguments");
    for (size_t k = 0; k < a.pos.size(); ++k) b.vals_[k] = &a.pos[k];
    for (auto& [k, v] : a.kw) {
      auto it = std::find(names.begin(), names.end(), k);
      if (it == names.end()) return make_error("filter '" + filter + "' got an unexpected keyword argument '" + k + "'");
      b.vals_[it - names.begin()] = &v;
    }
    return b;
  }
  const Value* get(size_t k) const { return vals_[k]; }
  bool has(size_t k) const { return vals_[k] && !vals_[k]->is_undefined(); }
  bool flag(size_t k, bool def) const { return vals_[k] ? truthy(*vals_[k]) : def; }

 private:
  std::vector<const Value*> vals_;
};

std::string html_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    switch (c) {
      case '&': r += "&amp;"; break;
      case '<': r += "&lt;"; break;
      case '>': r += "&gt;"; break;
      case '"': r += "&#34;"; break;
      case '\'': r += "&#39;"; break;
      default: r += c;
    }
  }
  return r;
}

// "a.b.0" attribute paths as jinja2's make_attrgetter resolves them (item lookup first).
Result<Value> attr_path(Interp& in, const Value& item, const std::string& path) {
  Value cur = item;
  size_t b = 0;
  while (true) {
    size_t e = path.find('.', b);
    std::string part = path.substr(b, e == std::string::npos ? std::string::npos : e - b);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    Value key = digits && part.size() < 18 ? Value::integer(std::strtoll(part.c_str(), nullptr, 10)) : Value::string(part);
    VELO_ASSIGN_OR_RETURN(cur, get_item(in, cur, key));
    if (e == std::string::npos) return cur;
    b = e + 1;
  }
}

// Sort key for sort/dictsort/unique/min/max: lowercase strings unless case-sensitive.
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(ustr::to_lower(v.s));
  return v;
}

Status sort_values(std::vector<Value>& keys, std::vector<size_t>& order, bool reverse) {
  Status err;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    if (!err.ok()) return false;
    auto c = compare(keys[reverse ? y : x], keys[reverse ? x : y]);
    if (!c.ok()) { err = c.error(); return false; }
    return *c < 0;
  });
  return err;
}

Result<Value> py_round(const Value& v, int64_t prec, const std::string& method) {
  if (!v.is_number()) return make_error("round filter needs a number, got " + type_name(v));
  if (method != "common" && method != "ceil" && method != "floor")
    return make_error("method must be common, ceil or floor");
  if (method == "common") {
    if (v.is_int() && prec >= 0) return Value::integer(v.as_int());
    double x = v.as_double();
    if (!std::isfinite(x)) return Value::number(x);
    if (prec < -300 || prec > 300) return Value::number(prec > 0 ? x : 0.0 * x);
    if (prec >= 0) {
      // Correctly rounded to `prec` decimals (half-even on the exact binary value), as CPython.
      char buf[512];
      std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(prec), x);
      return Value::number(std::strtod(buf, nullptr));
    }
    double p = std::pow(10.0, static_cast<double>(-prec));
    return Value::number(std::nearbyint(x / p) * p);
  }
  double p = std::pow(10.0, static_cast<double>(prec));
  double x = v.as_double() * p;
  return Value::number((method == "ceil" ? std::ceil(x) : std::floor(x)) / p);
}

Result<Value> py_float(const Value& v) {
  if (v.is_number()) return Value::number(v.as_double());
  if (v.is_string()) {
    std::string t = ustr::strip(v.s, nullptr, true, true);
    std::string low = ustr::to_lower(t);
    if (low == "nan" || low == "+nan" || low == "-nan") return Value::number(std::nan(""));
    if (low == "inf" || low == "+inf" || low == "infinity" || low == "+infinity") return Value::number(INFINITY);
    if (low == "-inf" || low == "-infinity") return Value::number(-INFINITY);
    bool ok = !t.empty();
    for (char c : t)
      if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' || c == '_'))
        ok = false;
    std::string clean;
    for (char c : t)
      if (c != '_') clean += c;
    char* end = nullptr;
    double d = ok ? std::strtod(clean.c_str(), &end) : 0;
    if (!ok || end != clean.c_str() + clean.size()) return make_error("could not convert string to float");
    return Value::number(d);
  }
  return make_error("float() argument must be a string or a number");
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\n' || c == '\r' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e)) {
      out.push_back(s.substr(b, i - b));
      if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      b = i + 1;
    }
  }
  if (b < s.size()) out.push_back(s.substr(b));
  return out;
}

}  // namespace

bool Interp::has_filter(const std::string& n) const {
  static const char* names[] = {
      "abs", "attr", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape", "first",
      "float", "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list", "lower",
      "map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr",
      "sort", "string", "sum", "title", "tojson", "trim", "unique", "upper", "wordcount"};
  return std::find_if(std::begin(names), std::end(names), [&](const char* x) { return n == x; }) != std::end(names);
}

Result<Value> Interp::filter(const std::string& name, const Value& v, CallArgs& args) {
  VELO_TRY(charge(1));
  auto bind = [&](std::vector<std::string> names) { return Bind::make(name, args, std::move(names)); };
  auto str_result = [&](std::string s) -> Result<Value> {
    VELO_TRY(check_string(s.size()));
    VELO_TRY(charge(s.size() / 64));
    return Value::string(std::move(s));
  };

  if (name == "default" || name == "d") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({"default_value", "boolean"}));
    Value def = b.get(0) ? *b.get(0) : Value::string("");
    if (v.is_undefined() || (b.flag(1, false) && !truthy(v))) return def;
    return v;
  }
  if (name == "length" || name == "count") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({}));
    switch (v.kind) {
      case Kind::Undefined: return Value::integer(0);
      case Kind::String: return Value::integer(static_cast<int64_t>(ustr::length(v.s)));
      case Kind::List:
      case Kind::Tuple: return Value::integer(static_cast<int64_t>(v.list->size()));
      case Kind::Dict: return Value::integer(static_cast<int64_t>(v.dict->size()));
      default: return make_error("object of type '" + type_name(v) + "' has no len()");
    }
  }
  if (name == "string") { VELO_ASSIGN_OR_RETURN(Bind b, bind({})); return str_result(py_str(v)); }
  if (name == "safe") { VELO_ASSIGN_OR_RETURN(Bind b, bind({})); return v.is_string() ? v : Value::string(py_str(v)); }
  if (name == "escape" || name == "e" || name == "forceescape") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({}));
    return str_result(html_escape(py_str(v)));
  }
  if (name == "upper" || name == "lower" || name == "capitalize" || name == "title") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({}));
    std::string s = py_str(v);
    if (name == "upper") return str_result(ustr::to_upper(s));
    if (name == "lower") return str_result(ustr::to_lower(s));
    if (name == "capitalize") return str_result(ustr::capitalize(s));
    // jinja2's title: capitalise each piece after a run of "-", whitespace or brackets.
    std::string r;
    bool start = true;
    for (size_t i = 0; i < s.size();) {
      uint32_t c = ustr::next_cp(s, i);
      bool sep = c == '-' || ustr::is_space(c) || c == '(' || c == '{' || c == '[' || c == '<';
      ustr::append_cp(r, sep ? c : start ? ustr::upper(c) : ustr::lower(c));
      start = sep;
    }
    return str_result(r);
  }
  if (name == "trim") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({"chars"}));
    const std::string* chars = nullptr;
    if (b.get(0) && !b.get(0)->is_none()) {
      if (!b.get(0)->is_string()) return make_error("trim chars must be a string");
      chars = &b.get(0)->s;
    }
    return str_result(ustr::strip(py_str(v), chars, true, true));
  }
  if (name == "replace") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({"old", "new", "count"}));
    if (!b.get(0) || !b.get(1)) return make_error("replace filter needs old and new");
    int64_t count = -1;
    if (b.get(2) && !b.get(2)->is_none()) {
      if (!b.get(2)->is_int()) return make_error("replace count must be an integer");
      count = b.get(2)->as_int();
    }
    std::string s = py_str(v), o = py_str(*b.get(0)), n = py_str(*b.get(1));
    size_t occurrences = o.empty() ? ustr::length(s) + 1 : s.size() / o.size();
    VELO_TRY(check_string(s.size() + occurrences * n.size()));
    return str_result(ustr::replace(s, o, n, count));
  }
  if (name == "wordcount") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({}));
    std::string s = py_str(v);
    int64_t n = 0;
    bool in_word = false;
    for (size_t i = 0; i < s.size();) {
      bool w = ustr::is_word(ustr::next_cp(s, i));
      if (w && !in_word) ++n;
      in_word = w;
    }
    return Value::integer(n);
  }
  if (name == "center") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({"width"}));
    int64_t width = b.get(0) && b.get(0)->is_int() ? b.get(0)->as_int() : 80;
    std::string s = py_str(v);
    int64_t len = static_cast<int64_t>(ustr::length(s));
    if (width <= len) return str_result(s);
    VELO_TRY(check_string(static_cast<size_t>(std::min<int64_t>(width, INT32_MAX))));
    int64_t pad = width - len, left = pad / 2 + (pad & width & 1);
    return str_result(std::string(left, ' ') + s + std::string(pad - left, ' '));
  }
  if (name == "indent") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({"width", "first", "blank"}));
    std::string ind = "    ";
    if (b.get(0)) {
      if (b.get(0)->is_string()) ind = b.get(0)->s;
      else if (b.get(0)->is_int()) {
        VELO_TRY(check_string(static_cast<size_t>(std::clamp<int64_t>(b.get(0)->as_int(), 0, INT32_MAX))));
        ind = std::string(std::max<int64_t>(0, b.get(0)->as_int()), ' ');
      } else return make_error("indent width must be an integer or a string");
    }
    auto lines = split_lines(py_str(v) + "\n");
    VELO_TRY(check_string(py_str(v).size() + lines.size() * ind.size()));
    std::string r;
    if (b.flag(2, false)) {
      for (size_t k = 0; k < lines.size(); ++k) r += (k ? "\n" + ind : "") + lines[k];
    } else {
      r = lines.empty() ? "" : lines[0];
      for (size_t k = 1; k < lines.size(); ++k) r += "\n" + (lines[k].empty() ? "" : ind + lines[k]);
    }
    if (b.flag(1, false)) r = ind + r;
    return str_result(r);
  }
  if (name == "format") {
    if (!args.kw.empty() && !args.pos.empty()) return make_error("format filter takes positional or keyword arguments, not both");
    Value fargs = Value::make_list(args.pos, true);
    if (!args.kw.empty()) {
      auto d = std::make_shared<Dict>();
      for (auto& [k, x] : args.kw) d->set(k, x);
      fargs = Value::make_dict(d);
    } else if (args.pos.size() == 1) {
      fargs = args.pos[0];
    }
    VELO_ASSIGN_OR_RETURN(std::string s, percent_format(*this, py_str(v), fargs));
    return str_result(s);
  }
  if (name == "tojson") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({"ensure_ascii", "indent", "separators", "sort_keys"}));
    JsonStyle st;
    st.ensure_ascii = b.flag(0, false);
    st.sort_keys = b.flag(3, false);
    if (b.get(1) && !b.get(1)->is_none()) {
      const Value& iv = *b.get(1);
      if (iv.is_string()) st.indent = iv.s;
      else if (iv.is_int()) st.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(iv.as_int(), 0, 64)), ' ');
      else return make_error("tojson indent must be an integer or a string");
      st.item_sep = ",";
    }
    if (b.get(2) && !b.get(2)->is_none()) {
      const Value& sv = *b.get(2);
      if (!sv.is_seq() || sv.list->size() != 2 || !(*sv.list)[0].is_string() || !(*sv.list)[1].is_string())
        return make_error("tojson separators must be a pair of strings");
      st.item_sep = (*sv.list)[0].s;
      st.key_sep = (*sv.list)[1].s;
    }
    VELO_ASSIGN_OR_RETURN(std::string s, to_json(*this, v, st));
    return Value::string(std::move(s));
  }
  if (name == "int") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({"default", "base"}));
    Value def = b.get(0) ? *b.get(0) : Value::integer(0);
    if (b.get(1) && !(b.get(1)->is_int() && b.get(1)->as_int() == 10)) {
      if (!v.is_string() || !b.get(1)->is_int()) return def;
      int64_t base = b.get(1)->as_int();
      if (base < 2 || base > 36) return def;
      std::string t = ustr::strip(v.s, nullptr, true, true);
      char* end = nullptr;
      errno = 0;
      long long x = std::strtoll(t.c_str(), &end, static_cast<int>(base));
      if (t.empty() || end != t.c_str() + t.size() || errno) return def;
      return Value::integer(x);
    }
    auto r = to_int(v);
    if (r.ok()) return r;
    auto f = py_float(v);
    if (f.ok()) {
      auto r2 = to_int(*f);
      if (r2.ok()) return r2;
    }
    return def;
  }
  if (name == "float") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({"default"}));
    auto r = py_float(v);
    if (r.ok()) return r;
    return b.get(0) ? *b.get(0) : Value::number(0.0);
  }
  if (name == "abs") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({}));
    if (v.kind == Kind::Float) return Value::number(std::fabs(v.f));
    if (v.is_int()) {
      if (v.as_int() == INT64_MIN) return make_error("integer overflow");
      return Value::integer(std::llabs(v.as_int()));
    }
    if (v.is_undefined()) return make_error(undefined_message(v));
    return make_error("bad operand type for abs(): '" + type_name(v) + "'");
  }
  if (name == "round") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({"precision", "method"}));
    int64_t prec = b.get(0) && b.get(0)->is_int() ? b.get(0)->as_int() : 0;
    std::string method = b.get(1) && b.get(1)->is_string() ? b.get(1)->s : "common";
    return py_round(v, prec, method);
  }
  if (name == "attr") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({"name"}));
    if (!b.get(0) || !b.get(0)->is_string()) return make_error("attr filter needs a name");
    return get_attr(*this, v, b.get(0)->s);
  }
  if (name == "items") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({}));
    if (v.is_undefined()) return Value::make_list({});
    if (v.kind != Kind::Dict) return make_error("Can only get item pairs from a mapping.");
    VELO_TRY(charge(v.dict->size()));
    List out;
    for (const auto& [k, x] : v.dict->items) out.push_back(Value::make_list({k, x}, true));
    return Value::make_list(std::move(out));
  }
  if (name == "dictsort") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({"case_sensitive", "by", "reverse"}));
    if (v.kind != Kind::Dict) return make_error("dictsort needs a mapping");
    bool by_value = b.get(1) && b.get(1)->is_string() && b.get(1)->s == "value";
    if (b.get(1) && b.get(1)->is_string() && b.get(1)->s != "key" && !by_value)
      return make_error("You can only sort by either \"key\" or \"value\"");
    std::vector<Value> keys;
    std::vector<size_t> order;
    for (size_t k = 0; k < v.dict->items.size(); ++k) {
      const auto& kv = v.dict->items[k];
      keys.push_back(sort_key(by_value ? kv.second : kv.first, b.flag(0, false)));
      order.push_back(k);
    }
    VELO_TRY(charge(keys.size() * 4));
    VELO_TRY(sort_values(keys, order, b.flag(2, false)));
    List out;
    for (size_t k : order) out.push_back(Value::make_list({v.dict->items[k].first, v.dict->items[k].second}, true));
    return Value::make_list(std::move(out));
  }

  // Filters over sequences.
  VELO_ASSIGN_OR_RETURN(std::vector<Value> items,
                        [&]() -> Result<std::vector<Value>> {
                          if (name == "first" || name == "last" || name == "join" || name == "list" ||
                              name == "map" || name == "select" || name == "reject" || name == "selectattr" ||
                              name == "rejectattr" || name == "unique" || name == "sort" || name == "sum" ||
                              name == "min" || name == "max" || name == "reverse")
                            return iterate(*this, v);
                          return std::vector<Value>{};
                        }());
  if (name == "first" || name == "last") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({}));
    if (items.empty()) return Value::undefined("!No " + name + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") { VELO_ASSIGN_OR_RETURN(Bind b, bind({})); return Value::make_list(std::move(items)); }
  if (name == "reverse") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({}));
    std::reverse(items.begin(), items.end());
    if (v.is_string()) {
      std::string r;
      for (const auto& c : items) r += c.s;
      return Value::string(std::move(r));
    }
    return Value::make_list(std::move(items));
  }
  if (name == "join") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({"d", "attribute"}));
    std::string sep = b.get(0) ? py_str(*b.get(0)) : "";
    std::string r;
    for (size_t k = 0; k < items.size(); ++k) {
      Value it = items[k];
      if (b.has(1)) {
        VELO_ASSIGN_OR_RETURN(it, attr_path(*this, it, py_str(*b.get(1))));
      }
      if (k) r += sep;
      r += py_str(it);
      VELO_TRY(check_string(r.size()));
    }
    return str_result(std::move(r));
  }
  if (name == "map") {
    List out;
    const Value* attr = args.kwarg("attribute");
    if (attr) {
      const Value* def = args.kwarg("default");
      for (const auto& it : items) {
        VELO_ASSIGN_OR_RETURN(Value x, attr_path(*this, it, py_str(*attr)));
        if (x.is_undefined() && def) x = *def;
        out.push_back(std::move(x));
      }
      return Value::make_list(std::move(out));
    }
    if (args.pos.empty() || !args.pos[0].is_string()) return make_error("map needs a filter name or attribute=");
    std::string fname = args.pos[0].s;
    CallArgs rest;
    rest.pos.assign(args.pos.begin() + 1, args.pos.end());
    rest.kw = args.kw;
    if (!has_filter(fname)) return make_error("no filter named '" + fname + "'");
    for (const auto& it : items) {
      CallArgs a = rest;
      VELO_ASSIGN_OR_RETURN(Value x, filter(fname, it, a));
      out.push_back(std::move(x));
    }
    return Value::make_list(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    bool by_attr = name == "selectattr" || name == "rejectattr";
    bool keep_if = name == "select" || name == "selectattr";
    size_t k = 0;
    std::string attr;
    if (by_attr) {
      if (args.pos.empty()) return make_error(name + " needs an attribute name");
      attr = py_str(args.pos[0]);
      k = 1;
    }
    std::string tname;
    CallArgs targs;
    if (args.pos.size() > k) {
      if (!args.pos[k].is_string()) return make_error(name + " test name must be a string");
      tname = args.pos[k].s;
      if (!has_test(tname)) return make_error("no test named '" + tname + "'");
      targs.pos.assign(args.pos.begin() + k + 1, args.pos.end());
      targs.kw = args.kw;
    }
    List out;
    for (const auto& it : items) {
      Value x = it;
      if (by_attr) {
        VELO_ASSIGN_OR_RETURN(x, attr_path(*this, it, attr));
      }
      bool r;
      if (tname.empty()) {
        r = truthy(x);
      } else {
        CallArgs a = targs;
        VELO_ASSIGN_OR_RETURN(r, test(tname, x, a));
      }
      if (r == keep_if) out.push_back(it);
    }
    return Value::make_list(std::move(out));
  }
  if (name == "unique" || name == "sort" || name == "min" || name == "max") {
    std::vector<std::string> names = {"case_sensitive", "attribute"};
    if (name == "sort") names.insert(names.begin(), "reverse");
    VELO_ASSIGN_OR_RETURN(Bind b, bind(names));
    size_t o = name == "sort" ? 1 : 0;
    bool cs = b.flag(o, false);
    std::vector<Value> keys;
    for (const auto& it : items) {
      Value x = it;
      if (b.has(o + 1)) {
        VELO_ASSIGN_OR_RETURN(x, attr_path(*this, it, py_str(*b.get(o + 1))));
      }
      keys.push_back(sort_key(x, cs));
    }
    VELO_TRY(charge(items.size() * 4));
    if (name == "unique") {
      List out;
      std::vector<Value> seen;
      for (size_t k = 0; k < items.size(); ++k) {
        if (!key_id(keys[k])) return make_error("unhashable type: '" + type_name(keys[k]) + "'");
        bool dup = std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, keys[k]); });
        VELO_TRY(charge(seen.size() / 8));
        if (!dup) { seen.push_back(keys[k]); out.push_back(items[k]); }
      }
      return Value::make_list(std::move(out));
    }
    std::vector<size_t> order(items.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    if (name == "sort") {
      VELO_TRY(sort_values(keys, order, b.flag(0, false)));
      List out;
      for (size_t k : order) out.push_back(items[k]);
      return Value::make_list(std::move(out));
    }
    if (items.empty()) return Value::undefined("!No aggregated item, sequence was empty.");
    size_t best = 0;
    for (size_t k = 1; k < items.size(); ++k) {
      VELO_ASSIGN_OR_RETURN(int c, compare(keys[k], keys[best]));
      if (name == "min" ? c < 0 : c > 0) best = k;
    }
    return items[best];
  }
  if (name == "sum") {
    VELO_ASSIGN_OR_RETURN(Bind b, bind({"attribute", "start"}));
    Value acc = b.get(1) ? *b.get(1) : Value::integer(0);
    for (const auto& it : items) {
      Value x = it;
      if (b.has(0)) {
        VELO_ASSIGN_OR_RETURN(x, attr_path(*this, it, py_str(*b.get(0))));
      }
      VELO_ASSIGN_OR_RETURN(acc, binary_op(*this, "+", acc, x));
    }
    return acc;
  }
  return make_error("unknown filter '" + name + "'");
}

}  // namespace velo::jinja
