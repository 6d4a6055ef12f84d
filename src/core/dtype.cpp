#include "core/dtype.h"

#include <array>
#include <cctype>

#include "core/checked.h"

namespace velo {
namespace {

struct Entry {
  GgmlType type;
  TypeTraits traits;
};

// Block geometry of every type ggml defines (see ggml-common.h block structs).
constexpr std::array kTypes = {
    Entry{GgmlType::F32, {"F32", 1, 4}},         Entry{GgmlType::F16, {"F16", 1, 2}},
    Entry{GgmlType::Q4_0, {"Q4_0", 32, 18}},     Entry{GgmlType::Q4_1, {"Q4_1", 32, 20}},
    Entry{GgmlType::Q5_0, {"Q5_0", 32, 22}},     Entry{GgmlType::Q5_1, {"Q5_1", 32, 24}},
    Entry{GgmlType::Q8_0, {"Q8_0", 32, 34}},     Entry{GgmlType::Q8_1, {"Q8_1", 32, 36}},
    Entry{GgmlType::Q2_K, {"Q2_K", 256, 84}},    Entry{GgmlType::Q3_K, {"Q3_K", 256, 110}},
    Entry{GgmlType::Q4_K, {"Q4_K", 256, 144}},   Entry{GgmlType::Q5_K, {"Q5_K", 256, 176}},
    Entry{GgmlType::Q6_K, {"Q6_K", 256, 210}},   Entry{GgmlType::Q8_K, {"Q8_K", 256, 292}},
    Entry{GgmlType::IQ2_XXS, {"IQ2_XXS", 256, 66}}, Entry{GgmlType::IQ2_XS, {"IQ2_XS", 256, 74}},
    Entry{GgmlType::IQ3_XXS, {"IQ3_XXS", 256, 98}}, Entry{GgmlType::IQ1_S, {"IQ1_S", 256, 50}},
    Entry{GgmlType::IQ4_NL, {"IQ4_NL", 32, 18}}, Entry{GgmlType::IQ3_S, {"IQ3_S", 256, 110}},
    Entry{GgmlType::IQ2_S, {"IQ2_S", 256, 82}},  Entry{GgmlType::IQ4_XS, {"IQ4_XS", 256, 136}},
    Entry{GgmlType::I8, {"I8", 1, 1}},           Entry{GgmlType::I16, {"I16", 1, 2}},
    Entry{GgmlType::I32, {"I32", 1, 4}},         Entry{GgmlType::I64, {"I64", 1, 8}},
    Entry{GgmlType::F64, {"F64", 1, 8}},         Entry{GgmlType::IQ1_M, {"IQ1_M", 256, 56}},
    Entry{GgmlType::BF16, {"BF16", 1, 2}},       Entry{GgmlType::TQ1_0, {"TQ1_0", 256, 54}},
    Entry{GgmlType::TQ2_0, {"TQ2_0", 256, 66}},  Entry{GgmlType::MXFP4, {"MXFP4", 32, 17}},
};

}  // namespace

std::optional<TypeTraits> type_traits(uint32_t id) {
  for (const auto& e : kTypes)
    if (static_cast<uint32_t>(e.type) == id) return e.traits;
  return std::nullopt;
}

std::string type_name(uint32_t id) {
  if (auto t = type_traits(id)) return std::string(t->name);
  return "type " + std::to_string(id);
}

std::optional<GgmlType> type_from_name(std::string_view name) {
  for (const auto& e : kTypes) {
    if (e.traits.name.size() != name.size()) continue;
    bool eq = true;
    for (size_t i = 0; i < name.size() && eq; ++i)
      eq = std::toupper(static_cast<unsigned char>(name[i])) == e.traits.name[i];
    if (eq) return e.type;
  }
  return std::nullopt;
}

std::optional<uint64_t> row_bytes(GgmlType t, uint64_t n) {
  auto tr = type_traits(t);
  if (!tr || n % tr->block_elems != 0) return std::nullopt;
  return checked_mul(n / tr->block_elems, tr->block_bytes);
}

}  // namespace velo
