// GGUF v3 writer: header, metadata, tensor infos, then tensor data with each
// tensor starting on a multiple of the alignment.
#include "gguf/writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/checked.h"

namespace velo::gguf {

OwnedValue OwnedValue::from(const Value& v) {
  OwnedValue o;
  o.type = v.type;
  switch (v.type) {
    case ValueType::UINT8: case ValueType::UINT16: case ValueType::UINT32: case ValueType::UINT64:
    case ValueType::BOOL:
      o.u = v.num.u;
      break;
    case ValueType::INT8: case ValueType::INT16: case ValueType::INT32: case ValueType::INT64:
      o.i = v.num.i;
      break;
    case ValueType::FLOAT32: case ValueType::FLOAT64:
      o.f = v.num.f;
      break;
    case ValueType::STRING:
      o.str.assign(v.str);
      break;
    case ValueType::ARRAY:
      o.elem_type = v.elem_type;
      o.elems.reserve(v.elems.size());
      for (const auto& e : v.elems) o.elems.push_back(from(e));
      break;
  }
  return o;
}

OwnedValue OwnedValue::u32(uint32_t x) { OwnedValue o; o.type = ValueType::UINT32; o.u = x; return o; }
OwnedValue OwnedValue::i32(int32_t x) { OwnedValue o; o.type = ValueType::INT32; o.i = x; return o; }
OwnedValue OwnedValue::u64(uint64_t x) { OwnedValue o; o.type = ValueType::UINT64; o.u = x; return o; }
OwnedValue OwnedValue::f32(float x) { OwnedValue o; o.type = ValueType::FLOAT32; o.f = x; return o; }
OwnedValue OwnedValue::boolean(bool x) { OwnedValue o; o.type = ValueType::BOOL; o.u = x ? 1 : 0; return o; }
OwnedValue OwnedValue::string(std::string s) {
  OwnedValue o;
  o.type = ValueType::STRING;
  o.str = std::move(s);
  return o;
}
OwnedValue OwnedValue::string_array(const std::vector<std::string>& xs) {
  OwnedValue o;
  o.type = ValueType::ARRAY;
  o.elem_type = ValueType::STRING;
  for (const auto& x : xs) o.elems.push_back(string(x));
  return o;
}
OwnedValue OwnedValue::f32_array(const std::vector<float>& xs) {
  OwnedValue o;
  o.type = ValueType::ARRAY;
  o.elem_type = ValueType::FLOAT32;
  for (float x : xs) o.elems.push_back(f32(x));
  return o;
}
OwnedValue OwnedValue::i32_array(const std::vector<int32_t>& xs) {
  OwnedValue o;
  o.type = ValueType::ARRAY;
  o.elem_type = ValueType::INT32;
  for (int32_t x : xs) o.elems.push_back(i32(x));
  return o;
}

void Writer::set(std::string key, OwnedValue v) {
  for (auto& [k, old] : kv_)
    if (k == key) {
      old = std::move(v);
      return;
    }
  kv_.emplace_back(std::move(key), std::move(v));
}

Result<uint64_t> Writer::check_tensor(const std::string& name, GgmlType type,
                                      const std::vector<uint64_t>& ne) const {
  if (name.empty() || name.size() > kMaxTensorName)
    return make_error("tensor name '" + name + "' must be 1.." + std::to_string(kMaxTensorName) + " bytes");
  for (const auto& t : tensors_)
    if (t.name == name) return make_error("duplicate tensor name '" + name + "'");
  if (ne.empty() || ne.size() > kMaxDims)
    return make_error("tensor '" + name + "' has " + std::to_string(ne.size()) + " dimensions (must be 1..4)");
  auto tr = type_traits(type);
  if (!tr) return make_error("tensor '" + name + "' has unknown type " + type_name(type));
  uint64_t rows = 1;
  for (size_t d = 1; d < ne.size(); ++d) {
    auto r = checked_mul(rows, ne[d]);
    if (!r || ne[d] == 0) return make_error("tensor '" + name + "' has a zero or overflowing dimension");
    rows = *r;
  }
  auto rb = row_bytes(type, ne[0]);
  if (!rb || ne[0] == 0)
    return make_error("tensor '" + name + "' row length " + std::to_string(ne[0]) + " is not a whole number of " +
                      std::string(tr->name) + " blocks");
  auto total = checked_mul(*rb, rows);
  if (!total) return make_error("tensor '" + name + "' size overflows");
  return *total;
}

Status Writer::add_tensor(std::string name, GgmlType type, std::vector<uint64_t> ne,
                          std::span<const uint8_t> bytes) {
  VELO_ASSIGN_OR_RETURN(uint64_t n, check_tensor(name, type, ne));
  if (n != bytes.size())
    return make_error("tensor '" + name + "' has " + std::to_string(bytes.size()) +
                      " bytes, its type and shape need " + std::to_string(n));
  tensors_.push_back({std::move(name), type, std::move(ne), n, std::vector<uint8_t>(bytes.begin(), bytes.end()), false});
  return {};
}

Status Writer::declare_tensor(std::string name, GgmlType type, std::vector<uint64_t> ne) {
  VELO_ASSIGN_OR_RETURN(uint64_t n, check_tensor(name, type, ne));
  tensors_.push_back({std::move(name), type, std::move(ne), n, {}, true});
  return {};
}

namespace {

struct Out {
  std::vector<uint8_t>& b;
  template <class T>
  void put(T v) {
    const size_t n = b.size();
    b.resize(n + sizeof(T));
    std::memcpy(b.data() + n, &v, sizeof(T));
  }
  void str(std::string_view s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
  void pad_to(uint64_t align) {
    while (b.size() % align) b.push_back(0);
  }
  // The payload of a value of type t (no type tag).
  void value(ValueType t, const OwnedValue& v) {
    switch (t) {
      case ValueType::UINT8: put<uint8_t>(static_cast<uint8_t>(v.u)); break;
      case ValueType::INT8: put<int8_t>(static_cast<int8_t>(v.i)); break;
      case ValueType::UINT16: put<uint16_t>(static_cast<uint16_t>(v.u)); break;
      case ValueType::INT16: put<int16_t>(static_cast<int16_t>(v.i)); break;
      case ValueType::UINT32: put<uint32_t>(static_cast<uint32_t>(v.u)); break;
      case ValueType::INT32: put<int32_t>(static_cast<int32_t>(v.i)); break;
      case ValueType::FLOAT32: put<float>(static_cast<float>(v.f)); break;
      case ValueType::BOOL: put<uint8_t>(v.u ? 1 : 0); break;
      case ValueType::STRING: str(v.str); break;
      case ValueType::UINT64: put<uint64_t>(v.u); break;
      case ValueType::INT64: put<int64_t>(v.i); break;
      case ValueType::FLOAT64: put<double>(v.f); break;
      case ValueType::ARRAY:
        put<uint32_t>(static_cast<uint32_t>(v.elem_type));
        put<uint64_t>(v.elems.size());
        // Elements are written with the array's element type, so a mixed
        // OwnedValue cannot produce an inconsistent file.
        for (const auto& e : v.elems) value(v.elem_type, e);
        break;
    }
  }
};

}  // namespace

std::vector<uint8_t> Writer::header_bytes() const {
  // general.alignment is written whenever it differs from the default, and
  // always reflects the alignment actually used.
  std::vector<std::pair<std::string, OwnedValue>> kv = kv_;
  bool has_align = false;
  for (auto& [k, v] : kv)
    if (k == "general.alignment") {
      v = OwnedValue::u32(static_cast<uint32_t>(alignment_));
      has_align = true;
    }
  if (!has_align && alignment_ != 32) kv.emplace_back("general.alignment", OwnedValue::u32(static_cast<uint32_t>(alignment_)));

  std::vector<uint8_t> b;
  Out o{b};
  o.put<uint32_t>(0x46554747);  // "GGUF"
  o.put<uint32_t>(3);
  o.put<uint64_t>(tensors_.size());
  o.put<uint64_t>(kv.size());
  for (const auto& [k, v] : kv) {
    o.str(k);
    o.put<uint32_t>(static_cast<uint32_t>(v.type));
    o.value(v.type, v);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    o.str(t.name);
    o.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) o.put<uint64_t>(d);
    o.put<uint32_t>(static_cast<uint32_t>(t.type));
    o.put<uint64_t>(offset);
    offset += (t.n_bytes + alignment_ - 1) / alignment_ * alignment_;
  }
  o.pad_to(alignment_);
  return b;
}

std::vector<uint8_t> Writer::to_bytes() const {
  if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0 || alignment_ > kMaxAlignment) return {};
  std::vector<uint8_t> b = header_bytes();
  Out o{b};
  for (const auto& t : tensors_) {
    if (t.streamed)
      b.resize(b.size() + t.n_bytes);  // declared-only tensors read as zeros here
    else
      b.insert(b.end(), t.bytes.begin(), t.bytes.end());
    o.pad_to(alignment_);
  }
  return b;
}

namespace {

Status put_all(FILE* f, const std::string& path, const void* p, size_t n) {
  if (n && std::fwrite(p, 1, n, f) != n) return make_error(path + ": write failed: " + std::strerror(errno));
  return {};
}

}  // namespace

Status Writer::write(const std::string& path) const {
  return write_streaming(path, [](size_t i, const Emit&) -> Status {
    return make_error("tensor #" + std::to_string(i) + " was declared but write() has no producer for it");
  });
}

Status Writer::write_streaming(const std::string& path, const Produce& produce) const {
  if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0 || alignment_ > kMaxAlignment)
    return make_error("alignment " + std::to_string(alignment_) + " must be a power of two up to 1 MiB");
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), std::fclose);
  if (!f) return make_error(path + ": cannot create: " + std::strerror(errno));
  const std::vector<uint8_t> head = header_bytes();
  VELO_TRY(put_all(f.get(), path, head.data(), head.size()));
  static const uint8_t zeros[256] = {};
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    if (!t.streamed) {
      VELO_TRY(put_all(f.get(), path, t.bytes.data(), t.bytes.size()));
    } else {
      uint64_t written = 0;
      Emit emit = [&](std::span<const uint8_t> piece) -> Status {
        if (piece.size() > t.n_bytes - written)
          return make_error("tensor '" + t.name + "': producer emitted more than its " + std::to_string(t.n_bytes) + " bytes");
        written += piece.size();
        return put_all(f.get(), path, piece.data(), piece.size());
      };
      VELO_TRY(produce(i, emit));
      if (written != t.n_bytes)
        return make_error("tensor '" + t.name + "': producer emitted " + std::to_string(written) + " of " +
                          std::to_string(t.n_bytes) + " bytes");
    }
    for (uint64_t pad = (alignment_ - t.n_bytes % alignment_) % alignment_; pad > 0;) {
      const size_t n = pad < sizeof zeros ? pad : sizeof zeros;
      VELO_TRY(put_all(f.get(), path, zeros, n));
      pad -= n;
    }
  }
  if (std::fclose(f.release()) != 0) return make_error(path + ": write failed: " + std::strerror(errno));
  return {};
}

}  // namespace velo::gguf
