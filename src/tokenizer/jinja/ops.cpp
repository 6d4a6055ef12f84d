// Python operator semantics on template values: arithmetic, containment,
// attribute/item lookup as jinja2's sandbox performs it, slicing, % formatting.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstdio>

#include "tokenizer/jinja/interp.h"
#include "tokenizer/jinja/ustr.h"

namespace velo::jinja {

namespace {

Error type_error(const std::string& op, const Value& a, const Value& b) {
  if (a.is_string() && op == "+")
    return make_error("can only concatenate str (not \"" + type_name(b) + "\") to str");
  if (a.kind == Kind::List && op == "+")
    return make_error("can only concatenate list (not \"" + type_name(b) + "\") to list");
  return make_error("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" +
                    type_name(b) + "'");
}

Result<Value> int_result(bool overflow, const int64_t& v) {
  if (overflow) return make_error("integer overflow (integers are limited to 64 bits)");
  return Value::integer(v);
}

double py_fmod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

Result<Value> repeat(Interp& in, const Value& seq, int64_t n) {
  if (n < 0) n = 0;
  if (seq.is_string()) {
    uint64_t bytes;  // saturating: an overflowing product is over any limit
    if (__builtin_mul_overflow(static_cast<uint64_t>(n), seq.s.size(), &bytes)) bytes = UINT64_MAX;
    VELO_TRY(in.check_string(bytes));
    VELO_TRY(in.charge(1 + seq.s.size() * static_cast<uint64_t>(n) / 64));
    std::string r;
    r.reserve(seq.s.size() * n);
    for (int64_t k = 0; k < n; ++k) r += seq.s;
    return Value::string(std::move(r));
  }
  VELO_TRY(in.charge(static_cast<uint64_t>(n)));  // bounds n before the product below
  uint64_t total = seq.list->size() * static_cast<uint64_t>(n);
  VELO_TRY(in.charge(total + 1));
  List r;
  r.reserve(total);
  for (int64_t k = 0; k < n; ++k) r.insert(r.end(), seq.list->begin(), seq.list->end());
  return Value::make_list(std::move(r), seq.kind == Kind::Tuple);
}

}  // namespace

Result<Value> binary_op(Interp& in, const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string r = py_str(a) + py_str(b);
    VELO_TRY(in.check_string(r.size()));
    VELO_TRY(in.charge(r.size() / 64));
    return Value::string(std::move(r));
  }
  if (a.is_undefined()) return make_error(undefined_message(a));
  if (b.is_undefined()) return make_error(undefined_message(b));
  const bool nums = a.is_number() && b.is_number();
  const bool ints = a.is_int() && b.is_int();
  int64_t r = 0;
  if (op == "+") {
    if (ints) {
      bool of = __builtin_add_overflow(a.as_int(), b.as_int(), &r);
      return int_result(of, r);
    }
    if (nums) return Value::number(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) {
      VELO_TRY(in.check_string(a.s.size() + b.s.size()));
      VELO_TRY(in.charge((a.s.size() + b.s.size()) / 64));
      return Value::string(a.s + b.s);
    }
    if (a.is_seq() && a.kind == b.kind) {
      VELO_TRY(in.charge(a.list->size() + b.list->size()));
      List l = *a.list;
      l.insert(l.end(), b.list->begin(), b.list->end());
      return Value::make_list(std::move(l), a.kind == Kind::Tuple);
    }
    return type_error(op, a, b);
  }
  if (op == "-") {
    if (ints) {
      bool of = __builtin_sub_overflow(a.as_int(), b.as_int(), &r);
      return int_result(of, r);
    }
    if (nums) return Value::number(a.as_double() - b.as_double());
    return type_error(op, a, b);
  }
  if (op == "*") {
    if (ints) {
      bool of = __builtin_mul_overflow(a.as_int(), b.as_int(), &r);
      return int_result(of, r);
    }
    if (nums) return Value::number(a.as_double() * b.as_double());
    if ((a.is_string() || a.is_seq()) && b.is_int()) return repeat(in, a, b.as_int());
    if (a.is_int() && (b.is_string() || b.is_seq())) return repeat(in, b, a.as_int());
    return type_error(op, a, b);
  }
  if (op == "/") {
    if (!nums) return type_error(op, a, b);
    if (b.as_double() == 0) return make_error("division by zero");
    return Value::number(a.as_double() / b.as_double());
  }
  if (op == "//") {
    if (!nums) return type_error(op, a, b);
    if (ints) {
      int64_t x = a.as_int(), y = b.as_int();
      if (y == 0) return make_error("integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) return make_error("integer overflow");
      int64_t q = x / y;
      if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
      return Value::integer(q);
    }
    if (b.as_double() == 0) return make_error("float floor division by zero");
    double x = a.as_double(), y = b.as_double();
    // CPython's float_floor_div.
    double mod = std::fmod(x, y);
    double div = (x - mod) / y;
    if (mod != 0 && ((y < 0) != (mod < 0))) div -= 1.0;
    double fl = std::floor(div);
    if (div - fl > 0.5) fl += 1.0;
    return Value::number(div == 0 ? std::copysign(0.0, x / y) : fl);
  }
  if (op == "%") {
    if (a.is_string()) {
      VELO_ASSIGN_OR_RETURN(std::string s, percent_format(in, a.s, b));
      return Value::string(std::move(s));
    }
    if (!nums) return type_error(op, a, b);
    if (ints) {
      int64_t x = a.as_int(), y = b.as_int();
      if (y == 0) return make_error("integer division or modulo by zero");
      if (y == -1) return Value::integer(0);
      int64_t m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return Value::integer(m);
    }
    if (b.as_double() == 0) return make_error("float modulo");
    return Value::number(py_fmod(a.as_double(), b.as_double()));
  }
  if (op == "**") {
    if (!nums) return type_error(op, a, b);
    if (ints && b.as_int() >= 0) {
      int64_t base = a.as_int(), e = b.as_int(), acc = 1;
      while (e > 0) {
        if (e & 1)
          if (__builtin_mul_overflow(acc, base, &acc)) return make_error("integer overflow");
        e >>= 1;
        if (e > 0 && __builtin_mul_overflow(base, base, &base)) return make_error("integer overflow");
      }
      return Value::integer(acc);
    }
    double x = a.as_double(), y = b.as_double();
    if (x == 0 && y < 0) return make_error("0.0 cannot be raised to a negative power");
    if (x < 0 && y != std::floor(y)) return make_error("complex results are not supported");
    return Value::number(std::pow(x, y));
  }
  return make_error("unknown operator " + op);
}

Result<std::vector<Value>> iterate(Interp& in, const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return std::vector<Value>{};
    case Kind::List:
    case Kind::Tuple:
      VELO_TRY(in.charge(v.list->size()));
      return *v.list;
    case Kind::Dict: {
      VELO_TRY(in.charge(v.dict->size()));
      std::vector<Value> keys;
      for (const auto& kv : v.dict->items) keys.push_back(kv.first);
      return keys;
    }
    case Kind::String: {
      VELO_TRY(in.charge(v.s.size()));
      std::vector<Value> chars;
      for (size_t i = 0; i < v.s.size();) {
        size_t j = i;
        ustr::next_cp(v.s, j);
        chars.push_back(Value::string(v.s.substr(i, j - i)));
        i = j;
      }
      return chars;
    }
    default: return make_error("'" + type_name(v) + "' object is not iterable");
  }
}

Result<bool> contains(const Value& c, const Value& item) {
  switch (c.kind) {
    case Kind::Undefined: return false;
    case Kind::String:
      if (!item.is_string())
        return make_error("'in <string>' requires string as left operand, not " + type_name(item));
      return c.s.find(item.s) != std::string::npos;
    case Kind::List:
    case Kind::Tuple:
      for (const auto& x : *c.list)
        if (equals(x, item)) return true;
      return false;
    case Kind::Dict:
      if (!key_id(item)) return make_error("unhashable type: '" + type_name(item) + "'");
      return c.dict->find(item) != nullptr;
    default: return make_error("argument of type '" + type_name(c) + "' is not iterable");
  }
}

static Value missing_attr(const Value& obj, const std::string& name) {
  return Value::undefined("!'" + type_name(obj) + " object' has no attribute '" + name + "'");
}

Result<Value> get_attr(Interp& in, const Value& obj, const std::string& name) {
  if (obj.is_undefined()) return make_error(undefined_message(obj));
  if (!name.empty() && name[0] == '_')
    return Value::undefined("!access to attribute '" + name + "' of '" + type_name(obj) + "' object is unsafe.");
  // Attributes (methods) shadow keys, as Python's getattr comes first in jinja2.
  if (auto m = bound_method(in, obj, name)) return *m;
  if (obj.kind == Kind::Dict || obj.kind == Kind::Namespace || obj.kind == Kind::Object) {
    if (const Value* v = obj.dict->find(std::string_view(name))) return *v;
  }
  return missing_attr(obj, name);
}

Result<Value> get_item(Interp& in, const Value& obj, const Value& key) {
  if (obj.is_undefined()) return make_error(undefined_message(obj));
  switch (obj.kind) {
    case Kind::Dict:
      if (const Value* v = obj.dict->find(key)) return *v;
      break;
    case Kind::List:
    case Kind::Tuple:
      if (key.is_int()) {
        int64_t n = static_cast<int64_t>(obj.list->size()), k = key.as_int();
        if (k < 0) k += n;
        if (k >= 0 && k < n) return (*obj.list)[k];
        return Value::undefined("!" + type_name(obj) + " index out of range");
      }
      break;
    case Kind::String:
      if (key.is_int()) {
        auto cps = ustr::to_cps(obj.s);
        int64_t n = static_cast<int64_t>(cps.size()), k = key.as_int();
        if (k < 0) k += n;
        if (k >= 0 && k < n) return Value::string(ustr::from_cps(cps, k, k + 1));
        return Value::undefined("!string index out of range");
      }
      break;
    default: break;
  }
  if (key.is_string()) return get_attr(in, obj, key.s);
  return Value::undefined("!'" + type_name(obj) + " object' has no element " + py_repr(key));
}

Result<Value> get_slice(Interp& in, const Value& obj, const Value& a, const Value& b, const Value& c) {
  if (obj.is_undefined()) return make_error(undefined_message(obj));
  for (const Value* v : {&a, &b, &c})
    if (!v->is_none() && !v->is_int())
      return make_error("slice indices must be integers or None");
  int64_t step = c.is_none() ? 1 : c.as_int();
  if (step == 0) return make_error("slice step cannot be zero");
  std::vector<uint32_t> cps;
  int64_t n;
  if (obj.is_string()) {
    cps = ustr::to_cps(obj.s);
    n = static_cast<int64_t>(cps.size());
  } else if (obj.is_seq()) {
    n = static_cast<int64_t>(obj.list->size());
  } else {
    return Value::undefined("!'" + type_name(obj) + " object' is not subscriptable");
  }
  // Python's PySlice_AdjustIndices.
  auto adjust = [&](const Value& v, int64_t def_pos, int64_t def_neg) {
    if (v.is_none()) return step > 0 ? def_pos : def_neg;
    int64_t x = v.as_int();
    if (x < 0) {
      x += n;
      if (x < 0) x = step < 0 ? -1 : 0;
    } else if (x >= n) {
      x = step < 0 ? n - 1 : n;
    }
    return x;
  };
  int64_t start = adjust(a, 0, n - 1), stop = adjust(b, n, -1);
  std::vector<int64_t> idx;
  if (step > 0)
    for (int64_t k = start; k < stop; k += step) idx.push_back(k);
  else
    for (int64_t k = start; k > stop; k += step) idx.push_back(k);
  VELO_TRY(in.charge(idx.size()));
  if (obj.is_string()) {
    std::string r;
    for (int64_t k : idx) ustr::append_cp(r, cps[k]);
    return Value::string(std::move(r));
  }
  List r;
  for (int64_t k : idx) r.push_back((*obj.list)[k]);
  return Value::make_list(std::move(r), obj.kind == Kind::Tuple);
}

Result<Value> to_int(const Value& v) {
  if (v.is_int()) return Value::integer(v.as_int());
  if (v.kind == Kind::Float) {
    if (!std::isfinite(v.f) || std::fabs(v.f) >= 9.2e18) return make_error("cannot convert float to integer");
    return Value::integer(static_cast<int64_t>(v.f));
  }
  if (v.is_string()) {
    std::string t = ustr::strip(v.s, nullptr, true, true);
    std::string digits;
    for (char ch : t)
      if (ch != '_') digits += ch;
    if (digits.empty()) return make_error("invalid literal for int()");
    size_t k = (digits[0] == '-' || digits[0] == '+') ? 1 : 0;
    if (k == digits.size()) return make_error("invalid literal for int()");
    for (size_t q = k; q < digits.size(); ++q)
      if (digits[q] < '0' || digits[q] > '9') return make_error("invalid literal for int()");
    errno = 0;
    long long x = std::strtoll(digits.c_str(), nullptr, 10);
    if (errno == ERANGE) return make_error("integer overflow");
    return Value::integer(x);
  }
  return make_error("int() argument must be a string or a number");
}

// printf-style "%" formatting: %s %r %d %i %f %F %e %g %x %X %o %c %% with flags,
// width and precision; args is one value or a tuple.
Result<std::string> percent_format(Interp& in, const std::string& fmt, const Value& args) {
  std::vector<Value> vals;
  if (args.kind == Kind::Tuple) vals = *args.list;
  else vals.push_back(args);
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') { out += fmt[i]; continue; }
    if (++i >= fmt.size()) return make_error("incomplete format");
    if (fmt[i] == '%') { out += '%'; continue; }
    std::string flags;
    while (i < fmt.size() && std::string_view("-+ #0").find(fmt[i]) != std::string_view::npos) flags += fmt[i++];
    int width = 0, prec = -1;
    while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i])) && width < 10000) width = width * 10 + (fmt[i++] - '0');
    if (i < fmt.size() && fmt[i] == '.') {
      prec = 0;
      ++i;
      while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i])) && prec < 400) prec = prec * 10 + (fmt[i++] - '0');
    }
    if (i >= fmt.size()) return make_error("incomplete format");
    char conv = fmt[i];
    if (next >= vals.size()) return make_error("not enough arguments for format string");
    const Value& v = vals[next++];
    std::string piece;
    if (conv == 's' || conv == 'r' || conv == 'a') {
      piece = conv == 's' ? py_str(v) : py_repr(v);
      if (prec >= 0) {
        auto cps = ustr::to_cps(piece);
        if (static_cast<size_t>(prec) < cps.size()) piece = ustr::from_cps(cps, 0, prec);
      }
    } else if (std::string_view("diouxXeEfFgGc").find(conv) != std::string_view::npos) {
      if (!v.is_number() && !(conv == 'c' && v.is_string()))
        return make_error(std::string("%") + conv + " format: a real number is required, not " + type_name(v));
      std::string spec = "%" + flags;
      if (width > 0) spec += std::to_string(std::min(width, 400));
      if (prec >= 0) spec += "." + std::to_string(prec);
      char buf[512];
      if (conv == 'c') {
        if (v.is_string()) piece = v.s;
        else ustr::append_cp(piece, static_cast<uint32_t>(v.as_int() & 0x1FFFFF));
      } else if (std::string_view("diouxX").find(conv) != std::string_view::npos) {
        VELO_ASSIGN_OR_RETURN(Value iv, to_int(v));
        spec += std::string("ll") + (conv == 'i' || conv == 'u' ? 'd' : conv);
        std::snprintf(buf, sizeof buf, spec.c_str(), static_cast<long long>(iv.i));
        piece = buf;
      } else {
        spec += conv;
        std::snprintf(buf, sizeof buf, spec.c_str(), v.as_double());
        piece = buf;
      }
    } else {
      return make_error(std::string("unsupported format character '") + conv + "'");
    }
    size_t len = ustr::length(piece);
    bool numeric = conv != 's' && conv != 'r' && conv != 'a' && conv != 'c';
    if (!numeric && static_cast<size_t>(width) > len) {
      std::string pad(width - len, ' ');
      piece = flags.find('-') != std::string::npos ? piece + pad : pad + piece;
    }
    out += piece;
    VELO_TRY(in.check_string(out.size()));
  }
  if (next < vals.size() && args.kind == Kind::Tuple)
    return make_error("not all arguments converted during string formatting");
  return out;
}

}  // namespace velo::jinja
