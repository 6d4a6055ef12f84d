// Weight binding: shapes and types checked, errors name the tensor.
#include <gtest/gtest.h>

#include "model/config.h"
#include "model/weights.h"
#include "model/tiny_model.h"

namespace velo {
namespace {

using test::TinyModel;
using test::TinySpec;

struct Bound {
  std::unique_ptr<gguf::File> file;
  ModelConfig cfg;
  Result<ModelWeights> w = make_error("unset");
};

Bound bind(const TinySpec& s) {
  TinyModel m(s);
  m.add_tensors();
  Bound b;
  b.file = m.open();
  auto c = parse_config(*b.file);
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.message());
  b.cfg = *c;
  b.w = bind_weights(*b.file, b.cfg);
  return b;
}

TEST(Weights, BindsEveryArchitecture) {
  for (const char* a : {"llama", "qwen2", "qwen3", "gemma3"}) {
    TinySpec s;
    s.arch = a;
    auto b = bind(s);
    ASSERT_TRUE(b.w.ok()) << a << ": " << b.w.message();
    EXPECT_EQ(b.cfg.n_vocab, 50);
    EXPECT_TRUE(b.w->tied_output);
    EXPECT_EQ(b.w->layers.size(), 2u);
    EXPECT_EQ(b.w->layers[1].wk.rows, 16);
    EXPECT_EQ(b.w->layers[1].w_down.cols, 64);
    EXPECT_EQ(b.w->layers[0].bq != nullptr, std::string(a) == "qwen2");
    EXPECT_EQ(b.w->layers[0].q_norm != nullptr, std::string(a) == "qwen3" || std::string(a) == "gemma3");
  }
}

TEST(Weights, UntiedOutput) {
  TinySpec s;
  s.tied = false;
  auto b = bind(s);
  ASSERT_TRUE(b.w.ok()) << b.w.message();
  EXPECT_FALSE(b.w->tied_output);
  EXPECT_NE(b.w->output.data, b.w->tok_embd.data);
}

TEST(Weights, MissingTensorIsNamed) {
  for (const char* name : {"blk.1.ffn_up.weight", "output_norm.weight", "blk.0.attn_k.weight"}) {
    TinySpec s;
    s.skip = {name};
    auto b = bind(s);
    ASSERT_FALSE(b.w.ok()) << name;
    EXPECT_NE(b.w.message().find(std::string("missing tensor '") + name + "'"), std::string::npos) << b.w.message();
  }
  TinySpec q;
  q.arch = "qwen2";
  q.skip = {"blk.0.attn_v.bias"};
  auto b = bind(q);
  ASSERT_FALSE(b.w.ok());
  EXPECT_NE(b.w.message().find("blk.0.attn_v.bias"), std::string::npos);
}

TEST(Weights, WrongShapeIsNamed) {
  TinySpec s;
  s.misshape = "blk.1.attn_output.weight";
  auto b = bind(s);
  ASSERT_FALSE(b.w.ok());
  EXPECT_NE(b.w.message().find("tensor 'blk.1.attn_output.weight' has shape [33, 32], expected [32, 32]"),
            std::string::npos)
      << b.w.message();
}

TEST(Weights, UnsupportedTypeIsNamed) {
  TinySpec s;
  s.wrong_type = "blk.0.ffn_gate.weight";
  auto b = bind(s);
  ASSERT_FALSE(b.w.ok());
  EXPECT_NE(b.w.message().find("'blk.0.ffn_gate.weight' has type I32"), std::string::npos) << b.w.message();
}

TEST(Weights, VocabularyMismatch) {
  TinyModel m(TinySpec{});
  m.writer().set("llama.vocab_size", gguf::OwnedValue::u32(60));
  m.add_tensors();
  auto f = m.open();
  auto c = parse_config(*f);
  ASSERT_TRUE(c.ok());
  auto w = bind_weights(*f, *c);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.message().find("token_embd.weight"), std::string::npos) << w.message();
}

}  // namespace
}  // namespace velo
