// GGUF v3 reader: the file is mmapped and every count, length and offset is
// checked against the bytes that remain before it is used. Nothing allocated
// here is larger than a small multiple of the file size.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/result.h"

namespace velo::gguf {

// Metadata value types, numbered as in the GGUF spec.
enum class ValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
std::string_view value_type_name(ValueType t);

// A parsed metadata value. Strings point into the mapped file; arrays keep
// their element type and the parsed elements (nested arrays allowed).
struct Value {
  ValueType type = ValueType::UINT8;
  union {
    uint64_t u;  // UINT8..UINT64, BOOL
    int64_t i;   // INT8..INT64
    double f;    // FLOAT32, FLOAT64
  } num{};
  std::string_view str;         // STRING
  ValueType elem_type = ValueType::UINT8;  // ARRAY: element type
  std::vector<Value> elems;     // ARRAY: elements
};

struct KeyValue {
  std::string_view key;
  Value value;
};

struct TensorInfo {
  std::string_view name;
  GgmlType type = GgmlType::F32;
  std::vector<uint64_t> ne;     // dims, ne[0] is the contiguous (row) dimension
  uint64_t offset = 0;          // relative to the start of the tensor data section
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // inside the mapping, already bounds-checked
};

class File {
 public:
  // Map and parse a file; errors are one line naming the problem.
  static Result<std::unique_ptr<File>> open(const std::string& path);
  // Parse bytes owned by the caller (kept alive by the caller); used by fuzzers and tests.
  static Result<std::unique_ptr<File>> parse(std::span<const uint8_t> bytes);
  // The File points into the bytes: parsing a temporary buffer would dangle.
  static Result<std::unique_ptr<File>> parse(std::vector<uint8_t>&& bytes) = delete;
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return bytes_.size(); }
  uint64_t data_offset() const { return data_offset_; }
  const std::string& path() const { return path_; }

  const std::vector<KeyValue>& metadata() const { return kv_; }
  const Value* find(std::string_view key) const;

  // Typed accessors: error on missing key or wrong type ("key 'x' is STRING, expected UINT32").
  // Integer getters accept any integer type whose value fits.
  Result<uint64_t> get_uint(std::string_view key) const;
  Result<int64_t> get_int(std::string_view key) const;
  Result<double> get_float(std::string_view key) const;  // FLOAT32/FLOAT64 (and integers)
  Result<bool> get_bool(std::string_view key) const;
  Result<std::string_view> get_string(std::string_view key) const;
  Result<std::vector<std::string_view>> get_string_array(std::string_view key) const;
  Result<std::vector<float>> get_float_array(std::string_view key) const;
  Result<std::vector<int64_t>> get_int_array(std::string_view key) const;
  // Convenience: value or `fallback` when the key is absent (still an error on wrong type).
  Result<uint64_t> get_uint_or(std::string_view key, uint64_t fallback) const;
  Result<double> get_float_or(std::string_view key, double fallback) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;

 private:
  File() = default;
  friend class Parser;
  std::string path_;
  std::span<const uint8_t> bytes_;
  void* map_ = nullptr;  // munmap on destruction when opened from a path
  size_t map_len_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<KeyValue> kv_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string_view, size_t> kv_index_;      // key -> index in kv_
  std::unordered_map<std::string_view, size_t> tensor_index_;  // name -> index in tensors_
};

// Limits the reader enforces on untrusted files (see reader.cpp for why).
inline constexpr uint32_t kMaxArrayDepth = 8;           // nesting of ARRAY values
inline constexpr uint64_t kMaxAlignment = 1ull << 20;   // general.alignment upper bound
inline constexpr uint64_t kMaxTensorName = 64;          // bytes, as in the GGUF spec
inline constexpr uint32_t kMaxDims = 4;

}  // namespace velo::gguf
