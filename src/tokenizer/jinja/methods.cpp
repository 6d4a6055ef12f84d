// Methods templates call on values: str.strip(), dict.items(), ... Mutating
// methods exist but refuse to run, as in jinja2's ImmutableSandboxedEnvironment.
#include <algorithm>

#include "tokenizer/jinja/interp.h"
#include "tokenizer/jinja/ustr.h"

namespace velo::jinja {

namespace {

using Fn = std::function<Result<Value>(CallArgs&)>;

Status arity(const CallArgs& a, size_t lo, size_t hi, const std::string& name) {
  if (a.pos.size() < lo || a.pos.size() > hi)
    return make_error(name + "() takes " + std::to_string(lo) + (hi != lo ? " to " + std::to_string(hi) : "") +
                      " arguments (" + std::to_string(a.pos.size()) + " given)");
  return {};
}

Result<const std::string*> opt_str(const CallArgs& a, size_t k, const std::string& name) {
  if (k >= a.pos.size() || a.pos[k].is_none()) return static_cast<const std::string*>(nullptr);
  if (!a.pos[k].is_string()) return make_error(name + " arg must be None or str");
  return &a.pos[k].s;
}

Result<int64_t> opt_int(const CallArgs& a, size_t k, int64_t def) {
  if (k >= a.pos.size() || a.pos[k].is_none()) return def;
  if (!a.pos[k].is_int()) return make_error("'" + type_name(a.pos[k]) + "' object cannot be interpreted as an integer");
  return a.pos[k].as_int();
}

Value str_list(const std::vector<std::string>& parts) {
  List l;
  for (const auto& p : parts) l.push_back(Value::string(p));
  return Value::make_list(std::move(l));
}

// startswith/endswith accept a string or a tuple of strings.
Result<Value> affix(const std::string& s, const CallArgs& a, bool start, const std::string& name) {
  VELO_TRY(arity(a, 1, 1, name));
  std::vector<std::string> cands;
  if (a.pos[0].is_string()) cands.push_back(a.pos[0].s);
  else if (a.pos[0].kind == Kind::Tuple) {
    for (const auto& x : *a.pos[0].list) {
      if (!x.is_string()) return make_error("tuple for " + name + " must only contain str");
      cands.push_back(x.s);
    }
  } else {
    return make_error(name + " first arg must be str or a tuple of str");
  }
  for (const auto& c : cands) {
    if (c.size() > s.size()) continue;
    if (start ? s.compare(0, c.size(), c) == 0 : s.compare(s.size() - c.size(), c.size(), c) == 0)
      return Value::boolean(true);
  }
  return Value::boolean(false);
}

std::optional<Fn> str_method(Interp& in, const std::string& s, const std::string& name) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool l = name != "rstrip", r = name != "lstrip";
    return Fn([s, l, r, name](CallArgs& a) -> Result<Value> {
      VELO_TRY(arity(a, 0, 1, name));
      VELO_ASSIGN_OR_RETURN(const std::string* chars, opt_str(a, 0, name));
      return Value::string(ustr::strip(s, chars, l, r));
    });
  }
  if (name == "upper") return Fn([s](CallArgs&) -> Result<Value> { return Value::string(ustr::to_upper(s)); });
  if (name == "lower") return Fn([s](CallArgs&) -> Result<Value> { return Value::string(ustr::to_lower(s)); });
  if (name == "title") return Fn([s](CallArgs&) -> Result<Value> { return Value::string(ustr::py_title(s)); });
  if (name == "capitalize")
    return Fn([s](CallArgs&) -> Result<Value> { return Value::string(ustr::capitalize(s)); });
  if (name == "split" || name == "rsplit") {
    return Fn([&in, s, name](CallArgs& a) -> Result<Value> {
      VELO_TRY(arity(a, 0, 2, name));
      const Value* sepkw = a.kwarg("sep");
      const Value* maxkw = a.kwarg("maxsplit");
      if (sepkw && a.pos.empty()) a.pos.push_back(*sepkw);
      if (maxkw && a.pos.size() == 1) a.pos.push_back(*maxkw);
      VELO_ASSIGN_OR_RETURN(const std::string* sep, opt_str(a, 0, name));
      if (sep && sep->empty()) return make_error("empty separator");
      VELO_ASSIGN_OR_RETURN(int64_t maxsplit, opt_int(a, 1, -1));
      VELO_TRY(in.charge(1 + s.size() / 16));
      if (name == "rsplit" && maxsplit >= 0) {
        // Split from the right: reverse, split with the reversed separator, reverse back.
        auto rev = [](std::string x) { auto c = ustr::to_cps(x); std::reverse(c.begin(), c.end()); return ustr::from_cps(c, 0, c.size()); };
        std::string rsep = sep ? rev(*sep) : std::string();
        auto parts = ustr::split(rev(s), sep ? &rsep : nullptr, maxsplit);
        std::reverse(parts.begin(), parts.end());
        for (auto& p : parts) p = rev(p);
        return str_list(parts);
      }
      return str_list(ustr::split(s, sep, maxsplit));
    });
  }
  if (name == "splitlines") {
    return Fn([s](CallArgs&) -> Result<Value> {
      std::vector<std::string> parts;
      size_t b = 0;
      for (size_t i = 0; i < s.size(); ++i)
        if (s[i] == '\n' || s[i] == '\r') {
          parts.push_back(s.substr(b, i - b));
          if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
          b = i + 1;
        }
      if (b < s.size()) parts.push_back(s.substr(b));
      return str_list(parts);
    });
  }
  if (name == "startswith") return Fn([s](CallArgs& a) { return affix(s, a, true, "startswith"); });
  if (name == "endswith") return Fn([s](CallArgs& a) { return affix(s, a, false, "endswith"); });
  if (name == "replace") {
    return Fn([&in, s](CallArgs& a) -> Result<Value> {
      VELO_TRY(arity(a, 2, 3, "replace"));
      if (!a.pos[0].is_string() || !a.pos[1].is_string()) return make_error("replace() arguments must be str");
      VELO_ASSIGN_OR_RETURN(int64_t count, opt_int(a, 2, -1));
      size_t n = a.pos[0].s.empty() ? ustr::length(s) + 1 : s.size() / a.pos[0].s.size();
      VELO_TRY(in.check_string(s.size() + n * a.pos[1].s.size()));
      VELO_TRY(in.charge(1 + (s.size() + n * a.pos[1].s.size()) / 16));
      return Value::string(ustr::replace(s, a.pos[0].s, a.pos[1].s, count));
    });
  }
  if (name == "find" || name == "rfind" || name == "count" || name == "index") {
    return Fn([s, name](CallArgs& a) -> Result<Value> {
      VELO_TRY(arity(a, 1, 1, name));
      if (!a.pos[0].is_string()) return make_error(name + "() argument must be str");
      const std::string& sub = a.pos[0].s;
      auto cp_index = [&](size_t byte) { return static_cast<int64_t>(ustr::length(std::string_view(s).substr(0, byte))); };
      if (name == "count") {
        if (sub.empty()) return Value::integer(static_cast<int64_t>(ustr::length(s)) + 1);
        int64_t c = 0;
        for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++c;
        return Value::integer(c);
      }
      size_t p = name == "rfind" ? s.rfind(sub) : s.find(sub);
      if (p == std::string::npos) {
        if (name == "index") return make_error("substring not found");
        return Value::integer(-1);
      }
      return Value::integer(cp_index(p));
    });
  }
  if (name == "join") {
    return Fn([&in, s](CallArgs& a) -> Result<Value> {
      VELO_TRY(arity(a, 1, 1, "join"));
      VELO_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(in, a.pos[0]));
      std::string r;
      for (size_t k = 0; k < items.size(); ++k) {
        if (!items[k].is_string()) return make_error("sequence item " + std::to_string(k) + ": expected str instance");
        if (k) r += s;
        r += items[k].s;
        VELO_TRY(in.check_string(r.size()));
      }
      return Value::string(std::move(r));
    });
  }
  if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isalnum" || name == "islower" ||
      name == "isupper") {
    return Fn([s, name](CallArgs&) -> Result<Value> {
      auto cps = ustr::to_cps(s);
      if (cps.empty()) return Value::boolean(false);
      bool cased = false;
      for (uint32_t c : cps) {
        bool digit = c >= '0' && c <= '9';
        if (name == "isdigit" && !digit) return Value::boolean(false);
        if (name == "isalpha" && !ustr::is_alpha(c)) return Value::boolean(false);
        if (name == "isalnum" && !ustr::is_alpha(c) && !digit) return Value::boolean(false);
        if (name == "isspace" && !ustr::is_space(c)) return Value::boolean(false);
        if (name == "islower" && ustr::lower(c) != c) return Value::boolean(false);
        if (name == "isupper" && ustr::upper(c) != c) return Value::boolean(false);
        if (ustr::lower(c) != ustr::upper(c)) cased = true;
      }
      if (name == "islower" || name == "isupper") return Value::boolean(cased);
      return Value::boolean(true);
    });
  }
  return std::nullopt;
}

std::optional<Fn> dict_method(Interp& in, const Value& d, const std::string& name) {
  if (name == "items" || name == "keys" || name == "values") {
    return Fn([&in, d, name](CallArgs& a) -> Result<Value> {
      VELO_TRY(arity(a, 0, 0, name));
      VELO_TRY(in.charge(d.dict->size()));
      List out;
      for (const auto& [k, v] : d.dict->items) {
        if (name == "items") out.push_back(Value::make_list({k, v}, true));
        else out.push_back(name == "keys" ? k : v);
      }
      return Value::make_list(std::move(out));
    });
  }
  if (name == "get") {
    return Fn([d](CallArgs& a) -> Result<Value> {
      VELO_TRY(arity(a, 1, 2, "get"));
      if (!key_id(a.pos[0])) return make_error("unhashable type: '" + type_name(a.pos[0]) + "'");
      if (const Value* v = d.dict->find(a.pos[0])) return *v;
      return a.pos.size() > 1 ? a.pos[1] : Value::none();
    });
  }
  if (name == "copy") return Fn([d](CallArgs&) -> Result<Value> { return Value::make_dict(std::make_shared<Dict>(*d.dict)); });
  return std::nullopt;
}

std::optional<Fn> list_method(const Value& l, const std::string& name) {
  if (name == "index" || name == "count") {
    return Fn([l, name](CallArgs& a) -> Result<Value> {
      VELO_TRY(arity(a, 1, 1, name));
      int64_t c = 0;
      for (size_t k = 0; k < l.list->size(); ++k)
        if (equals((*l.list)[k], a.pos[0])) {
          if (name == "index") return Value::integer(static_cast<int64_t>(k));
          ++c;
        }
      if (name == "index") return make_error("value is not in list");
      return Value::integer(c);
    });
  }
  return std::nullopt;
}

bool is_mutator(Kind k, const std::string& name) {
  static const char* list_mut[] = {"append", "clear", "pop", "reverse", "insert", "sort", "extend", "remove"};
  static const char* dict_mut[] = {"clear", "pop", "popitem", "setdefault", "update"};
  if (k == Kind::List)
    return std::find(std::begin(list_mut), std::end(list_mut), name) != std::end(list_mut);
  if (k == Kind::Dict)
    return std::find(std::begin(dict_mut), std::end(dict_mut), name) != std::end(dict_mut);
  return false;
}

}  // namespace

std::optional<Value> bound_method(Interp& in, const Value& obj, const std::string& name) {
  if (is_mutator(obj.kind, name))
    return Value::undefined("!access to attribute '" + name + "' of '" + type_name(obj) + "' object is unsafe.");
  std::optional<Fn> fn;
  if (obj.is_string()) fn = str_method(in, obj.s, name);
  else if (obj.kind == Kind::Dict) fn = dict_method(in, obj, name);
  else if (obj.is_seq()) fn = list_method(obj, name);
  if (!fn) return std::nullopt;
  return Value::callable(type_name(obj) + "." + name, std::move(*fn));
}

}  // namespace velo::jinja
