// Tensor element types with ggml's numbering (the ids stored in GGUF files).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace velo {

enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

struct TypeTraits {
  std::string_view name;   // "Q4_K", as llama.cpp prints it
  uint32_t block_elems;    // elements per block (1 for plain types)
  uint32_t block_bytes;    // bytes per block
};

// Layout of a known type id; nullopt for ids ggml never assigned or retired.
std::optional<TypeTraits> type_traits(uint32_t id);
inline std::optional<TypeTraits> type_traits(GgmlType t) { return type_traits(static_cast<uint32_t>(t)); }

// Name for messages; "type 123" for unknown ids.
std::string type_name(uint32_t id);
inline std::string type_name(GgmlType t) { return type_name(static_cast<uint32_t>(t)); }

// Case-insensitive lookup by name ("q4_k", "Q8_0", "f16").
std::optional<GgmlType> type_from_name(std::string_view name);

// Bytes for `n` elements of a row; nullopt when n is not a whole number of blocks
// or the size overflows.
std::optional<uint64_t> row_bytes(GgmlType t, uint64_t n);

}  // namespace velo
