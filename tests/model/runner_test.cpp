// ModelRunner on the real velo-code-40m: generation, flat batches of several
// sequences, block copies and plan validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "engine/model_runner.h"
#include "model/config.h"
#include "test_models.h"

namespace velo {
namespace {

std::unique_ptr<ModelRunner> load(RunnerOptions o = {}) {
  o.threads = o.threads ? o.threads : 2;
  auto r = ModelRunner::load(test::model_path("velo-code-40m.Q8_0.gguf"), o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.message());
  return r.ok() ? std::move(r).value() : nullptr;
}

int32_t argmax(std::span<const float> x) {
  return static_cast<int32_t>(std::max_element(x.begin(), x.end()) - x.begin());
}

ScheduledSeq seq(uint64_t id, std::vector<int32_t> toks, int32_t start, std::vector<int32_t> blocks) {
  ScheduledSeq s;
  s.seq_id = id;
  s.tokens = std::move(toks);
  s.start_pos = start;
  s.block_table = std::move(blocks);
  s.need_logits = true;
  return s;
}

TEST(ModelRunner, LoadsAndGeneratesTheDocumentedContinuation) {
  auto r = load();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->n_vocab(), 32000);
  EXPECT_EQ(r->ctx_size(), 1024);  // the model's training context
  EXPECT_EQ(r->config().n_layer, 8);
  EXPECT_EQ(r->num_kv_blocks(), 1024 / 16);
  auto prompt = r->tokenizer().encode("class Stack:\n    def __init__(self):\n", true);
  std::vector<int32_t> table(r->num_kv_blocks());
  std::iota(table.rbegin(), table.rend(), 0);  // reversed: pages out of order
  StepPlan plan;
  plan.seqs.push_back(seq(1, prompt, 0, table));
  std::vector<int32_t> out;
  int32_t pos = 0;
  for (int i = 0; i < 8; ++i) {
    auto logits = r->execute(plan);
    ASSERT_TRUE(logits.ok()) << logits.message();
    ASSERT_EQ(logits->size(), 32000u);
    pos += static_cast<int32_t>(plan.seqs[0].tokens.size());
    out.push_back(argmax(*logits));
    plan.seqs[0] = seq(1, {out.back()}, pos, table);
  }
  const std::string text = r->tokenizer().decode(out, false);
  // (decode drops the SPM space of the first piece, so match from "self")
  EXPECT_EQ(text.find("self.stack = []"), text.find_first_not_of(' ')) << text;
  EXPECT_GE(text.find("self.stack = []"), 6u) << text;
}

TEST(ModelRunner, FlatBatchEqualsSeparateRuns) {
  RunnerOptions o;
  o.max_seqs = 3;
  o.kv_block_size = 8;
  auto r = load(o);
  ASSERT_TRUE(r);
  const auto a = r->tokenizer().encode("def add(a, b):\n    return a + b\n", true);
  const auto b = r->tokenizer().encode("import os\nprint(os.getcwd())", true);
  const auto c = r->tokenizer().encode("for i in range(10):", true);
  StepPlan together;
  together.seqs = {seq(1, a, 0, {0, 1, 2}), seq(2, b, 0, {5, 4, 3}), seq(3, c, 0, {9, 7})};
  together.seqs[1].need_logits = false;
  auto both = r->execute(together);
  ASSERT_TRUE(both.ok()) << both.message();
  ASSERT_EQ(both->size(), 2u * 32000);
  const std::vector<float> joint(both->begin(), both->end());
  for (auto [s, off] : {std::pair{together.seqs[0], 0}, std::pair{together.seqs[2], 32000}}) {
    StepPlan alone;
    alone.seqs = {s};
    alone.seqs[0].block_table = {20, 21, 22};
    auto l = r->execute(alone);
    ASSERT_TRUE(l.ok());
    EXPECT_TRUE(std::equal(l->begin(), l->end(), joint.begin() + off)) << "seq " << s.seq_id;
  }
}

TEST(ModelRunner, ExecuteAllGivesEveryTokensLogits) {
  RunnerOptions o;
  o.max_seqs = 2;
  auto r = load(o);
  ASSERT_TRUE(r);
  const auto a = r->tokenizer().encode("x = [1, 2, 3]", true);
  const auto b = r->tokenizer().encode("y = 4", true);
  StepPlan p;
  p.seqs = {seq(1, a, 0, {0}), seq(2, b, 0, {1})};
  auto all = r->execute_all(p);
  ASSERT_TRUE(all.ok()) << all.message();
  ASSERT_EQ(all->size(), (a.size() + b.size()) * 32000);
  const std::vector<float> every(all->begin(), all->end());
  auto last = r->execute(p);  // recomputes the same step: the last rows must agree
  ASSERT_TRUE(last.ok());
  EXPECT_TRUE(std::equal(last->begin(), last->begin() + 32000, every.begin() + (a.size() - 1) * 32000));
  EXPECT_TRUE(std::equal(last->begin() + 32000, last->end(), every.end() - 32000));
}

TEST(ModelRunner, CopyBlockSharesAPrefix) {
  RunnerOptions o;
  o.max_seqs = 2;
  auto r = load(o);
  ASSERT_TRUE(r);
  auto prompt = r->tokenizer().encode("def fibonacci(n):\n    if n < 2:\n        return n\n", true);
  ASSERT_GT(prompt.size(), 16u);
  ASSERT_LT(prompt.size(), 32u);
  const int32_t n = static_cast<int32_t>(prompt.size());
  StepPlan p;
  p.seqs = {seq(1, prompt, 0, {3, 5})};
  ASSERT_TRUE(r->execute(p).ok());
  // Sequence 2 shares block 3 and gets a copy of the partial block 5 in 7.
  r->copy_block(5, 7);
  std::vector<std::vector<float>> logits;
  for (auto table : {std::vector<int32_t>{3, 5}, std::vector<int32_t>{3, 7}}) {
    StepPlan d;
    d.seqs = {seq(table[1], {13}, n, table)};
    auto l = r->execute(d);
    ASSERT_TRUE(l.ok());
    logits.emplace_back(l->begin(), l->end());
  }
  EXPECT_EQ(logits[0], logits[1]);
}

TEST(ModelRunner, InvalidPlansAreErrors) {
  RunnerOptions o;
  o.max_seqs = 2;
  o.ctx_size = 64;
  o.max_batch_tokens = 32;
  auto r = load(o);
  ASSERT_TRUE(r);
  auto expect_error = [&](StepPlan p, const char* what) {
    auto l = r->execute(p);
    ASSERT_FALSE(l.ok()) << what;
    EXPECT_NE(l.message().find(what), std::string::npos) << l.message();
  };
  StepPlan p;
  p.seqs = {seq(1, {1, 32000}, 0, {0})};
  expect_error(p, "token id 32000");
  p.seqs = {seq(1, {1, -5}, 0, {0})};
  expect_error(p, "token id -5");
  p.seqs = {seq(1, {1, 2}, 15, {0})};
  expect_error(p, "block table has 1 blocks, 2 needed");
  ASSERT_EQ(r->num_kv_blocks(), 8);  // 2 sequences x 64 positions / 16
  p.seqs = {seq(1, {1, 2}, 0, {8})};
  expect_error(p, "KV block id 8 is out of range");
  p.seqs = {seq(1, {1}, 64, {0, 1, 2, 3, 3})};
  expect_error(p, "exceed the context size 64");
  p.seqs = {seq(1, std::vector<int32_t>(33, 5), 0, {0, 1, 2})};
  expect_error(p, "max_batch_tokens");
  p.seqs = {seq(1, {1}, 0, {0}), seq(2, {1}, 0, {1}), seq(3, {1}, 0, {2})};
  expect_error(p, "max_seqs");
  p.seqs = {seq(1, {}, 0, {0})};
  expect_error(p, "no tokens");
  p.seqs = {seq(1, {1}, -1, {0})};
  expect_error(p, "exceed the context size");
  // The runner still works after rejected plans.
  p.seqs = {seq(1, {1, 100}, 0, {0})};
  EXPECT_TRUE(r->execute(p).ok());
  EXPECT_TRUE(r->execute(StepPlan{}).ok());
}

TEST(ModelRunner, LoadsEveryTestModel) {
  struct M {
    const char* file;
    int32_t vocab, ctx;
  };
  for (M m : {M{"SmolLM2-135M-Instruct.Q4_1.gguf", 49152, 8192}, M{"gemma-3-270m-q4_k_m.gguf", 262144, 8192},
              M{"velo-code-draft-12m.Q8_0.gguf", 32000, 1024}}) {
    RunnerOptions o;
    o.threads = 2;
    auto r = ModelRunner::load(test::model_path(m.file), o);
    ASSERT_TRUE(r.ok()) << m.file << ": " << r.message();
    EXPECT_EQ((*r)->n_vocab(), m.vocab) << m.file;
    EXPECT_EQ((*r)->ctx_size(), m.ctx) << m.file;
    EXPECT_FALSE((*r)->chat_template().source.empty()) << m.file;
    StepPlan p;
    p.seqs = {seq(1, (*r)->tokenizer().encode("Hello, world", true), 0, {0})};
    auto l = (*r)->execute(p);
    ASSERT_TRUE(l.ok()) << l.message();
    ASSERT_EQ(l->size(), static_cast<size_t>(m.vocab));
    for (float x : *l) ASSERT_TRUE(std::isfinite(x));
  }
}

TEST(ModelRunner, BadOptionsAndFiles) {
  RunnerOptions o;
  o.threads = -1;
  auto r = ModelRunner::load(test::model_path("velo-code-40m.Q8_0.gguf"), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("threads"), std::string::npos);
  o = {};
  o.max_batch_tokens = 0;
  EXPECT_FALSE(ModelRunner::load(test::model_path("velo-code-40m.Q8_0.gguf"), o).ok());
  EXPECT_FALSE(ModelRunner::load("/nonexistent/model.gguf", {}).ok());
  EXPECT_FALSE(ModelRunner::load(std::string(VELO_SOURCE_DIR) + "/CMakeLists.txt", {}).ok());
}

}  // namespace
}  // namespace velo
