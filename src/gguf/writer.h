// GGUF v3 writer: metadata of every type and aligned tensor data.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/result.h"
#include "gguf/gguf.h"

namespace velo::gguf {

// A metadata value to write; owns its strings (unlike reader's Value).
struct OwnedValue {
  ValueType type = ValueType::UINT32;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string str;
  ValueType elem_type = ValueType::UINT8;
  std::vector<OwnedValue> elems;

  static OwnedValue from(const Value& v);  // deep copy of a parsed value
  static OwnedValue u32(uint32_t x);
  static OwnedValue i32(int32_t x);
  static OwnedValue u64(uint64_t x);
  static OwnedValue f32(float x);
  static OwnedValue boolean(bool x);
  static OwnedValue string(std::string s);
  static OwnedValue string_array(const std::vector<std::string>& xs);
  static OwnedValue f32_array(const std::vector<float>& xs);
  static OwnedValue i32_array(const std::vector<int32_t>& xs);
};

class Writer {
 public:
  explicit Writer(uint64_t alignment = 32) : alignment_(alignment) {}
  // Later values for the same key replace earlier ones (keys stay unique).
  void set(std::string key, OwnedValue v);
  // Tensor bytes are copied; `ne[0]` is the row length; bytes must match type and shape.
  Status add_tensor(std::string name, GgmlType type, std::vector<uint64_t> ne,
                    std::span<const uint8_t> bytes);
  Status write(const std::string& path) const;
  std::vector<uint8_t> to_bytes() const;

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<uint64_t> ne;
    std::vector<uint8_t> bytes;
  };
  uint64_t alignment_;
  std::vector<std::pair<std::string, OwnedValue>> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace velo::gguf
