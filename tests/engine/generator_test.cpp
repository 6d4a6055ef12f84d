// Generator on a scripted fake model (exact expectations for chunked prefill,
// block tables, K/V reuse, stops, limits) and on a real GGUF model.
#include "engine/generator.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "model/config.h"
#include "test_models.h"

namespace velo {
namespace {

// Vocabulary: 0 <s> (control), 1 </s> (control, end of generation), 2..27 'a'..'z',
// 28 ' ', 29 and 30 the two bytes of "é".
constexpr int32_t kBos = 0, kEos = 1, kA = 2, kZ = 27, kSpace = 28, kE1 = 29, kE2 = 30, kVocab = 31;

class FakeTokenizer final : public Tokenizer {
 public:
  std::vector<Token> encode(std::string_view text, bool add_bos, SpecialTokens) const override {
    std::vector<Token> out;
    if (add_bos) out.push_back(kBos);
    for (unsigned char c : text) {
      if (c >= 'a' && c <= 'z') out.push_back(kA + (c - 'a'));
      else if (c == 0xC3) out.push_back(kE1);
      else if (c == 0xA9) out.push_back(kE2);
      else out.push_back(kSpace);
    }
    return out;
  }
  std::string token_to_piece(Token t, bool render_special) const override {
    if (t == kBos) return render_special ? "<s>" : "";
    if (t == kEos) return render_special ? "</s>" : "";
    if (t >= kA && t <= kZ) return std::string(1, static_cast<char>('a' + (t - kA)));
    if (t == kE1) return "\xC3";
    if (t == kE2) return "\xA9";
    return " ";
  }
  std::string decode(std::span<const Token> tokens, bool render_special) const override {
    std::string s;
    for (Token t : tokens) s += token_to_piece(t, render_special);
    return s;
  }
  int32_t n_vocab() const override { return kVocab; }
  std::string_view model_name() const override { return "gpt2"; }
  std::string_view token_text(Token) const override { return ""; }
  TokenAttr token_attr(Token t) const override { return t <= kEos ? TokenAttr::Control : TokenAttr::Normal; }
  Token bos() const override { return kBos; }
  Token eos() const override { return kEos; }
  bool adds_bos() const override { return true; }
  bool is_eog(Token t) const override { return t == kEos; }
  Token eot() const override { return -1; }
  Token unk() const override { return -1; }
  Token pad() const override { return -1; }
  bool adds_eos() const override { return false; }
};

// The scripted model's next token from the whole history (what the K/V holds):
// after a letter comes the next letter, or the one after when the position-weighted
// checksum of the history is odd; past 'z' comes </s>; after anything else 'a',
// except that "é" (29 30) follows 'q'. Depending on the whole history makes a
// wrong K/V reuse or block table change the output.
int32_t script_next(const std::vector<int32_t>& h) {
  int64_t sum = 0;
  for (size_t i = 0; i < h.size(); ++i) sum += h[i] * static_cast<int64_t>(i + 1);
  int32_t last = h.back();
  if (last == kA + ('q' - 'a')) return kE1;
  if (last == kE1) return kE2;
  if (last >= kA && last <= kZ) {
    int32_t n = last + 1 + static_cast<int32_t>(sum & 1);
    return n > kZ ? kEos : n;
  }
  return kA;
}

class FakeRunner final : public ModelRunner {
 public:
  FakeRunner(int32_t ctx, int32_t block_size, int32_t n_blocks, int32_t max_batch)
      : ctx_(ctx), bs_(block_size), n_blocks_(n_blocks), max_batch_(max_batch),
        kv_(static_cast<size_t>(n_blocks * block_size), -1), logits_(kVocab) {}

  const ModelConfig& config() const override { return cfg_; }
  const Tokenizer& tokenizer() const override { return tok_; }
  const ChatTemplate& chat_template() const override { return tmpl_; }
  int32_t n_vocab() const override { return kVocab; }
  int32_t ctx_size() const override { return ctx_; }
  int32_t block_size() const override { return bs_; }
  int32_t num_kv_blocks() const override { return n_blocks_; }
  int32_t max_batch_tokens() const override { return max_batch_; }
  void copy_block(int32_t, int32_t) override { ADD_FAILURE() << "copy_block not expected"; }

  Result<std::span<const float>> execute(const StepPlan& plan) override {
    EXPECT_EQ(plan.seqs.size(), 1u);
    const auto& s = plan.seqs[0];
    const int32_t n = static_cast<int32_t>(s.tokens.size());
    EXPECT_GE(n, 1);
    EXPECT_LE(n, max_batch_);
    chunks.push_back(n);
    computed += n;
    const int32_t end = s.start_pos + n;
    EXPECT_EQ(static_cast<int32_t>(s.block_table.size()), (end + bs_ - 1) / bs_) << "table must cover [0, end)";
    for (size_t b = 0; b < s.block_table.size(); ++b) EXPECT_EQ(s.block_table[b], static_cast<int32_t>(b));
    if (end > ctx_) return make_error("position past the context");
    auto slot = [&](int32_t pos) { return s.block_table[pos / bs_] * bs_ + pos % bs_; };
    for (int32_t i = 0; i < n; ++i) kv_[slot(s.start_pos + i)] = s.tokens[i];
    if (!s.need_logits) return std::span<const float>();
    std::vector<int32_t> history;
    for (int32_t p = 0; p < end; ++p) {
      int32_t t = kv_[slot(p)];
      EXPECT_NE(t, -1) << "position " << p << " was never computed";
      history.push_back(t);
    }
    std::fill(logits_.begin(), logits_.end(), 0.0f);
    logits_[kSpace] = 5.0f;  // runner-up (what ignore_eos picks instead of </s>)
    logits_[script_next(history)] = 10.0f;
    return std::span<const float>(logits_);
  }

  std::vector<int32_t> chunks;
  int64_t computed = 0;

 private:
  int32_t ctx_, bs_, n_blocks_, max_batch_;
  std::vector<int32_t> kv_;
  std::vector<float> logits_;
  ModelConfig cfg_;
  FakeTokenizer tok_;
  ChatTemplate tmpl_;
};

// Greedy reference on the script: generated tokens, stopping at </s> or `max` tokens.
std::vector<int32_t> reference(std::vector<int32_t> h, int max, bool ignore_eos = false) {
  std::vector<int32_t> out;
  while (static_cast<int>(out.size()) < max) {
    int32_t t = script_next(h);
    if (t == kEos) {
      if (!ignore_eos) break;
      t = kSpace;
    }
    out.push_back(t);
    h.push_back(t);
  }
  return out;
}

SamplingParams greedy(int32_t max_tokens = -1) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = max_tokens;
  return p;
}

std::string text_of(const std::vector<int32_t>& toks) { return FakeTokenizer().decode(toks, false); }

TEST(Generator, GreedyMatchesScriptAndStopsAtEndToken) {
  FakeRunner r(256, 16, 16, 512);
  Generator g(r);
  std::string streamed;
  GenerateOptions o;
  o.on_text = [&](std::string_view s) {
    streamed += s;
    return true;
  };
  auto res = g.generate("hello world", greedy(), o);
  ASSERT_TRUE(res.ok()) << res.message();
  auto prompt = FakeTokenizer().encode("hello world", true, SpecialTokens::Parse);
  auto want = reference(prompt, 1000);
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(res->tokens, want);
  EXPECT_EQ(res->finish, FinishReason::Stop);
  EXPECT_EQ(res->text, text_of(want));
  EXPECT_EQ(streamed, res->text);
  EXPECT_EQ(res->timings.prompt_tokens, 12);
  EXPECT_EQ(res->timings.generated_tokens, static_cast<int32_t>(want.size()));
  EXPECT_EQ(res->timings.decode_steps, static_cast<int32_t>(want.size()));  // the last token's K/V: computed before </s>
}

TEST(Generator, ChunkedPrefillUsesMaxBatchTokens) {
  FakeRunner r(256, 4, 64, 4);
  Generator g(r);
  auto res = g.generate("abcdefghi", greedy(2));  // 10 tokens with <s>
  ASSERT_TRUE(res.ok()) << res.message();
  ASSERT_GE(r.chunks.size(), 3u);
  EXPECT_EQ(r.chunks[0], 4);
  EXPECT_EQ(r.chunks[1], 4);
  EXPECT_EQ(r.chunks[2], 2);
  EXPECT_EQ(res->tokens, reference(FakeTokenizer().encode("abcdefghi", true, SpecialTokens::Parse), 2));
  EXPECT_EQ(res->finish, FinishReason::Length);
}

TEST(Generator, ReusesKvOfAnExtendedPrompt) {
  FakeRunner r(256, 4, 64, 8);
  Generator g(r);
  auto first = g.generate("a b", greedy(5));
  ASSERT_TRUE(first.ok());
  // The next prompt extends everything the first call saw: only new tokens are computed.
  std::vector<int32_t> next = FakeTokenizer().encode("a b", true, SpecialTokens::Parse);
  next.insert(next.end(), first->tokens.begin(), first->tokens.end());
  for (int32_t t : FakeTokenizer().encode(" c d", false, SpecialTokens::Parse)) next.push_back(t);
  const int64_t before = r.computed;
  auto second = g.generate(std::span<const int32_t>(next), greedy(6));
  ASSERT_TRUE(second.ok()) << second.message();
  // Cached: the 4 prompt tokens + 4 of the 5 generated (the last was never fed back).
  EXPECT_EQ(second->timings.reused_tokens, 8);
  EXPECT_EQ(r.computed - before, static_cast<int64_t>(next.size()) - 8 + second->timings.decode_steps);
  EXPECT_EQ(second->tokens, reference(next, 6));
  // A prompt that diverges early recomputes from the divergence and still matches.
  std::vector<int32_t> other = {kBos, kA, kZ, kA};
  auto third = g.generate(std::span<const int32_t>(other), greedy(6));
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->timings.reused_tokens, 2);
  EXPECT_EQ(third->tokens, reference(other, 6));
  // The same prompt again: everything but the last token is reused.
  auto again = g.generate(std::span<const int32_t>(other), greedy(6));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->timings.reused_tokens, 3);
  EXPECT_EQ(again->tokens, third->tokens);
  g.reset();
  auto fresh = g.generate(std::span<const int32_t>(other), greedy(6));
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->timings.reused_tokens, 0);
  EXPECT_EQ(fresh->tokens, third->tokens);
}

TEST(Generator, IgnoreEosContinuesPastTheEndToken) {
  FakeRunner r(512, 16, 32, 512);
  Generator g(r);
  auto p = greedy(40);
  p.ignore_eos = true;
  auto res = g.generate("xyz", p);
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->finish, FinishReason::Length);
  EXPECT_EQ(res->tokens.size(), 40u);
  EXPECT_EQ(res->tokens, reference(FakeTokenizer().encode("xyz", true, SpecialTokens::Parse), 40, true));
}

TEST(Generator, StopStringNeverReachesTheOutput) {
  FakeRunner r(512, 16, 32, 512);
  Generator g(r);
  auto prompt = FakeTokenizer().encode("abc", true, SpecialTokens::Parse);
  std::string full = text_of(reference(prompt, 30));
  ASSERT_GE(full.size(), 6u);
  const std::string stop_str = full.substr(3, 2);
  auto p = greedy(30);
  p.stop = {stop_str};
  std::string streamed;
  GenerateOptions o;
  o.on_text = [&](std::string_view s) {
    streamed += s;
    return true;
  };
  auto res = g.generate("abc", p, o);
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->finish, FinishReason::Stop);
  EXPECT_EQ(res->text, full.substr(0, full.find(stop_str)));
  EXPECT_EQ(streamed, res->text);
}

TEST(Generator, SplitUtf8IsStreamedWhole) {
  FakeRunner r(512, 16, 32, 512);
  Generator g(r);
  std::vector<std::string> pieces;
  GenerateOptions o;
  o.on_text = [&](std::string_view s) {
    pieces.emplace_back(s);
    return true;
  };
  auto res = g.generate("pq", greedy(4), o);  // q -> 0xC3 0xA9 -> a ...
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->text.substr(0, 2), "\xC3\xA9");
  EXPECT_EQ(pieces[0], "\xC3\xA9");  // never half a character
}

TEST(Generator, CallbackCancels) {
  FakeRunner r(512, 16, 32, 512);
  Generator g(r);
  int calls = 0;
  GenerateOptions o;
  o.on_text = [&](std::string_view) { return ++calls < 3; };
  auto p = greedy(50);
  p.ignore_eos = true;
  auto res = g.generate("a", p, o);
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->finish, FinishReason::Cancelled);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(res->tokens.size(), 3u);
}

TEST(Generator, PromptLongerThanContext) {
  FakeRunner r(32, 8, 4, 16);  // 32 positions
  Generator g(r);
  std::string long_prompt(40, 'a');
  auto res = g.generate(long_prompt, greedy(8));
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.message(), "prompt is 41 tokens, context is 32; use --ctx-size to raise it");
  // With truncation: keep <s> and the newest tokens, leaving max_tokens of room.
  GenerateOptions o;
  o.truncate = true;
  auto t = g.generate(long_prompt, greedy(8), o);
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ(t->timings.prompt_tokens, 24);
  std::vector<int32_t> kept(24, kA);
  kept[0] = kBos;
  EXPECT_EQ(t->tokens, reference(kept, 8));
  EXPECT_EQ(g.cached_tokens()[0], kBos);
}

TEST(Generator, StopsWhenTheContextIsFull) {
  FakeRunner r(16, 4, 8, 16);  // blocks allow 32, context 16
  Generator g(r);
  EXPECT_EQ(g.max_context(), 16);
  auto p = greedy(-1);
  p.ignore_eos = true;
  auto res = g.generate("abcd", p);
  ASSERT_TRUE(res.ok()) << res.message();
  EXPECT_EQ(res->finish, FinishReason::Length);
  // Prompt 5 tokens at positions 0..4; tokens computed up to position 15, plus the final sample.
  EXPECT_EQ(res->tokens.size(), 12u);
}

TEST(Generator, BadInputIsAnError) {
  FakeRunner r(64, 16, 4, 64);
  Generator g(r);
  auto p = greedy();
  p.top_p = 0;
  EXPECT_EQ(g.generate("a", p).message(), "top_p must be in (0, 1], got 0");
  p = greedy();
  p.logit_bias[kVocab] = 1;
  EXPECT_NE(g.generate("a", p).message().find("outside the vocabulary"), std::string::npos);
  std::vector<int32_t> none;
  EXPECT_EQ(g.generate(std::span<const int32_t>(none), greedy()).message(), "the prompt is empty (no tokens to start from)");
  std::vector<int32_t> bad = {kBos, 99};
  EXPECT_NE(g.generate(std::span<const int32_t>(bad), greedy()).message().find("outside the vocabulary"),
            std::string::npos);
}

TEST(Generator, MaxTokensZeroOnlyComputesThePrompt) {
  FakeRunner r(64, 16, 4, 64);
  Generator g(r);
  auto res = g.generate("abc", greedy(0));
  ASSERT_TRUE(res.ok());
  EXPECT_TRUE(res->tokens.empty());
  EXPECT_EQ(res->finish, FinishReason::Length);
  EXPECT_EQ(g.cached_tokens().size(), 4u);
}

// ---- a real model ---------------------------------------------------------

std::unique_ptr<ModelRunner> load_code_model(int32_t max_batch, int32_t ctx = 256) {
  RunnerOptions o;
  o.threads = 2;
  o.ctx_size = ctx;
  o.max_batch_tokens = max_batch;
  auto r = ModelRunner::load(test::model_path("velo-code-40m.Q8_0.gguf"), o);
  EXPECT_TRUE(r.ok()) << r.message();
  return r.ok() ? std::move(*r) : nullptr;
}

const char* kStackPrompt = "class Stack:\n    def __init__(self):\n";

TEST(GeneratorReal, GreedyPythonContinuation) {
  auto runner = load_code_model(512);
  ASSERT_TRUE(runner);
  Generator g(*runner);
  auto res = g.generate(kStackPrompt, greedy(24));
  ASSERT_TRUE(res.ok()) << res.message();
  EXPECT_EQ(res->text.rfind("        self.stack = []", 0), 0u) << res->text;
  EXPECT_EQ(res->finish, FinishReason::Length);
  EXPECT_EQ(res->tokens.size(), 24u);
  EXPECT_GT(res->timings.generation_tps(), 0);
}

// Chunked prefill and K/V reuse must not change what the model computes: greedy
// tokens agree with a single-chunk prefill from scratch.
TEST(GeneratorReal, ChunkingAndReuseDoNotChangeTheOutput) {
  auto one_chunk = load_code_model(512);
  auto small_chunks = load_code_model(5);
  ASSERT_TRUE(one_chunk && small_chunks);
  Generator a(*one_chunk), b(*small_chunks);
  auto ra = a.generate(kStackPrompt, greedy(16));
  auto rb = b.generate(kStackPrompt, greedy(16));
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->tokens, rb->tokens);

  // Extend the conversation: prompt + output + more text. `a` reuses its K/V.
  auto prompt = one_chunk->tokenizer().encode(kStackPrompt, true, SpecialTokens::Parse);
  prompt.insert(prompt.end(), ra->tokens.begin(), ra->tokens.end());
  auto more = one_chunk->tokenizer().encode("\n    def push(self, item):\n", false, SpecialTokens::Parse);
  prompt.insert(prompt.end(), more.begin(), more.end());
  auto reused = a.generate(std::span<const int32_t>(prompt), greedy(16));
  ASSERT_TRUE(reused.ok());
  EXPECT_GT(reused->timings.reused_tokens, 10);
  Generator fresh(*small_chunks);
  fresh.reset();
  auto scratch = fresh.generate(std::span<const int32_t>(prompt), greedy(16));
  ASSERT_TRUE(scratch.ok());
  EXPECT_EQ(scratch->timings.reused_tokens, 0);
  EXPECT_EQ(reused->tokens, scratch->tokens);
}

}  // namespace
}  // namespace velo
