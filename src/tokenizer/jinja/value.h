// Runtime values of the template interpreter, modelled on the Python objects
// jinja2 hands around: None, bool, int, float, str, list, tuple, dict (insertion
// ordered), namespace, callables and jinja2's default Undefined.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/result.h"

namespace velo::jinja {

enum class Kind : uint8_t {
  Undefined, None, Bool, Int, Float, String, List, Tuple, Dict, Namespace, Object, Callable
};

struct Value;
struct Dict;
struct Callable;
using List = std::vector<Value>;

struct Value {
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;               // String; Undefined: what was undefined (for the error message)
  std::shared_ptr<List> list;  // List, Tuple
  std::shared_ptr<Dict> dict;  // Dict, Namespace, Object
  std::shared_ptr<Callable> fn;

  static Value undefined(std::string what = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value string(std::string v);
  static Value make_list(List v, bool tuple = false);
  static Value make_dict(std::shared_ptr<Dict> d, Kind k = Kind::Dict);
  static Value empty_dict();
  static Value callable(std::string name, std::function<Result<Value>(struct CallArgs&)> fn);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_int() const { return kind == Kind::Int || kind == Kind::Bool; }  // bool is an int
  bool is_number() const { return is_int() || kind == Kind::Float; }
  bool is_seq() const { return kind == Kind::List || kind == Kind::Tuple; }
  bool is_mapping() const { return kind == Kind::Dict; }
  double as_double() const { return kind == Kind::Float ? f : static_cast<double>(as_int()); }
  int64_t as_int() const { return kind == Kind::Bool ? (b ? 1 : 0) : i; }
};

// Insertion-ordered dict keyed by Python equality (1 == 1.0 == True share a slot).
struct Dict {
  std::vector<std::pair<Value, Value>> items;
  std::unordered_map<std::string, size_t> index;  // key id -> position in items

  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  Status set(Value key, Value v);  // error on unhashable keys
  void set(std::string_view key, Value v);
  size_t size() const { return items.size(); }
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  const Value* kwarg(std::string_view name) const;
};

struct Callable {
  std::string name;
  std::function<Result<Value>(CallArgs&)> fn;
};

// Hash identity of a dict key; nullopt for unhashable values (list, dict, ...).
std::optional<std::string> key_id(const Value& v);

std::string type_name(const Value& v);  // Python type name for messages: 'int', 'str', ...
bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);  // Python ==
// Python <, <=, >, >=: -1/0/1, or an error for unorderable types.
Result<int> compare(const Value& a, const Value& b);

std::string py_str(const Value& v);   // str(v); Undefined -> ""
std::string py_repr(const Value& v);  // repr(v)
std::string float_repr(double d);     // repr(float)
std::string undefined_message(const Value& u);  // "'x' is undefined"

}  // namespace velo::jinja
