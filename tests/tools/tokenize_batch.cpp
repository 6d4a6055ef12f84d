// Batch tokenizer for the Python oracle tests (spawning velollm per string is too slow).
// Usage: tool_tokenize_batch MODEL.gguf  < requests > replies, one line each:
//   E <add_bos 0|1> <special 0|1> <hex bytes>   ->  token ids, space separated
//   D <render_special 0|1> <id>...              ->  hex of decode(ids)
//   S <render_special 0|1> <id>...              ->  hex of the streamed text (push each, flush)
//   G                                           ->  ids of every end-of-generation token
//   I                                           ->  n_vocab bos eos add_bos
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

std::string from_hex(const std::string& h) {
  std::string out;
  out.reserve(h.size() / 2);
  auto nib = [](char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; };
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(nib(h[i]) << 4 | nib(h[i + 1])));
  return out;
}

std::string to_hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) out += d[c >> 4], out += d[c & 15];
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL.gguf < requests\n", argv[0]);
    return 2;
  }
  auto file = velo::gguf::File::open(argv[1]);
  if (!file) {
    std::fprintf(stderr, "error: %s\n", file.message().c_str());
    return 1;
  }
  auto tok = velo::Tokenizer::from_gguf(**file);
  if (!tok) {
    std::fprintf(stderr, "error: %s\n", tok.message().c_str());
    return 1;
  }
  const velo::Tokenizer& t = **tok;
  std::ios::sync_with_stdio(false);
  std::string line;
  std::string out;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    char op = 0;
    in >> op;
    out.clear();
    if (op == 'E') {
      int bos = 0, special = 0;
      std::string hex;
      in >> bos >> special >> hex;
      auto ids = t.encode(from_hex(hex), bos != 0, special ? velo::SpecialTokens::Parse : velo::SpecialTokens::AsText);
      for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
    } else if (op == 'D' || op == 'S') {
      int render = 0;
      in >> render;
      std::vector<velo::Token> ids;
      for (long long id; in >> id;) ids.push_back(static_cast<velo::Token>(id));
      if (op == 'D') {
        out = to_hex(t.decode(ids, render != 0));
      } else {
        velo::StreamingDetokenizer s(t, render != 0);
        std::string text;
        for (auto id : ids) text += s.push(id);
        out = to_hex(text + s.flush());
      }
    } else if (op == 'G') {
      for (velo::Token i = 0; i < t.n_vocab(); ++i)
        if (t.is_eog(i)) out += (out.empty() ? "" : " ") + std::to_string(i);
    } else if (op == 'I') {
      out = std::to_string(t.n_vocab()) + " " + std::to_string(t.bos()) + " " + std::to_string(t.eos()) + " " +
            std::to_string(t.adds_bos() ? 1 : 0);
    } else {
      std::fprintf(stderr, "error: unknown request '%c'\n", op);
      return 2;
    }
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  return 0;
}
