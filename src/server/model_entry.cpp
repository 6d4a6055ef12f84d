// describe_model: what the model-listing endpoints say about a GGUF file.
#include <sys/stat.h>

#include <cstdio>
#include <functional>
#include <map>

#include "gguf/gguf.h"
#include "server/server.h"

namespace velo::server {

static std::string human_params(uint64_t n) {
  char buf[32];
  if (n >= 1000000000ull) std::snprintf(buf, sizeof buf, "%.1fB", n / 1e9);
  else std::snprintf(buf, sizeof buf, "%.0fM", n / 1e6);
  return buf;
}

Result<ModelEntry> describe_model(const std::string& path, const std::string& alias) {
  VELO_ASSIGN_OR_RETURN(auto file, gguf::File::open(path));
  ModelEntry m;
  m.path = path;
  auto slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.size() > 5 && base.compare(base.size() - 5, 5, ".gguf") == 0) base.resize(base.size() - 5);
  m.id = alias.empty() ? base : alias;
  struct stat sb{};
  if (::stat(path.c_str(), &sb) == 0) {
    m.size_bytes = static_cast<uint64_t>(sb.st_size);
    m.created = sb.st_mtime;
  }
  auto arch = file->get_string("general.architecture");
  m.architecture = arch.ok() ? std::string(*arch) : "unknown";
  m.family = m.architecture;
  std::map<std::string, uint64_t> bytes_by_type;
  for (const auto& t : file->tensors()) {
    m.parameter_count += t.n_elements;
    bytes_by_type[type_name(t.type)] += t.n_bytes;
  }
  m.parameter_size = human_params(m.parameter_count);
  // The type holding most of the weight bytes names the quantization (as Ollama shows "Q4_K_M"-like levels).
  uint64_t best = 0;
  for (const auto& [name, b] : bytes_by_type)
    if (b > best) best = b, m.quantization = name;
  auto ctx = file->get_uint(m.architecture + ".context_length");
  m.context_length = ctx.ok() ? static_cast<int32_t>(*ctx) : 0;
  auto tmpl = file->get_string("tokenizer.chat_template");
  if (tmpl.ok()) m.chat_template = std::string(*tmpl);
  char digest[40];
  std::snprintf(digest, sizeof digest, "%016zx%016llx", std::hash<std::string>{}(path),
                static_cast<unsigned long long>(m.size_bytes ^ static_cast<uint64_t>(m.created)));
  m.digest = digest;
  // Scalar metadata only: vocabularies would make /api/show megabytes long.
  for (const auto& kv : file->metadata()) {
    const auto& v = kv.value;
    nlohmann::json j;
    switch (v.type) {
      case gguf::ValueType::STRING: if (kv.key == "tokenizer.chat_template") continue; j = std::string(v.str); break;
      case gguf::ValueType::BOOL: j = v.num.u != 0; break;
      case gguf::ValueType::FLOAT32: case gguf::ValueType::FLOAT64: j = v.num.f; break;
      case gguf::ValueType::INT8: case gguf::ValueType::INT16: case gguf::ValueType::INT32: case gguf::ValueType::INT64:
        j = v.num.i; break;
      case gguf::ValueType::ARRAY: continue;
      default: j = v.num.u; break;
    }
    m.model_info[std::string(kv.key)] = j;
  }
  m.model_info["general.parameter_count"] = m.parameter_count;
  return m;
}

}  // namespace velo::server
