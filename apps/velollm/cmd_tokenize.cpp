// `velollm tokenize -m MODEL.gguf [--no-bos] [--no-special] [--pieces] [TEXT]`: the token
// ids (or pieces) of TEXT, or of stdin when TEXT is absent, as llama.cpp would produce them.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "command.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

struct Options {
  std::string model;
  std::string text;
  bool have_text = false;
  bool no_bos = false;
  bool no_special = false;
  bool pieces = false;
};

// A vocabulary entry made unambiguous on one space-separated line.
std::string escape_piece(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c <= 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

int run(const Options& o) {
  std::string path = o.model.empty() ? velo::cli::default_model_path() : o.model;
  if (path.empty()) return velo::cli::fail("no model given (-m MODEL.gguf) and the default model is not installed");
  auto file = velo::gguf::File::open(path);
  if (!file) return velo::cli::fail(file.message());
  auto tok = velo::Tokenizer::from_gguf(**file);
  if (!tok) return velo::cli::fail(tok.message());
  std::string text = o.text;
  if (!o.have_text) text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  auto ids = (*tok)->encode(text, !o.no_bos, o.no_special ? velo::SpecialTokens::AsText : velo::SpecialTokens::Parse);
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ' ';
    line += o.pieces ? escape_piece((*tok)->token_text(ids[i])) : std::to_string(ids[i]);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
  return 0;
}

const bool registered = velo::cli::register_command(
    {"tokenize", "Print the token ids of a text (as llama.cpp tokenizes it)", 40,
     [](CLI::App& sub) -> std::function<int()> {
       auto o = std::make_shared<Options>();
       sub.add_option("-m,--model", o->model, "GGUF model file (default: the installed SmolLM2)");
       sub.add_option("text", o->text, "text to tokenize (default: read stdin)")
           ->each([o](const std::string&) { o->have_text = true; });
       sub.add_flag("--no-bos", o->no_bos, "do not add the BOS (and EOS) token the model adds");
       sub.add_flag("--no-special", o->no_special, "treat special-token strings (<|im_end|>, <s>, ...) as plain text");
       sub.add_flag("--pieces", o->pieces, "print the vocabulary pieces instead of the ids");
       return [o] { return run(*o); };
     }});

}  // namespace
