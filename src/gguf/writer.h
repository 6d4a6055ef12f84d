// GGUF v3 writer: metadata of every type and aligned tensor data.
#pragma once
#include <cstdint>
#include <functional>
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
  // The alignment must be a power of two up to 1 MiB: write() reports an
  // error otherwise and to_bytes() returns no bytes.
  Status write(const std::string& path) const;
  std::vector<uint8_t> to_bytes() const;

  // Streaming, for files larger than memory should hold: declare_tensor adds a
  // tensor without bytes; write_streaming then calls produce(i, emit) for each
  // declared tensor i (index among all tensors, in order) and the producer
  // passes the tensor's bytes to emit in one or more pieces, in order. The
  // total must equal the size its type and shape need.
  using Emit = std::function<Status(std::span<const uint8_t>)>;
  using Produce = std::function<Status(size_t, const Emit&)>;
  Status declare_tensor(std::string name, GgmlType type, std::vector<uint64_t> ne);
  Status write_streaming(const std::string& path, const Produce& produce) const;

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<uint64_t> ne;
    uint64_t n_bytes = 0;
    std::vector<uint8_t> bytes;  // empty for declared (streamed) tensors
    bool streamed = false;
  };
  // Validated size of a tensor of this name, type and shape.
  Result<uint64_t> check_tensor(const std::string& name, GgmlType type, const std::vector<uint64_t>& ne) const;
  // Header, metadata, tensor infos and the padding before the data section.
  std::vector<uint8_t> header_bytes() const;
  uint64_t alignment_;
  std::vector<std::pair<std::string, OwnedValue>> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace velo::gguf
