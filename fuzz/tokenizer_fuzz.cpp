// Fuzzes the tokenizers: random bytes are encoded with real vocabularies (loaded once),
// every id must be in range, decode/streaming must not crash, and for valid UTF-8 the
// round trip decode(encode(x)) == x must hold wherever the vocabulary is lossless.
// Vocabularies: the GGUF files listed in VELO_FUZZ_VOCABS (colon-separated), else the
// installed SmolLM2 (BPE) and Gemma 3 (SPM) from the model cache, plus a tiny built-in
// BPE vocabulary so the target always runs.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/writer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace {

struct Entry {
  std::vector<uint8_t> bytes;  // keeps a built-in vocabulary's file alive
  std::unique_ptr<velo::gguf::File> file;
  std::unique_ptr<velo::Tokenizer> tok;
  bool spm = false;
  bool clean_spaces = false;  // decode rewrites " ," etc.: not lossless
  bool byte_ok[256] = {};  // BPE: the byte's codepoint is a token (else it is dropped)
};

std::vector<std::unique_ptr<Entry>> load_all() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("VELO_FUZZ_VOCABS")) {
    std::string s = env;
    for (size_t a = 0; a <= s.size();) {
      size_t b = s.find(':', a);
      if (b == std::string::npos) b = s.size();
      if (b > a) paths.push_back(s.substr(a, b - a));
      a = b + 1;
    }
  } else {
    std::filesystem::path dir;
    if (const char* c = std::getenv("VELO_MODEL_CACHE")) dir = c;
    else if (const char* h = std::getenv("HOME")) dir = std::filesystem::path(h) / ".cache" / "velollm" / "models";
    for (const char* m : {"SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"})
      if (std::filesystem::exists(dir / m)) paths.push_back((dir / m).string());
  }
  std::vector<std::unique_ptr<Entry>> out;
  auto add = [&](std::unique_ptr<Entry> e) {
    auto v = velo::tok::Vocab::from_gguf(*e->file);
    auto t = velo::Tokenizer::from_gguf(*e->file);
    if (!v.ok() || !t.ok()) {
      std::fprintf(stderr, "tokenizer_fuzz: %s\n", (v.ok() ? t.message() : v.message()).c_str());
      std::abort();
    }
    e->tok = std::move(t).value();
    e->spm = v->type == velo::tok::VocabType::Spm;
    e->clean_spaces = v->clean_spaces;
    for (int b = 0; b < 256; ++b) e->byte_ok[b] = v->byte_sym[b] >= 0 && v->byte_sym[b] < v->n();
    out.push_back(std::move(e));
  };
  for (const auto& p : paths) {
    auto e = std::make_unique<Entry>();
    auto f = velo::gguf::File::open(p);
    if (!f.ok()) {
      std::fprintf(stderr, "tokenizer_fuzz: %s\n", f.message().c_str());
      std::abort();
    }
    e->file = std::move(f).value();
    add(std::move(e));
  }
  // Built-in: every byte, a few merges (some naming missing symbols), special tokens.
  using velo::gguf::OwnedValue;
  std::vector<std::string> toks = {"<|end|>", "<x>", "<|end|><x>"};
  std::vector<int32_t> types = {3, 4, 3};
  for (int b = 0; b < 256; ++b) {
    std::string s;
    velo::unicode::append_utf8(velo::unicode::byte_to_cp(static_cast<uint8_t>(b)), s);
    toks.push_back(s), types.push_back(1);
  }
  toks.push_back("ab"), types.push_back(1);
  velo::gguf::Writer w;
  w.set("tokenizer.ggml.model", OwnedValue::string("gpt2"));
  w.set("tokenizer.ggml.pre", OwnedValue::string("llama-bpe"));
  w.set("tokenizer.ggml.tokens", OwnedValue::string_array(toks));
  w.set("tokenizer.ggml.token_type", OwnedValue::i32_array(types));
  w.set("tokenizer.ggml.merges", OwnedValue::string_array({"a b", "ab c", "x y", "ab ab", "\xC4\xA0 a"}));
  w.set("tokenizer.ggml.bos_token_id", OwnedValue::u32(0));
  auto e = std::make_unique<Entry>();
  e->bytes = w.to_bytes();
  auto f = velo::gguf::File::parse(e->bytes);
  if (!f.ok()) std::abort();
  e->file = std::move(f).value();
  add(std::move(e));
  return out;
}

const std::vector<std::unique_ptr<Entry>>& vocabs() {
  static const auto v = load_all();
  return v;
}

}  // namespace

// Loading 262k-token vocabularies under ASan takes seconds: do it before the per-input timeout.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  vocabs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto& all = vocabs();
  const Entry& e = *all[data[0] % all.size()];
  const bool parse = data[0] & 0x40, bos = data[0] & 0x80;
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  const velo::Tokenizer& t = *e.tok;

  auto ids = t.encode(text, bos, parse ? velo::SpecialTokens::Parse : velo::SpecialTokens::AsText);
  for (auto id : ids)
    if (id < 0 || id >= t.n_vocab()) __builtin_trap();
  std::string dec = t.decode(ids, parse);
  velo::StreamingDetokenizer sd(t, parse);
  std::string streamed;
  for (auto id : ids) {
    std::string chunk = sd.push(id);
    if (!velo::unicode::valid_utf8(chunk)) __builtin_trap();
    streamed += chunk;
  }
  streamed += sd.flush();
  if (!velo::unicode::valid_utf8(streamed)) __builtin_trap();

  // Round trip: valid UTF-8, special strings as text, no BOS (whose prefix space decode
  // keeps). SPM cannot tell U+2581 from a space; byte-level BPE drops bytes whose codepoint
  // the vocabulary lacks; clean_spaces vocabularies (llama3) rewrite " ," and the like.
  if (!parse && !bos && velo::unicode::valid_utf8(text)) {
    bool lossless = e.clean_spaces ? false : e.spm ? text.find("\xE2\x96\x81") == std::string::npos : true;
    if (!e.spm)
      for (unsigned char c : text) lossless = lossless && e.byte_ok[c];
    if (lossless && dec != text) __builtin_trap();
  }
  return 0;
}
