#include "server/fields.h"

#include <cmath>

namespace velo::server {

using json = nlohmann::ordered_json;

static bool absent(const json& body, const char* key) { return !body.contains(key) || body[key].is_null(); }

static std::string num_str(double v) {
  std::string s = std::to_string(v);
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

MaybeError read_number(const json& body, const char* key, double lo, double hi, float& out) {
  if (absent(body, key)) return std::nullopt;
  const json& v = body[key];
  if (!v.is_number()) return bad_request(std::string("'") + key + "' must be a number", key);
  double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    return bad_request(std::string("'") + key + "' must be between " + num_str(lo) + " and " + num_str(hi) +
                       ", got " + v.dump(), key);
  out = static_cast<float>(d);
  return std::nullopt;
}

MaybeError read_int(const json& body, const char* key, int64_t lo, int64_t hi, int32_t& out) {
  if (absent(body, key)) return std::nullopt;
  const json& v = body[key];
  bool integral = v.is_number_integer() || (v.is_number_float() && std::trunc(v.get<double>()) == v.get<double>() &&
                                            std::fabs(v.get<double>()) < 9e15);
  if (!integral) return bad_request(std::string("'") + key + "' must be an integer", key);
  double d = v.get<double>();
  if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
    return bad_request(std::string("'") + key + "' must be between " + std::to_string(lo) + " and " +
                       std::to_string(hi) + ", got " + v.dump(), key);
  out = static_cast<int32_t>(d);
  return std::nullopt;
}

MaybeError read_seed(const json& body, const char* key, uint64_t& out) {
  if (absent(body, key)) return std::nullopt;
  const json& v = body[key];
  if (v.is_number_unsigned()) out = v.get<uint64_t>();
  else if (v.is_number_integer()) out = static_cast<uint64_t>(v.get<int64_t>());  // negative seeds wrap, like OpenAI accepts them
  else return bad_request(std::string("'") + key + "' must be an integer", key);
  return std::nullopt;
}

MaybeError read_bool(const json& body, const char* key, bool& out) {
  if (absent(body, key)) return std::nullopt;
  if (!body[key].is_boolean()) return bad_request(std::string("'") + key + "' must be a boolean", key);
  out = body[key].get<bool>();
  return std::nullopt;
}

MaybeError read_string(const json& body, const char* key, std::string& out) {
  if (absent(body, key)) return std::nullopt;
  if (!body[key].is_string()) return bad_request(std::string("'") + key + "' must be a string", key);
  out = body[key].get<std::string>();
  return std::nullopt;
}

MaybeError read_stop(const json& body, const char* key, size_t max_count, std::vector<std::string>& out) {
  if (absent(body, key)) return std::nullopt;
  const json& v = body[key];
  std::vector<std::string> stops;
  if (v.is_string()) {
    stops.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const auto& s : v) {
      if (!s.is_string()) return bad_request(std::string("'") + key + "' must be a string or an array of strings", key);
      stops.push_back(s.get<std::string>());
    }
  } else {
    return bad_request(std::string("'") + key + "' must be a string or an array of strings", key);
  }
  if (stops.size() > max_count)
    return bad_request(std::string("'") + key + "' may hold at most " + std::to_string(max_count) + " strings", key);
  for (const auto& s : stops)
    if (s.empty()) return bad_request(std::string("'") + key + "' strings must not be empty", key);
  out = std::move(stops);
  return std::nullopt;
}

}  // namespace velo::server
