// ModelConfig parsing: values, defaults, per-architecture rules and errors.
#include <gtest/gtest.h>

#include <cmath>

#include "model/config.h"
#include "model/tiny_model.h"

namespace velo {
namespace {

using test::TinyModel;
using test::TinySpec;
using gguf::OwnedValue;

Result<ModelConfig> parse(TinyModel& m) {
  auto f = m.open();
  if (!f) return make_error("unparsable");
  return parse_config(*f);
}

TEST(ModelConfig, LlamaDefaults) {
  TinyModel m(TinySpec{});
  auto c = parse(m);
  ASSERT_TRUE(c.ok()) << c.message();
  EXPECT_EQ(c->arch, Arch::Llama);
  EXPECT_EQ(c->n_embd, 32);
  EXPECT_EQ(c->n_layer, 2);
  EXPECT_EQ(c->n_head, 2);
  EXPECT_EQ(c->n_head_kv, 1);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->n_rot, 16);
  EXPECT_EQ(c->rope_layout, cpu::RopeLayout::Norm);
  EXPECT_FLOAT_EQ(c->rope_base, 10000.0f);
  EXPECT_FLOAT_EQ(c->attn_scale, 0.25f);
  EXPECT_EQ(c->sliding_window, 0);
  EXPECT_FALSE(c->is_swa(0));
}

TEST(ModelConfig, QwenUsesNeoxRope) {
  for (const char* a : {"qwen2", "qwen3"}) {
    TinySpec s;
    s.arch = a;
    TinyModel m(s);
    auto c = parse(m);
    ASSERT_TRUE(c.ok()) << c.message();
    EXPECT_EQ(c->rope_layout, cpu::RopeLayout::Neox);
  }
}

TEST(ModelConfig, Gemma3SlidingWindowPatternAndScales) {
  TinySpec s;
  s.arch = "gemma3";
  s.layers = 12;
  TinyModel m(s);
  m.writer().set("gemma3.attention.sliding_window", OwnedValue::u32(512));
  m.writer().set("gemma3.rope.freq_base", OwnedValue::f32(1e6f));
  m.writer().set("gemma3.final_logit_softcapping", OwnedValue::f32(30.0f));
  auto c = parse(m);
  ASSERT_TRUE(c.ok()) << c.message();
  EXPECT_EQ(c->sliding_window, 512);
  for (int il = 0; il < 12; ++il) EXPECT_EQ(c->is_swa(il), il != 5 && il != 11) << il;
  EXPECT_FLOAT_EQ(c->rope_base, 1e6f);
  EXPECT_FLOAT_EQ(c->rope_base_swa, 10000.0f);
  EXPECT_FLOAT_EQ(c->embd_scale, std::sqrt(32.0f));
  EXPECT_FLOAT_EQ(c->query_pre_scale, 0.25f);
  EXPECT_FLOAT_EQ(c->attn_scale, 1.0f);
  EXPECT_FLOAT_EQ(c->final_softcap, 30.0f);
}

TEST(ModelConfig, LinearRopeScaling) {
  TinyModel m(TinySpec{});
  m.writer().set("llama.rope.scaling.type", OwnedValue::string("linear"));
  m.writer().set("llama.rope.scaling.factor", OwnedValue::f32(4.0f));
  auto c = parse(m);
  ASSERT_TRUE(c.ok()) << c.message();
  EXPECT_EQ(c->rope_scaling, RopeScaling::Linear);
  EXPECT_FLOAT_EQ(c->rope_freq_scale, 0.25f);
}

TEST(ModelConfig, Errors) {
  struct Case {
    const char* key;
    OwnedValue value;
    const char* expect;  // substring of the error
  };
  std::vector<Case> cases = {
      {"general.architecture", OwnedValue::string("mamba"), "unsupported model architecture 'mamba'"},
      {"llama.attention.head_count_kv", OwnedValue::u32(3), "not a multiple of head_count_kv"},
      {"llama.embedding_length", OwnedValue::u32(0), "llama.embedding_length"},
      {"llama.block_count", OwnedValue::u32(100000), "llama.block_count"},
      {"llama.embedding_length", OwnedValue::string("big"), "llama.embedding_length"},
      {"llama.rope.scaling.type", OwnedValue::string("yarn"), "unsupported rope scaling type 'yarn'"},
      {"llama.attention.key_length", OwnedValue::u32(12), "multiple of 16"},
      {"llama.attention.layer_norm_rms_epsilon", OwnedValue::f32(-1.0f), "epsilon"},
      {"llama.attention.sliding_window", OwnedValue::u32(4096), "sliding_window"},
  };
  for (auto& c : cases) {
    TinyModel m(TinySpec{});
    m.writer().set(c.key, c.value);
    auto r = parse(m);
    ASSERT_FALSE(r.ok()) << c.key;
    EXPECT_NE(r.message().find(c.expect), std::string::npos) << r.message();
    EXPECT_EQ(r.message().find('\n'), std::string::npos);
  }
}

TEST(ModelConfig, MissingRequiredKeyIsNamed) {
  TinyModel m(TinySpec{});
  auto f = m.open();
  ASSERT_TRUE(f);
  // A writer without the block count: rebuild with every key but that one.
  gguf::Writer w;
  for (const auto& kv : f->metadata())
    if (kv.key != "llama.block_count") w.set(std::string(kv.key), OwnedValue::from(kv.value));
  auto bytes = w.to_bytes();
  auto g = gguf::File::parse(bytes);
  ASSERT_TRUE(g.ok());
  auto c = parse_config(**g);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.message().find("llama.block_count"), std::string::npos) << c.message();
}

}  // namespace
}  // namespace velo
