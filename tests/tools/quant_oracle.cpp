// Test tool for tests/python/test_quant_oracle.py: runs velollm's reference
// (de)quantization on raw files so Python can compare against gguf-py / ggml.
//   tool_quant_oracle dequant TYPE IN.bin OUT.f32   raw blocks -> float32
//   tool_quant_oracle quant   TYPE IN.f32 OUT.bin   float32 -> raw blocks
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "quant/quant.h"

namespace {

int fail(const std::string& msg) {
  std::fprintf(stderr, "tool_quant_oracle: %s\n", msg.c_str());
  return 1;
}

bool read_file(const std::string& path, std::vector<char>* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return !f.bad();
}

bool write_file(const std::string& path, const void* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  return static_cast<bool>(f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) return fail("usage: tool_quant_oracle dequant|quant TYPE IN OUT");
  const std::string mode = argv[1];
  const auto type = velo::type_from_name(argv[2]);
  if (!type) return fail(std::string("unknown type '") + argv[2] + "'");
  const auto traits = *velo::type_traits(*type);
  std::vector<char> in;
  if (!read_file(argv[3], &in)) return fail(std::string("cannot read ") + argv[3]);

  if (mode == "dequant") {
    if (in.size() % traits.block_bytes != 0)
      return fail(std::to_string(in.size()) + " bytes is not a whole number of " + std::string(traits.name) + " blocks");
    const int64_t n = static_cast<int64_t>(in.size() / traits.block_bytes * traits.block_elems);
    std::vector<float> out(static_cast<size_t>(n));
    if (auto s = velo::quant::dequantize_row(*type, in.data(), out.data(), n); !s) return fail(s.message());
    if (!write_file(argv[4], out.data(), out.size() * sizeof(float))) return fail(std::string("cannot write ") + argv[4]);
    return 0;
  }
  if (mode == "quant") {
    if (in.size() % sizeof(float) != 0) return fail("input size is not a multiple of 4 bytes");
    const int64_t n = static_cast<int64_t>(in.size() / sizeof(float));
    const auto bytes = velo::row_bytes(*type, static_cast<uint64_t>(n));
    if (!bytes) return fail(std::to_string(n) + " values is not a whole number of " + std::string(traits.name) + " blocks");
    std::vector<float> src(static_cast<size_t>(n));
    std::copy(in.begin(), in.end(), reinterpret_cast<char*>(src.data()));
    std::vector<unsigned char> out(*bytes);
    if (auto s = velo::quant::quantize_row(*type, src.data(), out.data(), n); !s) return fail(s.message());
    if (!write_file(argv[4], out.data(), out.size())) return fail(std::string("cannot write ") + argv[4]);
    return 0;
  }
  return fail("unknown mode '" + mode + "' (expected dequant or quant)");
}
