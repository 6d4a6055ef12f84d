// Typed, range-checked reads of optional JSON request fields. Each returns an
// ApiError naming the field on a wrong type or an out-of-range value; absent
// (or null) fields leave the target untouched.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "server/api_error.h"

namespace velo::server {

using MaybeError = std::optional<ApiError>;

MaybeError read_number(const nlohmann::ordered_json& body, const char* key, double lo, double hi, float& out);
MaybeError read_int(const nlohmann::ordered_json& body, const char* key, int64_t lo, int64_t hi, int32_t& out);
MaybeError read_seed(const nlohmann::ordered_json& body, const char* key, uint64_t& out);
MaybeError read_bool(const nlohmann::ordered_json& body, const char* key, bool& out);
MaybeError read_string(const nlohmann::ordered_json& body, const char* key, std::string& out);
// A string or an array of strings (at most `max_count`, each non-empty).
MaybeError read_stop(const nlohmann::ordered_json& body, const char* key, size_t max_count, std::vector<std::string>& out);

}  // namespace velo::server
