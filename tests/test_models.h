// Paths of the real test models (fetched by scripts/fetch_models.py, and
// ../shared/models when present). Tests fail, never skip, when one is missing.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace velo::test {

inline std::filesystem::path model_cache() {
  if (const char* c = std::getenv("VELO_MODEL_CACHE")) return c;
  const char* h = std::getenv("HOME");
  return std::filesystem::path(h ? h : ".") / ".cache" / "velollm" / "models";
}

inline std::filesystem::path shared_models() {
  return std::filesystem::path(VELO_SOURCE_DIR) / ".." / "shared" / "models";
}

// "SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf" (cache) or
// "velo-code-40m.Q8_0.gguf", "velo-code-draft-12m.Q8_0.gguf" (shared).
inline std::string model_path(const std::string& name) {
  for (const auto& dir : {model_cache(), shared_models()}) {
    auto p = dir / name;
    if (std::filesystem::exists(p)) return p.string();
  }
  ADD_FAILURE() << "test model " << name << " not found; run scripts/fetch_models.py";
  return "";
}

}  // namespace velo::test
