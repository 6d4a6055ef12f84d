// GGUF v2/v3 parser. Every count, length and offset read from the file is
// checked against the bytes that remain (with overflow-checked arithmetic)
// before it is used to allocate, index or advance. Errors are one line.
//
// Memory bound: every parsed Value consumes at least one byte of the file and
// their number is capped at file_size / 4 + kValueBudgetFixed, so metadata
// costs at most ~16x the file size + 64 MiB; each tensor info consumes >= 32
// bytes of the file. Arrays nest at most kMaxArrayDepth levels (no deep recursion).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "core/checked.h"
#include "gguf/gguf.h"
#include "gguf/utf8.h"

namespace velo::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr uint64_t kMaxKeyLen = 65535;   // spec: keys are at most 2^16-1 bytes
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;          // key length, type, smallest value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // name len, n_dims, ne[0], type, offset
// Parsed Values allowed: one per 4 file bytes plus a fixed allowance, which
// admits every real vocabulary (elements are >= 4 bytes there) while keeping
// sizeof(Value) * count within ~16x the file size + 64 MiB.
constexpr uint64_t kValueBudgetFixed = 1u << 20;

// Fixed encoded size of a scalar value type; 0 for STRING/ARRAY; nullopt when unknown.
std::optional<uint64_t> scalar_size(uint32_t t) {
  switch (static_cast<ValueType>(t)) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
    case ValueType::UINT16: case ValueType::INT16: return 2;
    case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
    case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
    case ValueType::STRING: case ValueType::ARRAY: return 0;
  }
  return std::nullopt;
}

// Smallest number of bytes one element of type t can occupy (t already validated).
uint64_t min_encoded_size(ValueType t) {
  if (t == ValueType::STRING) return 8;     // length prefix
  if (t == ValueType::ARRAY) return 4 + 8;  // element type + count
  return *scalar_size(static_cast<uint32_t>(t));
}

}  // namespace

class Parser {
 public:
  Parser(File& f, std::span<const uint8_t> b) : f_(f), b_(b) {
    value_budget_ = b.size() / 4 + kValueBudgetFixed;
  }

  Status run() {
    VELO_TRY(header());
    for (uint64_t i = 0; i < n_kv_; ++i) VELO_TRY(key_value(i));
    VELO_TRY(alignment());
    f_.tensors_.reserve(n_tensors_);
    for (uint64_t i = 0; i < n_tensors_; ++i) VELO_TRY(tensor_info(i));
    return tensor_data();
  }

 private:
  uint64_t left() const { return b_.size() - pos_; }

  Error err(const std::string& msg) const { return make_error(msg); }

  Error truncated(const std::string& what, uint64_t need) const {
    return err("truncated file: " + what + " at offset " + std::to_string(pos_) + " needs " +
               std::to_string(need) + " bytes but only " + std::to_string(left()) + " remain");
  }

  Status need(uint64_t n, const std::string& what) const {
    if (n > left()) return truncated(what, n);
    return {};
  }

  template <class T>
  Result<T> read(const std::string& what) {
    VELO_TRY(need(sizeof(T), what));
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));  // files are little-endian, as is every host we build for
    pos_ += sizeof(T);
    return v;
  }

  // A length-prefixed string; `what` names it in errors.
  Result<std::string_view> string(const std::string& what) {
    const uint64_t at = pos_;
    VELO_ASSIGN_OR_RETURN(uint64_t len, read<uint64_t>(what + " length"));
    if (len > left())
      return err(what + " length " + std::to_string(len) + " at offset " + std::to_string(at) +
                 " runs past the end of the file (" + std::to_string(left()) + " bytes remain)");
    std::string_view s(reinterpret_cast<const char*>(b_.data() + pos_), len);
    pos_ += len;
    return s;
  }

  Status header() {
    if (b_.size() < 4) return err("not a GGUF file: only " + std::to_string(b_.size()) + " bytes");
    VELO_ASSIGN_OR_RETURN(uint32_t magic, read<uint32_t>("magic"));
    if (magic != kMagic) {
      std::string_view m(reinterpret_cast<const char*>(b_.data()), 4);
      return err("not a GGUF file: bad magic '" + printable(m) + "' (expected 'GGUF')");
    }
    VELO_ASSIGN_OR_RETURN(uint32_t version, read<uint32_t>("version"));
    if (version == 1)
      return err("GGUF version 1 is obsolete and not supported (re-convert the model to GGUF v3)");
    if (version == 0x02000000u || version == 0x03000000u)
      return err("big-endian GGUF files are not supported");
    if (version != 2 && version != 3)
      return err("unsupported GGUF version " + std::to_string(version) + " (supported: 2, 3)");
    f_.version_ = version;
    VELO_ASSIGN_OR_RETURN(n_tensors_, read<uint64_t>("tensor count"));
    VELO_ASSIGN_OR_RETURN(n_kv_, read<uint64_t>("metadata count"));
    auto kv_min = checked_mul(n_kv_, kMinKvBytes);
    if (!kv_min || *kv_min > left())
      return err("metadata count " + std::to_string(n_kv_) + " is larger than the " +
                 std::to_string(left()) + " remaining bytes could hold (truncated or corrupt file)");
    auto t_min = checked_mul(n_tensors_, kMinTensorInfoBytes);
    auto all_min = t_min ? checked_add(*t_min, *kv_min) : std::nullopt;
    if (!all_min || *all_min > left())
      return err("tensor count " + std::to_string(n_tensors_) + " is larger than the " +
                 std::to_string(left()) + " remaining bytes could hold (truncated or corrupt file)");
    f_.kv_.reserve(n_kv_);
    return {};
  }

  Status key_value(uint64_t index) {
    const uint64_t at = pos_;
    VELO_ASSIGN_OR_RETURN(std::string_view key, string("metadata key #" + std::to_string(index)));
    if (key.empty()) return err("metadata key #" + std::to_string(index) + " at offset " + std::to_string(at) + " is empty");
    if (key.size() > kMaxKeyLen)
      return err("metadata key #" + std::to_string(index) + " is " + std::to_string(key.size()) +
                 " bytes long (limit " + std::to_string(kMaxKeyLen) + ")");
    if (!valid_utf8(key))
      return err("metadata key #" + std::to_string(index) + " '" + printable(key) + "' is not valid UTF-8");
    if (f_.kv_index_.count(key)) return err("duplicate metadata key '" + printable(key) + "'");
    VELO_ASSIGN_OR_RETURN(uint32_t type, read<uint32_t>("type of key '" + printable(key) + "'"));
    KeyValue kv;
    kv.key = key;
    key_ = key;
    VELO_TRY(value(type, 0, kv.value));
    f_.kv_index_.emplace(key, f_.kv_.size());
    f_.kv_.push_back(std::move(kv));
    return {};
  }

  Status charge_values(uint64_t n) {
    if (n > value_budget_)
      return err("metadata arrays hold too many elements for a file of " + std::to_string(b_.size()) +
                 " bytes (key '" + printable(key_) + "')");
    value_budget_ -= n;
    return {};
  }

  Status value(uint32_t type, uint32_t depth, Value& out) {
    if (!scalar_size(type))
      return err("key '" + printable(key_) + "' has unknown value type " + std::to_string(type));
    out.type = static_cast<ValueType>(type);
    const std::string what = "value of key '" + printable(key_) + "'";
    switch (out.type) {
      case ValueType::UINT8: { VELO_ASSIGN_OR_RETURN(out.num.u, read<uint8_t>(what)); break; }
      case ValueType::UINT16: { VELO_ASSIGN_OR_RETURN(out.num.u, read<uint16_t>(what)); break; }
      case ValueType::UINT32: { VELO_ASSIGN_OR_RETURN(out.num.u, read<uint32_t>(what)); break; }
      case ValueType::UINT64: { VELO_ASSIGN_OR_RETURN(out.num.u, read<uint64_t>(what)); break; }
      case ValueType::INT8: { VELO_ASSIGN_OR_RETURN(out.num.i, read<int8_t>(what)); break; }
      case ValueType::INT16: { VELO_ASSIGN_OR_RETURN(out.num.i, read<int16_t>(what)); break; }
      case ValueType::INT32: { VELO_ASSIGN_OR_RETURN(out.num.i, read<int32_t>(what)); break; }
      case ValueType::INT64: { VELO_ASSIGN_OR_RETURN(out.num.i, read<int64_t>(what)); break; }
      case ValueType::FLOAT32: { VELO_ASSIGN_OR_RETURN(out.num.f, read<float>(what)); break; }
      case ValueType::FLOAT64: { VELO_ASSIGN_OR_RETURN(out.num.f, read<double>(what)); break; }
      case ValueType::BOOL: {
        VELO_ASSIGN_OR_RETURN(uint8_t b, read<uint8_t>(what));
        if (b > 1) return err("key '" + printable(key_) + "' has invalid bool value " + std::to_string(b));
        out.num.u = b;
        break;
      }
      case ValueType::STRING: { VELO_ASSIGN_OR_RETURN(out.str, string("string " + what)); break; }
      case ValueType::ARRAY: return array(depth, out);
    }
    return {};
  }

  Status array(uint32_t depth, Value& out) {
    const std::string k = printable(key_);
    if (depth + 1 > kMaxArrayDepth)
      return err("key '" + k + "' nests arrays deeper than " + std::to_string(kMaxArrayDepth) + " levels");
    VELO_ASSIGN_OR_RETURN(uint32_t et, read<uint32_t>("array element type of key '" + k + "'"));
    if (!scalar_size(et)) return err("key '" + k + "' has an array of unknown value type " + std::to_string(et));
    out.elem_type = static_cast<ValueType>(et);
    const uint64_t at = pos_;
    VELO_ASSIGN_OR_RETURN(uint64_t count, read<uint64_t>("array count of key '" + k + "'"));
    auto min_bytes = checked_mul(count, min_encoded_size(out.elem_type));
    if (!min_bytes || *min_bytes > left())
      return err("array count " + std::to_string(count) + " of key '" + k + "' at offset " + std::to_string(at) +
                 " is larger than the " + std::to_string(left()) + " remaining bytes could hold (truncated or corrupt file)");
    VELO_TRY(charge_values(count));
    out.elems.resize(count);
    // Vocabulary strings must be text: tokenizers match and print them as UTF-8.
    const bool text = out.elem_type == ValueType::STRING && depth == 0 &&
                      (key_ == "tokenizer.ggml.tokens" || key_ == "tokenizer.ggml.merges");
    for (uint64_t i = 0; i < count; ++i) {
      VELO_TRY(value(et, depth + 1, out.elems[i]));
      if (text && !valid_utf8(out.elems[i].str))
        return err("string " + std::to_string(i) + " of '" + k + "' is not valid UTF-8: '" +
                   printable(out.elems[i].str) + "'");
    }
    return {};
  }

  Status alignment() {
    auto it = f_.kv_index_.find("general.alignment");
    if (it == f_.kv_index_.end()) return {};
    const Value& v = f_.kv_[it->second].value;
    uint64_t a;
    switch (v.type) {
      case ValueType::UINT8: case ValueType::UINT16: case ValueType::UINT32: case ValueType::UINT64:
        a = v.num.u;
        break;
      case ValueType::INT8: case ValueType::INT16: case ValueType::INT32: case ValueType::INT64:
        if (v.num.i <= 0) return err("general.alignment is " + std::to_string(v.num.i) + ", must be a positive power of two");
        a = static_cast<uint64_t>(v.num.i);
        break;
      default:
        return err("key 'general.alignment' is " + std::string(value_type_name(v.type)) + ", expected an integer");
    }
    if (a == 0 || (a & (a - 1)) != 0)
      return err("general.alignment is " + std::to_string(a) + ", must be a power of two");
    if (a > kMaxAlignment)
      return err("general.alignment " + std::to_string(a) + " is absurdly large (limit " +
                 std::to_string(kMaxAlignment) + ")");
    f_.alignment_ = a;
    return {};
  }

  Status tensor_info(uint64_t index) {
    const std::string idx = "tensor #" + std::to_string(index);
    VELO_ASSIGN_OR_RETURN(std::string_view name, string(idx + " name"));
    if (name.empty()) return err(idx + " has an empty name");
    if (name.size() > kMaxTensorName)
      return err(idx + " name is " + std::to_string(name.size()) + " bytes long (limit " + std::to_string(kMaxTensorName) + ")");
    if (!valid_utf8(name)) return err(idx + " name '" + printable(name) + "' is not valid UTF-8");
    const std::string tn = "tensor '" + printable(name) + "'";
    if (f_.tensor_index_.count(name)) return err("duplicate tensor name '" + printable(name) + "'");
    TensorInfo t;
    t.name = name;
    VELO_ASSIGN_OR_RETURN(uint32_t n_dims, read<uint32_t>(tn + " dimension count"));
    if (n_dims == 0 || n_dims > kMaxDims)
      return err(tn + " has " + std::to_string(n_dims) + " dimensions (must be 1.." + std::to_string(kMaxDims) + ")");
    t.ne.resize(n_dims);
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      VELO_ASSIGN_OR_RETURN(t.ne[d], read<uint64_t>(tn + " dimension"));
      if (t.ne[d] == 0) return err(tn + " dimension " + std::to_string(d) + " is zero");
      if (t.ne[d] > static_cast<uint64_t>(INT64_MAX))
        return err(tn + " dimension " + std::to_string(d) + " is too large (" + std::to_string(t.ne[d]) + ")");
      auto p = checked_mul(n_el, t.ne[d]);
      if (!p || *p > static_cast<uint64_t>(INT64_MAX)) return err(tn + " dimension product overflows");
      n_el = *p;
    }
    t.n_elements = n_el;
    VELO_ASSIGN_OR_RETURN(uint32_t type, read<uint32_t>(tn + " type"));
    auto tr = type_traits(type);
    if (!tr) return err(tn + " has unknown tensor type " + std::to_string(type));
    t.type = static_cast<GgmlType>(type);
    if (t.ne[0] % tr->block_elems != 0)
      return err(tn + " row length " + std::to_string(t.ne[0]) + " is not a multiple of the " +
                 std::string(tr->name) + " block size " + std::to_string(tr->block_elems));
    auto nb = checked_mul(n_el / tr->block_elems, tr->block_bytes);
    if (!nb) return err(tn + " byte size overflows");
    t.n_bytes = *nb;
    VELO_ASSIGN_OR_RETURN(t.offset, read<uint64_t>(tn + " offset"));
    if (t.offset % f_.alignment_ != 0)
      return err(tn + " offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                 std::to_string(f_.alignment_));
    f_.tensor_index_.emplace(name, f_.tensors_.size());
    f_.tensors_.push_back(std::move(t));
    return {};
  }

  Status tensor_data() {
    auto data = checked_align_up(pos_, f_.alignment_);
    if (!data) return err("tensor data offset overflows");
    f_.data_offset_ = *data;
    if (f_.tensors_.empty()) return {};
    if (*data > b_.size())
      return err("truncated file: tensor data section starts at " + std::to_string(*data) +
                 ", past the end of the file (" + std::to_string(b_.size()) + " bytes)");
    const uint64_t avail = b_.size() - *data;
    for (auto& t : f_.tensors_) {
      auto end = checked_add(t.offset, t.n_bytes);
      if (!end || *end > avail)
        return err("tensor '" + printable(t.name) + "' data (offset " + std::to_string(t.offset) + ", " +
                   std::to_string(t.n_bytes) + " bytes) runs past the end of the file (data section holds " +
                   std::to_string(avail) + " bytes)");
      t.data = b_.data() + *data + t.offset;
    }
    // Overlap check on tensors sorted by offset (empty tensors cannot occur: dims are >= 1).
    std::vector<const TensorInfo*> order;
    order.reserve(f_.tensors_.size());
    for (const auto& t : f_.tensors_) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < order.size(); ++i)
      if (order[i - 1]->offset + order[i - 1]->n_bytes > order[i]->offset)
        return err("tensor '" + printable(order[i]->name) + "' data overlaps tensor '" +
                   printable(order[i - 1]->name) + "'");
    return {};
  }

  File& f_;
  std::span<const uint8_t> b_;
  uint64_t pos_ = 0;
  uint64_t n_tensors_ = 0, n_kv_ = 0;
  uint64_t value_budget_ = 0;
  std::string_view key_;  // key being parsed, for messages
};

Result<std::unique_ptr<File>> File::parse(std::span<const uint8_t> bytes) {
  std::unique_ptr<File> f(new File());
  f->bytes_ = bytes;
  Parser p(*f, bytes);
  VELO_TRY(p.run());
  return f;
}

Result<std::unique_ptr<File>> File::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return make_error(path + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(path + ": not a regular file");
  }
  if (st.st_size == 0) {
    ::close(fd);
    return make_error(path + ": not a GGUF file: the file is empty");
  }
  const auto len = static_cast<size_t>(st.st_size);
  void* m = ::mmap(nullptr, len, PROT_READ, MAP_PRIVATE, fd, 0);
  const int e = errno;
  ::close(fd);
  if (m == MAP_FAILED) return make_error(path + ": cannot map: " + std::strerror(e));
  std::unique_ptr<File> f(new File());
  f->map_ = m;
  f->map_len_ = len;
  f->path_ = path;
  f->bytes_ = std::span<const uint8_t>(static_cast<const uint8_t*>(m), len);
  Parser p(*f, f->bytes_);
  if (auto s = p.run(); !s.ok()) return make_error(path + ": " + s.message());
  return f;
}

File::~File() {
  if (map_) ::munmap(map_, map_len_);
}

}  // namespace velo::gguf
