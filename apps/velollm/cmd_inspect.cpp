// `velollm inspect MODEL.gguf [--json] [--tensors] [--metadata]`: what a GGUF
// file holds (architecture, sizes, tokenizer, tensor types, memory for weights).
#include <cinttypes>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "command.h"
#include "gguf/file_type.h"
#include "gguf/gguf.h"
#include "gguf/utf8.h"

namespace {

using velo::gguf::File;
using velo::gguf::Value;
using velo::gguf::ValueType;
using json = nlohmann::ordered_json;

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
  return buf;
}

std::string human_count(uint64_t n) {
  char buf[32];
  if (n >= 1000000000ull) std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
  else if (n >= 1000000ull) std::snprintf(buf, sizeof buf, "%.1fM", n / 1e6);
  else if (n >= 1000ull) std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%" PRIu64, n);
  return buf;
}

// A value as JSON; arrays longer than `max_elems` are summarized by type and length.
json value_json(const Value& v, size_t max_elems) {
  switch (v.type) {
    case ValueType::UINT8: case ValueType::UINT16: case ValueType::UINT32: case ValueType::UINT64:
      return v.num.u;
    case ValueType::INT8: case ValueType::INT16: case ValueType::INT32: case ValueType::INT64:
      return v.num.i;
    case ValueType::FLOAT32: case ValueType::FLOAT64: return v.num.f;
    case ValueType::BOOL: return v.num.u != 0;
    case ValueType::STRING: return std::string(v.str);
    case ValueType::ARRAY:
      if (v.elems.size() > max_elems)
        return json{{"array", velo::gguf::value_type_name(v.elem_type)}, {"length", v.elems.size()}};
      json a = json::array();
      for (const auto& e : v.elems) a.push_back(value_json(e, max_elems));
      return a;
  }
  return nullptr;
}

// Everything `inspect` reports, gathered once for the text and JSON views.
struct Summary {
  json j;
  std::vector<std::string> warnings;
};

Summary summarize(const File& f) {
  Summary s;
  json& j = s.j;
  auto str_or_null = [&](const std::string& key) -> json {
    if (!f.find(key)) return nullptr;
    auto r = f.get_string(key);
    if (!r.ok()) {
      s.warnings.push_back(r.message());
      return nullptr;
    }
    return std::string(*r);
  };
  // Integer, or per-layer integer array (some architectures vary heads by layer).
  auto uint_or_null = [&](const std::string& key) -> json {
    const Value* v = f.find(key);
    if (!v) return nullptr;
    if (v->type == ValueType::ARRAY) {
      auto a = f.get_int_array(key);
      if (a.ok()) return *a;
      s.warnings.push_back(a.message());
      return nullptr;
    }
    auto r = f.get_uint(key);
    if (!r.ok()) {
      s.warnings.push_back(r.message());
      return nullptr;
    }
    return *r;
  };

  const json arch = str_or_null("general.architecture");
  const std::string a = arch.is_string() ? arch.get<std::string>() : "";
  uint64_t params = 0, weight_bytes = 0;
  std::map<std::string, std::array<uint64_t, 3>> by_type;  // count, bytes, elements
  for (const auto& t : f.tensors()) {
    params += t.n_elements;
    weight_bytes += t.n_bytes;
    auto& e = by_type[velo::type_name(t.type)];
    e[0] += 1;
    e[1] += t.n_bytes;
    e[2] += t.n_elements;
  }
  json types = json::object();
  for (const auto& [name, e] : by_type) types[name] = {{"count", e[0]}, {"bytes", e[1]}, {"elements", e[2]}};

  json vocab = nullptr;
  if (const Value* tok = f.find("tokenizer.ggml.tokens"); tok && tok->type == ValueType::ARRAY)
    vocab = tok->elems.size();
  else if (!a.empty())
    vocab = uint_or_null(a + ".vocab_size");

  j["path"] = f.path();
  j["file_size"] = f.file_size();
  j["file_size_human"] = human_bytes(f.file_size());
  j["gguf_version"] = f.version();
  j["alignment"] = f.alignment();
  j["architecture"] = arch;
  j["name"] = str_or_null("general.name");
  j["file_type"] = uint_or_null("general.file_type");
  if (j["file_type"].is_number_unsigned()) {
    const auto name = velo::gguf::file_type_name(j["file_type"].get<uint32_t>());
    j["file_type_name"] = name.empty() ? json(nullptr) : json(std::string(name));
  } else {
    j["file_type_name"] = nullptr;
  }
  j["parameter_count"] = params;
  j["parameter_count_human"] = human_count(params);
  j["tensor_count"] = f.tensors().size();
  j["metadata_count"] = f.metadata().size();
  j["tensor_types"] = types;
  j["weights_bytes"] = weight_bytes;
  j["weights_human"] = human_bytes(weight_bytes);
  const std::string p = a.empty() ? "?" : a;  // "?." keys never exist: null fields for arch-less files
  j["context_length"] = uint_or_null(p + ".context_length");
  j["embedding_length"] = uint_or_null(p + ".embedding_length");
  j["block_count"] = uint_or_null(p + ".block_count");
  j["feed_forward_length"] = uint_or_null(p + ".feed_forward_length");
  j["head_count"] = uint_or_null(p + ".attention.head_count");
  j["head_count_kv"] = uint_or_null(p + ".attention.head_count_kv");
  j["vocab_size"] = vocab;
  j["tokenizer_model"] = str_or_null("tokenizer.ggml.model");
  j["has_chat_template"] = f.find("tokenizer.chat_template") != nullptr;
  j["warnings"] = s.warnings;
  return s;
}

std::string show(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

void print_text(const File& f, const json& j, bool tensors, bool metadata) {
  using velo::gguf::printable;
  std::printf("file:             %s\n", printable(f.path(), 4096).c_str());
  std::printf("size:             %s (%" PRIu64 " bytes), GGUF v%u, alignment %" PRIu64 "\n",
              j["file_size_human"].get<std::string>().c_str(), f.file_size(), f.version(), f.alignment());
  std::printf("architecture:     %s\n", printable(show(j["architecture"])).c_str());
  std::printf("name:             %s\n", printable(show(j["name"])).c_str());
  std::printf("file type:        %s %s\n", show(j["file_type"]).c_str(), show(j["file_type_name"]).c_str());
  std::printf("parameters:       %s (%s)\n", j["parameter_count_human"].get<std::string>().c_str(),
              show(j["parameter_count"]).c_str());
  std::printf("weights memory:   %s (%s bytes)\n", j["weights_human"].get<std::string>().c_str(),
              show(j["weights_bytes"]).c_str());
  std::printf("tensors:          %s\n", show(j["tensor_count"]).c_str());
  for (const auto& [name, e] : j["tensor_types"].items())
    std::printf("  %-8s        %6s tensors, %s\n", name.c_str(), show(e["count"]).c_str(),
                human_bytes(e["bytes"].get<uint64_t>()).c_str());
  std::printf("context length:   %s\n", show(j["context_length"]).c_str());
  std::printf("embedding length: %s\n", show(j["embedding_length"]).c_str());
  std::printf("blocks:           %s\n", show(j["block_count"]).c_str());
  std::printf("feed forward:     %s\n", show(j["feed_forward_length"]).c_str());
  std::printf("heads:            %s (kv heads %s)\n", show(j["head_count"]).c_str(), show(j["head_count_kv"]).c_str());
  std::printf("vocabulary:       %s (tokenizer %s)\n", show(j["vocab_size"]).c_str(),
              printable(show(j["tokenizer_model"])).c_str());
  std::printf("chat template:    %s\n", j["has_chat_template"].get<bool>() ? "yes" : "no");
  for (const auto& w : j["warnings"]) std::printf("warning:          %s\n", w.get<std::string>().c_str());
  if (metadata) {
    std::printf("\nmetadata (%zu keys):\n", f.metadata().size());
    for (const auto& kv : f.metadata())
      std::printf("  %-40s %s\n", printable(kv.key).c_str(), printable(show(value_json(kv.value, 8)), 200).c_str());
  }
  if (tensors) {
    std::printf("\ntensors (%zu):\n", f.tensors().size());
    for (const auto& t : f.tensors()) {
      std::string shape;
      for (size_t d = 0; d < t.ne.size(); ++d) shape += (d ? " x " : "") + std::to_string(t.ne[d]);
      std::printf("  %-32s %-6s %-20s %12" PRIu64 " bytes\n", printable(t.name).c_str(),
                  velo::type_name(t.type).c_str(), shape.c_str(), t.n_bytes);
    }
  }
}

struct Options {
  std::string model;
  bool json = false;
  bool tensors = false;
  bool metadata = false;
};

int run_inspect(const Options& o) {
  auto f = File::open(o.model);
  if (!f.ok()) return velo::cli::fail(f.message());
  const Summary s = summarize(**f);
  if (o.json) {
    json j = s.j;
    if (o.metadata) {
      json m = json::object();
      for (const auto& kv : (*f)->metadata()) m[std::string(kv.key)] = value_json(kv.value, 64);
      j["metadata"] = m;
    }
    if (o.tensors) {
      json ts = json::array();
      for (const auto& t : (*f)->tensors())
        ts.push_back({{"name", std::string(t.name)}, {"type", velo::type_name(t.type)}, {"shape", t.ne},
                      {"offset", t.offset}, {"bytes", t.n_bytes}});
      j["tensors"] = ts;
    }
    // Strings from the file may be invalid UTF-8: replace rather than throw.
    std::printf("%s\n", j.dump(2, ' ', false, json::error_handler_t::replace).c_str());
  } else {
    print_text(**f, s.j, o.tensors, o.metadata);
  }
  return 0;
}

const bool registered = velo::cli::register_command(
    {"inspect", "Show what a GGUF model holds: architecture, sizes, tokenizer, tensor types", 20,
     [](CLI::App& sub) -> std::function<int()> {
       auto o = std::make_shared<Options>();
       sub.add_option("model", o->model, "GGUF model file")->required();
       sub.add_flag("--json", o->json, "print JSON instead of text");
       sub.add_flag("--tensors", o->tensors, "also list every tensor (name, type, shape, bytes)");
       sub.add_flag("--metadata", o->metadata, "also list every metadata key (long arrays summarized)");
       return [o] { return run_inspect(*o); };
     }});

}  // namespace
