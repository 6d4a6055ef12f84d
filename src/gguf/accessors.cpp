// Typed metadata accessors of gguf::File. Errors name the key, its actual type
// and the expected one, e.g. "key 'llama.block_count' is STRING, expected an integer".
#include <cstdint>
#include <string>

#include "gguf/gguf.h"
#include "gguf/utf8.h"

namespace velo::gguf {

std::string_view value_type_name(ValueType t) {
  switch (t) {
    case ValueType::UINT8: return "UINT8";
    case ValueType::INT8: return "INT8";
    case ValueType::UINT16: return "UINT16";
    case ValueType::INT16: return "INT16";
    case ValueType::UINT32: return "UINT32";
    case ValueType::INT32: return "INT32";
    case ValueType::FLOAT32: return "FLOAT32";
    case ValueType::BOOL: return "BOOL";
    case ValueType::STRING: return "STRING";
    case ValueType::ARRAY: return "ARRAY";
    case ValueType::UINT64: return "UINT64";
    case ValueType::INT64: return "INT64";
    case ValueType::FLOAT64: return "FLOAT64";
  }
  return "UNKNOWN";
}

namespace {

bool is_unsigned(ValueType t) {
  return t == ValueType::UINT8 || t == ValueType::UINT16 || t == ValueType::UINT32 || t == ValueType::UINT64;
}
bool is_signed(ValueType t) {
  return t == ValueType::INT8 || t == ValueType::INT16 || t == ValueType::INT32 || t == ValueType::INT64;
}
bool is_float(ValueType t) { return t == ValueType::FLOAT32 || t == ValueType::FLOAT64; }

std::string describe(const Value& v) {
  std::string s(value_type_name(v.type));
  if (v.type == ValueType::ARRAY) s += " of " + std::string(value_type_name(v.elem_type));
  return s;
}

Error wrong_type(std::string_view key, const Value& v, std::string_view expected) {
  return make_error("key '" + printable(key) + "' is " + describe(v) + ", expected " + std::string(expected));
}

Error missing(std::string_view key) { return make_error("missing key '" + printable(key) + "'"); }

// Integer value as uint64 (negative values rejected); `what` names it in errors.
Result<uint64_t> as_uint(const Value& v, const std::string& what) {
  if (is_unsigned(v.type)) return v.num.u;
  if (is_signed(v.type)) {
    if (v.num.i < 0) return make_error(what + " is " + std::to_string(v.num.i) + ", expected a non-negative integer");
    return static_cast<uint64_t>(v.num.i);
  }
  return make_error(what + " is " + describe(v) + ", expected an integer");
}

Result<int64_t> as_int(const Value& v, const std::string& what) {
  if (is_signed(v.type)) return v.num.i;
  if (is_unsigned(v.type)) {
    if (v.num.u > static_cast<uint64_t>(INT64_MAX))
      return make_error(what + " is " + std::to_string(v.num.u) + ", too large for a signed 64-bit integer");
    return static_cast<int64_t>(v.num.u);
  }
  return make_error(what + " is " + describe(v) + ", expected an integer");
}

Result<double> as_float(const Value& v, const std::string& what) {
  if (is_float(v.type)) return v.num.f;
  if (is_unsigned(v.type)) return static_cast<double>(v.num.u);
  if (is_signed(v.type)) return static_cast<double>(v.num.i);
  return make_error(what + " is " + describe(v) + ", expected a number");
}

std::string key_what(std::string_view key) { return "key '" + printable(key) + "'"; }
std::string elem_what(std::string_view key, size_t i) {
  return "element " + std::to_string(i) + " of key '" + printable(key) + "'";
}

}  // namespace

const Value* File::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].value;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Result<uint64_t> File::get_uint(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(key);
  return as_uint(*v, key_what(key));
}

Result<int64_t> File::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(key);
  return as_int(*v, key_what(key));
}

Result<double> File::get_float(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(key);
  return as_float(*v, key_what(key));
}

Result<bool> File::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(key);
  if (v->type != ValueType::BOOL) return wrong_type(key, *v, "BOOL");
  return v->num.u != 0;
}

Result<std::string_view> File::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(key);
  if (v->type != ValueType::STRING) return wrong_type(key, *v, "STRING");
  return v->str;
}

Result<std::vector<std::string_view>> File::get_string_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(key);
  if (v->type != ValueType::ARRAY || v->elem_type != ValueType::STRING)
    return wrong_type(key, *v, "ARRAY of STRING");
  std::vector<std::string_view> out;
  out.reserve(v->elems.size());
  for (const auto& e : v->elems) out.push_back(e.str);
  return out;
}

Result<std::vector<float>> File::get_float_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(key);
  if (v->type != ValueType::ARRAY ||
      !(is_float(v->elem_type) || is_signed(v->elem_type) || is_unsigned(v->elem_type)))
    return wrong_type(key, *v, "ARRAY of numbers");
  std::vector<float> out;
  out.reserve(v->elems.size());
  for (size_t i = 0; i < v->elems.size(); ++i) {
    VELO_ASSIGN_OR_RETURN(double d, as_float(v->elems[i], elem_what(key, i)));
    out.push_back(static_cast<float>(d));
  }
  return out;
}

Result<std::vector<int64_t>> File::get_int_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return missing(key);
  if (v->type != ValueType::ARRAY || !(is_signed(v->elem_type) || is_unsigned(v->elem_type)))
    return wrong_type(key, *v, "ARRAY of integers");
  std::vector<int64_t> out;
  out.reserve(v->elems.size());
  for (size_t i = 0; i < v->elems.size(); ++i) {
    VELO_ASSIGN_OR_RETURN(int64_t x, as_int(v->elems[i], elem_what(key, i)));
    out.push_back(x);
  }
  return out;
}

Result<uint64_t> File::get_uint_or(std::string_view key, uint64_t fallback) const {
  if (!find(key)) return fallback;
  return get_uint(key);
}

Result<double> File::get_float_or(std::string_view key, double fallback) const {
  if (!find(key)) return fallback;
  return get_float(key);
}

}  // namespace velo::gguf
