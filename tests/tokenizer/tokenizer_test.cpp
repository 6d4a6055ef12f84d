// Tokenizer unit tests: hostile vocabularies (clear errors, never a crash), linear-time
// behaviour on huge inputs, streaming detokenization, and a few fixed ids of the real
// models (the full comparison with llama.cpp is tests/python/test_tokenizer_oracle.py).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/writer.h"
#include "test_models.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace velo {
namespace {

using gguf::OwnedValue;

// A tiny byte-level BPE vocabulary: every byte's codepoint, a few merges, two specials.
gguf::Writer bpe_writer() {
  std::vector<std::string> toks = {"<|end|>", "<x>"};
  std::vector<int32_t> types = {3, 4};
  for (int b = 0; b < 256; ++b) {
    std::string s;
    unicode::append_utf8(unicode::byte_to_cp(static_cast<uint8_t>(b)), s);
    toks.push_back(s);
    types.push_back(1);
  }
  for (const char* t : {"ab", "abc", "\xC4\xA0" "a"}) toks.push_back(t), types.push_back(1);
  gguf::Writer w;
  w.set("tokenizer.ggml.model", OwnedValue::string("gpt2"));
  w.set("tokenizer.ggml.pre", OwnedValue::string("gpt-2"));
  w.set("tokenizer.ggml.tokens", OwnedValue::string_array(toks));
  w.set("tokenizer.ggml.token_type", OwnedValue::i32_array(types));
  w.set("tokenizer.ggml.merges", OwnedValue::string_array({"a b", "ab c", "\xC4\xA0 a"}));
  w.set("tokenizer.ggml.eos_token_id", OwnedValue::u32(0));
  return w;
}

// A tiny SentencePiece vocabulary with byte fallback.
gguf::Writer spm_writer() {
  std::vector<std::string> toks = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  std::vector<float> scores = {0, 0, 0};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    toks.push_back(buf), types.push_back(6), scores.push_back(0);
  }
  const char* normal[] = {"\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "ab", "\xE2\x96\x81" "ab"};
  float sc[] = {-1, -2, -3, -4, -5, -0.5f};
  for (int i = 0; i < 6; ++i) toks.push_back(normal[i]), types.push_back(1), scores.push_back(sc[i]);
  gguf::Writer w;
  w.set("tokenizer.ggml.model", OwnedValue::string("llama"));
  w.set("tokenizer.ggml.tokens", OwnedValue::string_array(toks));
  w.set("tokenizer.ggml.token_type", OwnedValue::i32_array(types));
  w.set("tokenizer.ggml.scores", OwnedValue::f32_array(scores));
  return w;
}

// Parses the writer's bytes and builds a tokenizer (the bytes are kept alive in `keep`).
Result<std::unique_ptr<Tokenizer>> load(const gguf::Writer& w, std::vector<uint8_t>& keep,
                                        std::unique_ptr<gguf::File>& file) {
  keep = w.to_bytes();
  auto f = gguf::File::parse(keep);
  if (!f) return f.error();
  file = std::move(f).value();
  return Tokenizer::from_gguf(*file);
}

std::string load_error(const gguf::Writer& w) {
  std::vector<uint8_t> keep;
  std::unique_ptr<gguf::File> file;
  auto t = load(w, keep, file);
  return t.ok() ? "" : t.message();
}

TEST(TokenizerVocab, TinyVocabulariesWork) {
  std::vector<uint8_t> keep;
  std::unique_ptr<gguf::File> file;
  auto bpe = load(bpe_writer(), keep, file);
  ASSERT_TRUE(bpe.ok()) << bpe.message();
  // "abc" merges a+b then ab+c; " a" merges Ġ+a; "<|end|>" is parsed only with Parse.
  EXPECT_EQ((*bpe)->encode("abc a<|end|>", false), (std::vector<Token>{259, 260, 0}));
  EXPECT_EQ((*bpe)->encode("<|end|>", false, SpecialTokens::AsText).size(), 7u);
  EXPECT_EQ((*bpe)->encode("<x>", false, SpecialTokens::AsText), (std::vector<Token>{1}));  // user-defined
  EXPECT_EQ((*bpe)->decode((*bpe)->encode("abc a", false), false), "abc a");
  EXPECT_TRUE((*bpe)->is_eog(0));

  std::vector<uint8_t> keep2;
  std::unique_ptr<gguf::File> file2;
  auto spm = load(spm_writer(), keep2, file2);
  ASSERT_TRUE(spm.ok()) << spm.message();
  // BOS, "▁ab" (the prefix space), then 'z' has no token: byte fallback <0x7A> = 3 + 0x7A.
  EXPECT_EQ((*spm)->encode("abz", true), (std::vector<Token>{1, 264, 3 + 0x7A}));
  // decode drops the prefix space of the first token, but BOS is the first token then.
  EXPECT_EQ((*spm)->decode((*spm)->encode("abz ab", false), false), "abz ab");
  EXPECT_EQ((*spm)->decode((*spm)->encode("abz ab", true), false), " abz ab");
}

TEST(TokenizerVocab, HostileVocabulariesGiveClearErrors) {
  {
    gguf::Writer w;
    EXPECT_NE(load_error(w).find("tokenizer.ggml.model"), std::string::npos);
  }
  {
    auto w = bpe_writer();
    w.set("tokenizer.ggml.model", OwnedValue::string("rwkv-99"));
    EXPECT_NE(load_error(w).find("unsupported tokenizer model"), std::string::npos);
  }
  {
    auto w = bpe_writer();
    w.set("tokenizer.ggml.pre", OwnedValue::string("nope"));
    EXPECT_NE(load_error(w).find("pre-tokenizer"), std::string::npos);
  }
  {
    auto w = spm_writer();
    w.set("tokenizer.ggml.scores", OwnedValue::f32_array({1, 2, 3}));
    EXPECT_NE(load_error(w).find("scores"), std::string::npos);
  }
  {
    auto w = spm_writer();
    w.set("tokenizer.ggml.token_type", OwnedValue::i32_array({1}));
    EXPECT_NE(load_error(w).find("token_type"), std::string::npos);
  }
  {
    auto w = spm_writer();
    w.set("tokenizer.ggml.bos_token_id", OwnedValue::u32(1u << 30));
    EXPECT_NE(load_error(w).find("out of range"), std::string::npos);
  }
  {
    auto w = spm_writer();
    w.set("tokenizer.ggml.tokens", OwnedValue::i32_array({1, 2}));
    EXPECT_NE(load_error(w).find("tokenizer.ggml.tokens"), std::string::npos);
  }
  {
    auto w = spm_writer();
    w.set("tokenizer.ggml.tokens", OwnedValue::string_array({}));
    EXPECT_NE(load_error(w).find("empty"), std::string::npos);
  }
  {
    auto w = bpe_writer();
    w.set("tokenizer.ggml.tokens", OwnedValue::string_array({"a", std::string(100000, 'x')}));
    w.set("tokenizer.ggml.token_type", OwnedValue::i32_array({1, 1}));
    EXPECT_NE(load_error(w).find("bytes, more than"), std::string::npos);
  }
  {
    auto w = bpe_writer();
    w.set("tokenizer.ggml.add_bos_token", OwnedValue::string("yes"));
    EXPECT_NE(load_error(w).find("add_bos_token"), std::string::npos);
  }
}

TEST(TokenizerVocab, OddButLegalVocabulariesDoNotCrash) {
  // Merges naming tokens that do not exist, malformed merges, empty and duplicate tokens,
  // token types out of range, a vocabulary with no byte tokens.
  gguf::Writer w;
  w.set("tokenizer.ggml.model", OwnedValue::string("gpt2"));
  w.set("tokenizer.ggml.tokens", OwnedValue::string_array({"a", "", "a", "<s>", "b"}));
  w.set("tokenizer.ggml.token_type", OwnedValue::i32_array({1, 1, 99, 3, -5}));
  w.set("tokenizer.ggml.merges", OwnedValue::string_array({"a b", "q z", "nospace", " ", "", "a  b", "ab c"}));
  w.set("tokenizer.ggml.bos_token_id", OwnedValue::u32(3));
  w.set("tokenizer.ggml.add_bos_token", OwnedValue::boolean(true));
  std::vector<uint8_t> keep;
  std::unique_ptr<gguf::File> file;
  auto t = load(w, keep, file);
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ((*t)->token_text(1), "[EMPTY_1]");
  auto ids = (*t)->encode("ab abc \xFF\xFE zzz <s>", true);
  EXPECT_EQ(ids.front(), 3);
  EXPECT_EQ(ids.back(), 3);
  for (Token id : ids) EXPECT_TRUE(id >= 0 && id < (*t)->n_vocab());
  EXPECT_EQ((*t)->token_to_piece(-1, true), "");
  EXPECT_EQ((*t)->token_to_piece(1 << 30, true), "");
  EXPECT_EQ((*t)->decode(std::vector<Token>{-5, 0, 999999}, true), "a");

  auto s = spm_writer();
  s.set("tokenizer.ggml.tokens", OwnedValue::string_array({"<unk>", "a"}));
  s.set("tokenizer.ggml.token_type", OwnedValue::i32_array({2, 1}));
  s.set("tokenizer.ggml.scores", OwnedValue::f32_array({0, -1}));
  s.set("tokenizer.ggml.add_bos_token", OwnedValue::boolean(false));
  std::vector<uint8_t> keep2;
  std::unique_ptr<gguf::File> file2;
  auto t2 = load(s, keep2, file2);
  ASSERT_TRUE(t2.ok()) << t2.message();
  // No byte tokens: the bytes of "\u2581" (prefix space) and "x" become <unk>.
  EXPECT_EQ((*t2)->encode("ax", true), (std::vector<Token>{0, 0, 0, 1, 0}));
}

// ---- real models -----------------------------------------------------------------

struct Loaded {
  std::unique_ptr<gguf::File> file;
  std::unique_ptr<Tokenizer> tok;
};

Loaded load_model(const std::string& name) {
  Loaded l;
  auto f = gguf::File::open(test::model_path(name));
  EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.message());
  if (!f.ok()) return l;
  l.file = std::move(f).value();
  auto t = Tokenizer::from_gguf(*l.file);
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.message());
  if (t.ok()) l.tok = std::move(t).value();
  return l;
}

const char* kModels[] = {"velo-code-40m.Q8_0.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"};

TEST(TokenizerModels, KnownIds) {
  auto llama = load_model(kModels[0]);
  ASSERT_TRUE(llama.tok);
  EXPECT_EQ(llama.tok->encode("Hello world!", true), (std::vector<Token>{1, 15043, 3186, 29991}));
  auto smol = load_model(kModels[1]);
  ASSERT_TRUE(smol.tok);
  EXPECT_EQ(smol.tok->encode("Hello world! <|im_end|>", true), (std::vector<Token>{19556, 905, 17, 216, 2}));
  EXPECT_TRUE(smol.tok->is_eog(2));
  EXPECT_TRUE(smol.tok->is_eog(0));
  EXPECT_FALSE(smol.tok->is_eog(1));
  auto gemma = load_model(kModels[2]);
  ASSERT_TRUE(gemma.tok);
  EXPECT_EQ(gemma.tok->encode("Hello world!", true), (std::vector<Token>{2, 9259, 1902, 236888}));
  EXPECT_TRUE(gemma.tok->is_eog(106));  // <end_of_turn>
}

// Milliseconds to encode `text`, best of `reps`.
double encode_ms(const Tokenizer& t, const std::string& text, size_t* n_tokens, int reps = 2) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    *n_tokens = t.encode(text, true).size();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// 1 MB inputs with no spaces (one huge word / one huge SPM fragment), long runs of one
// character, and runs of special-token text must stay near n log n: 1 MB may take at most
// 12x the time of 256 KB (4x more bytes; quadratic would be 16x; n log n measures 4-9x, the
// rest being cache misses once the heap leaves the caches), and never 5 s, even under
// sanitizers.
TEST(TokenizerModels, HugeInputsAreNotQuadratic) {
  std::string word;
  for (size_t i = 0; word.size() < (1u << 20); ++i) word += "abcdefghijklmnopqrstuvwxyz0123456789"[(i * 7919) % 36];
  const std::string inputs[] = {word, std::string(1u << 20, 'a'), std::string(1u << 20, ' '),
                                std::string(1u << 20, '\n'), [] {
                                  std::string s;
                                  while (s.size() < (1u << 20)) s += "<|im_end|><s><end_of_turn>\xF0\x9F\xA6\x99";
                                  return s;
                                }()};
  for (const char* m : kModels) {
    auto l = load_model(m);
    ASSERT_TRUE(l.tok);
    for (const auto& in : inputs) {
      size_t n_small = 0, n_big = 0;
      double small = encode_ms(*l.tok, in.substr(0, in.size() / 4), &n_small);
      double big = encode_ms(*l.tok, in, &n_big);
      EXPECT_GT(n_big, 0u);
      EXPECT_LT(big, 5000.0) << m << " input starting " << in.substr(0, 16);
      EXPECT_LT(big, 12.0 * small + 100.0) << m << ": 256 KB " << small << " ms, 1 MB " << big << " ms";
      std::printf("  %-34s %-12.12s 1 MB: %7.1f ms, %8zu tokens\n", m, in.substr(0, 12).c_str(), big, n_big);
    }
  }
}

TEST(StreamingDetokenizer, HoldsPartialUtf8AndReplacesInvalidBytes) {
  auto l = load_model(kModels[0]);  // Llama 2: byte tokens <0xXX> are ids 3 + byte
  ASSERT_TRUE(l.tok);
  StreamingDetokenizer s(*l.tok, false);
  EXPECT_EQ(s.push(3 + 0xF0), "");
  EXPECT_EQ(s.push(3 + 0x9F), "");
  EXPECT_EQ(s.push(3 + 0xA6), "");
  EXPECT_EQ(s.push(3 + 0x99), "\xF0\x9F\xA6\x99");  // 🦙 completes on its last byte
  EXPECT_EQ(s.push(3 + 0xFF), "\xEF\xBF\xBD");      // never valid: replaced at once
  EXPECT_EQ(s.push(1), "");                         // BOS hidden
  EXPECT_EQ(s.push(3 + 0xE2), "");
  EXPECT_EQ(s.flush(), "\xEF\xBF\xBD");  // incomplete at the end
  EXPECT_EQ(s.flush(), "");

  // Streaming any tokenization of valid text gives the text's pieces, chunk by chunk valid.
  const std::string text = "naïve café 字 🦙 👨‍👩‍👧 done";
  for (const char* m : kModels) {
    auto lm = load_model(m);
    ASSERT_TRUE(lm.tok);
    auto ids = lm.tok->encode(text, false, SpecialTokens::AsText);
    StreamingDetokenizer sd(*lm.tok, true);
    std::string all;
    for (Token id : ids) {
      std::string chunk = sd.push(id);
      EXPECT_TRUE(unicode::valid_utf8(chunk));
      all += chunk;
    }
    all += sd.flush();
    std::string pieces;
    for (Token id : ids) pieces += lm.tok->token_to_piece(id, true);
    EXPECT_EQ(all, pieces) << m;
  }
}

}  // namespace
}  // namespace velo
