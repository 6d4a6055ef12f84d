#include "gguf/file_type.h"

#include <array>

namespace velo::gguf {
namespace {

struct Entry {
  uint32_t code;
  std::string_view name;
  std::optional<GgmlType> uniform;  // the weight type of a model made of one type
};

// Codes from llama.cpp's llama_ftype (gguf-py LlamaFileType).
constexpr std::array<Entry, 33> kCodes = {{
    {0, "ALL_F32", GgmlType::F32},        {1, "MOSTLY_F16", GgmlType::F16},
    {2, "MOSTLY_Q4_0", GgmlType::Q4_0},   {3, "MOSTLY_Q4_1", GgmlType::Q4_1},
    {7, "MOSTLY_Q8_0", GgmlType::Q8_0},   {8, "MOSTLY_Q5_0", GgmlType::Q5_0},
    {9, "MOSTLY_Q5_1", GgmlType::Q5_1},   {10, "MOSTLY_Q2_K", GgmlType::Q2_K},
    {11, "MOSTLY_Q3_K_S", GgmlType::Q3_K}, {12, "MOSTLY_Q3_K_M", std::nullopt},
    {13, "MOSTLY_Q3_K_L", std::nullopt},  {14, "MOSTLY_Q4_K_S", GgmlType::Q4_K},
    {15, "MOSTLY_Q4_K_M", std::nullopt},  {16, "MOSTLY_Q5_K_S", GgmlType::Q5_K},
    {17, "MOSTLY_Q5_K_M", std::nullopt},  {18, "MOSTLY_Q6_K", GgmlType::Q6_K},
    {19, "MOSTLY_IQ2_XXS", GgmlType::IQ2_XXS}, {20, "MOSTLY_IQ2_XS", GgmlType::IQ2_XS},
    {21, "MOSTLY_Q2_K_S", std::nullopt},  {22, "MOSTLY_IQ3_XS", std::nullopt},
    {23, "MOSTLY_IQ3_XXS", GgmlType::IQ3_XXS}, {24, "MOSTLY_IQ1_S", GgmlType::IQ1_S},
    {25, "MOSTLY_IQ4_NL", GgmlType::IQ4_NL}, {26, "MOSTLY_IQ3_S", GgmlType::IQ3_S},
    {27, "MOSTLY_IQ3_M", std::nullopt},   {28, "MOSTLY_IQ2_S", GgmlType::IQ2_S},
    {29, "MOSTLY_IQ2_M", std::nullopt},   {30, "MOSTLY_IQ4_XS", GgmlType::IQ4_XS},
    {31, "MOSTLY_IQ1_M", GgmlType::IQ1_M}, {32, "MOSTLY_BF16", GgmlType::BF16},
    {36, "MOSTLY_TQ1_0", GgmlType::TQ1_0}, {37, "MOSTLY_TQ2_0", GgmlType::TQ2_0},
    {38, "MOSTLY_MXFP4_MOE", GgmlType::MXFP4},
}};

}  // namespace

std::string_view file_type_name(uint32_t code) {
  for (const auto& e : kCodes)
    if (e.code == code) return e.name;
  return {};
}

std::optional<uint32_t> file_type_for(GgmlType t) {
  for (const auto& e : kCodes)
    if (e.uniform == t) return e.code;
  return std::nullopt;
}

}  // namespace velo::gguf
