// Tokenizer throughput: encodes a text file (split into documents at line boundaries)
// single-threaded and prints MB/s. scripts/bench_tokenizer.py runs it next to HF
// `tokenizers` / `sentencepiece` on the same text.
//   bench_tokenize MODEL.gguf TEXT_FILE [DOC_BYTES=65536] [REPEATS=3]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.gguf TEXT_FILE [DOC_BYTES] [REPEATS]\n", argv[0]);
    return 2;
  }
  const size_t doc_bytes = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 65536;
  const int repeats = argc > 4 ? std::atoi(argv[4]) : 3;
  auto file = velo::gguf::File::open(argv[1]);
  if (!file) return std::fprintf(stderr, "error: %s\n", file.message().c_str()), 1;
  auto t0 = std::chrono::steady_clock::now();
  auto tok = velo::Tokenizer::from_gguf(**file);
  if (!tok) return std::fprintf(stderr, "error: %s\n", tok.message().c_str()), 1;
  double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) return std::fprintf(stderr, "error: cannot read %s\n", argv[2]), 1;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<std::string_view> docs;  // cut after the first newline past doc_bytes
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', std::min(text.size(), pos + doc_bytes));
    end = end == std::string::npos ? text.size() : end + 1;
    docs.emplace_back(text.data() + pos, end - pos);
    pos = end;
  }
  double best = 1e30;
  size_t n_tokens = 0;
  for (int r = 0; r < repeats; ++r) {
    n_tokens = 0;
    auto s = std::chrono::steady_clock::now();
    for (auto d : docs) n_tokens += (*tok)->encode(d, false, velo::SpecialTokens::Parse).size();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count());
  }
  std::printf("{\"model\": \"%s\", \"bytes\": %zu, \"docs\": %zu, \"tokens\": %zu, \"seconds\": %.4f, "
              "\"mb_per_s\": %.2f, \"load_ms\": %.1f}\n",
              std::string((*tok)->model_name()).c_str(), text.size(), docs.size(), n_tokens, best,
              text.size() / 1e6 / best, load_ms);
  return 0;
}
