// Test doubles for the engine tests that need no model: a tiny tokenizer and a
// ModelRunner whose "forward pass" writes the scheduled tokens into a fake
// paged KV store and derives each sequence's logits from the context it reads
// back through the block table. Logits depend only on that context, so any
// scheduling (batching, chunking, preemption, prefix reuse) must give the same
// outputs as a request run alone, and a wrong block table changes them.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "engine/model_runner.h"
#include "model/config.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace velo::test {

// Token 0 <unk>, 1 <s>, 2 </s> (the only end-of-generation token); 3.. one character each.
class FakeTokenizer final : public Tokenizer {
 public:
  static constexpr const char* kChars = "abcdefghijklmnopqrstuvwxyz .,!?ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  static constexpr int32_t kVocab = 3 + 66;

  std::vector<Token> encode(std::string_view text, bool add_bos, SpecialTokens) const override {
    std::vector<Token> out;
    if (add_bos) out.push_back(1);
    for (char c : text) {
      const char* p = std::char_traits<char>::find(kChars, 66, c);
      out.push_back(p ? static_cast<Token>(3 + (p - kChars)) : 0);
    }
    return out;
  }
  std::string token_to_piece(Token t, bool) const override {
    if (t < 3 || t >= kVocab) return "";
    return std::string(1, kChars[t - 3]);
  }
  std::string decode(std::span<const Token> tokens, bool special) const override {
    std::string s;
    for (Token t : tokens) s += token_to_piece(t, special);
    return s;
  }
  int32_t n_vocab() const override { return kVocab; }
  std::string_view model_name() const override { return "fake"; }
  std::string_view token_text(Token t) const override { return t == 2 ? "</s>" : ""; }
  TokenAttr token_attr(Token t) const override { return t < 3 ? TokenAttr::Control : TokenAttr::Normal; }
  Token bos() const override { return 1; }
  Token eos() const override { return 2; }
  bool adds_bos() const override { return true; }
  bool is_eog(Token t) const override { return t == 2; }
  Token eot() const override { return -1; }
  Token unk() const override { return 0; }
  Token pad() const override { return -1; }
  bool adds_eos() const override { return false; }
};

struct FakeRunnerOptions {
  int32_t ctx_size = 256;
  int32_t block_size = 4;
  int32_t num_blocks = 256;
  int32_t max_batch_tokens = 512;
  int32_t eog_after = -1;      // contexts at least this long put all the mass on </s> (-1: never)
  int32_t fail_on_call = -1;   // execute() call number (0-based) that fails
  int32_t block_on_call = -1;  // execute() call number that waits for release()
};

class FakeRunner final : public ModelRunner {
 public:
  explicit FakeRunner(FakeRunnerOptions o)
      : o_(o), slots_(static_cast<size_t>(o.num_blocks) * o.block_size, -1) {
    cfg_.n_vocab = FakeTokenizer::kVocab;
  }

  const ModelConfig& config() const override { return cfg_; }
  const Tokenizer& tokenizer() const override { return tok_; }
  const ChatTemplate& chat_template() const override { return tmpl_; }
  int32_t n_vocab() const override { return FakeTokenizer::kVocab; }
  int32_t ctx_size() const override { return o_.ctx_size; }
  int32_t block_size() const override { return o_.block_size; }
  int32_t num_kv_blocks() const override { return o_.num_blocks; }
  int32_t max_batch_tokens() const override { return o_.max_batch_tokens; }

  // Logits of a context: pseudo-random in [0, 8) per (context, token), </s> far below.
  static void logits_of(const std::vector<int32_t>& ctx, int32_t eog_after, float* out) {
    uint64_t h = 1469598103934665603ull;
    for (int32_t t : ctx) h = (h ^ static_cast<uint32_t>(t)) * 1099511628211ull;
    for (int32_t v = 0; v < FakeTokenizer::kVocab; ++v) {
      uint64_t x = (h ^ (static_cast<uint64_t>(v) * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
      x ^= x >> 31;
      out[v] = static_cast<float>(x % 8000) / 1000.0f;
    }
    out[0] = out[1] = -50.0f;
    out[2] = (eog_after >= 0 && static_cast<int32_t>(ctx.size()) >= eog_after) ? 100.0f : -50.0f;
  }

  Result<std::span<const float>> execute(const StepPlan& plan) override {
    const int32_t call = calls_++;
    if (call == o_.block_on_call) {
      std::unique_lock lk(mu_);
      entered_ = true;
      cv_.notify_all();
      cv_.wait(lk, [&] { return released_; });
    }
    if (call == o_.fail_on_call) return make_error("injected failure");
    if (plan.num_tokens() > o_.max_batch_tokens) return make_error("batch too large");
    max_seen_tokens = std::max(max_seen_tokens, plan.num_tokens());
    max_seen_seqs = std::max(max_seen_seqs, static_cast<int32_t>(plan.seqs.size()));
    const int32_t bs = o_.block_size;
    logits_.clear();
    for (const auto& s : plan.seqs) {
      const int32_t end = s.start_pos + static_cast<int32_t>(s.tokens.size());
      if (static_cast<int32_t>(s.block_table.size()) * bs < end) return make_error("block table too short");
      for (int32_t p = s.start_pos; p < end; ++p) {
        slots_[static_cast<size_t>(s.block_table[p / bs]) * bs + p % bs] = s.tokens[p - s.start_pos];
      }
      if (!s.need_logits) continue;
      std::vector<int32_t> ctx;
      for (int32_t p = 0; p < end; ++p) ctx.push_back(slots_[static_cast<size_t>(s.block_table[p / bs]) * bs + p % bs]);
      logits_.resize(logits_.size() + FakeTokenizer::kVocab);
      logits_of(ctx, o_.eog_after, logits_.data() + logits_.size() - FakeTokenizer::kVocab);
    }
    return std::span<const float>(logits_);
  }
  void copy_block(int32_t src, int32_t dst) override {
    std::copy_n(slots_.begin() + static_cast<ptrdiff_t>(src) * o_.block_size, o_.block_size,
                slots_.begin() + static_cast<ptrdiff_t>(dst) * o_.block_size);
  }

  // For block_on_call: wait until that call started; let it go on.
  void wait_entered() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return entered_; });
  }
  void release() {
    std::lock_guard lk(mu_);
    released_ = true;
    cv_.notify_all();
  }

  std::atomic<int32_t> calls_{0};
  int32_t max_seen_tokens = 0, max_seen_seqs = 0;

 private:
  FakeRunnerOptions o_;
  ModelConfig cfg_;
  FakeTokenizer tok_;
  ChatTemplate tmpl_;
  std::vector<int32_t> slots_;
  std::vector<float> logits_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false, released_ = false;
};

}  // namespace velo::test
