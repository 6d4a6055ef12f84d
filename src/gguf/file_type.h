// general.file_type: llama.cpp's "mostly <type>" code for a whole model.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>

#include "core/dtype.h"

namespace velo::gguf {

// "MOSTLY_Q8_0" etc.; empty for codes llama.cpp never assigned or retired.
std::string_view file_type_name(uint32_t code);

// Code for a model whose weight matrices are all `t` (K-quants map to their
// uniform "_S" variant, e.g. Q4_K -> MOSTLY_Q4_K_S); nullopt when none fits.
std::optional<uint32_t> file_type_for(GgmlType t);

}  // namespace velo::gguf
