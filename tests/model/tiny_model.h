// Builds tiny GGUF models in memory for config / weight-binding tests.
#pragma once
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/writer.h"

namespace velo::test {

struct TinySpec {
  std::string arch = "llama";
  uint32_t embd = 32, ff = 64, layers = 2, heads = 2, kv_heads = 1, vocab = 50;
  std::set<std::string> skip;             // tensors left out
  std::string misshape;                   // tensor written with a wrong row length
  std::string wrong_type;                 // matrix written as I32 (not multipliable)
  bool tied = true;
};

class TinyModel {
 public:
  explicit TinyModel(const TinySpec& s) : s_(s) {
    using gguf::OwnedValue;
    const std::string a = s.arch + ".";
    w_.set("general.architecture", OwnedValue::string(s.arch));
    w_.set(a + "embedding_length", OwnedValue::u32(s.embd));
    w_.set(a + "feed_forward_length", OwnedValue::u32(s.ff));
    w_.set(a + "block_count", OwnedValue::u32(s.layers));
    w_.set(a + "attention.head_count", OwnedValue::u32(s.heads));
    w_.set(a + "attention.head_count_kv", OwnedValue::u32(s.kv_heads));
    w_.set(a + "context_length", OwnedValue::u32(128));
    w_.set(a + "attention.layer_norm_rms_epsilon", OwnedValue::f32(1e-5f));
  }
  gguf::Writer& writer() { return w_; }

  // Adds every tensor of the architecture (F32, small values).
  void add_tensors() {
    const uint32_t E = s_.embd, F = s_.ff, D = E / s_.heads, Q = E, KV = D * s_.kv_heads;
    mat("token_embd.weight", E, s_.vocab);
    vec("output_norm.weight", E);
    if (!s_.tied) mat("output.weight", E, s_.vocab);
    for (uint32_t il = 0; il < s_.layers; ++il) {
      const std::string p = "blk." + std::to_string(il) + ".";
      vec(p + "attn_norm.weight", E);
      mat(p + "attn_q.weight", E, Q);
      mat(p + "attn_k.weight", E, KV);
      mat(p + "attn_v.weight", E, KV);
      if (s_.arch == "qwen2") {
        vec(p + "attn_q.bias", Q);
        vec(p + "attn_k.bias", KV);
        vec(p + "attn_v.bias", KV);
      }
      if (s_.arch == "qwen3" || s_.arch == "gemma3") {
        vec(p + "attn_q_norm.weight", D);
        vec(p + "attn_k_norm.weight", D);
      }
      if (s_.arch == "gemma3") {
        vec(p + "post_attention_norm.weight", E);
        vec(p + "post_ffw_norm.weight", E);
      }
      mat(p + "attn_output.weight", Q, E);
      vec(p + "ffn_norm.weight", E);
      mat(p + "ffn_gate.weight", E, F);
      mat(p + "ffn_up.weight", E, F);
      mat(p + "ffn_down.weight", F, E);
    }
  }

  std::unique_ptr<gguf::File> open() {
    bytes_ = w_.to_bytes();
    auto f = gguf::File::parse(bytes_);
    EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.message());
    return f.ok() ? std::move(f).value() : nullptr;
  }

 private:
  void vec(const std::string& name, uint64_t n) { add(name, {n}); }
  void mat(const std::string& name, uint64_t cols, uint64_t rows) { add(name, {cols, rows}); }
  void add(const std::string& name, std::vector<uint64_t> ne) {
    if (s_.skip.count(name)) return;
    if (name == s_.misshape) ne[0] += 1;
    uint64_t n = 1;
    for (auto d : ne) n *= d;
    std::vector<float> v(n);
    for (uint64_t i = 0; i < n; ++i) v[i] = 0.01f * static_cast<float>((i * 7919) % 101) - 0.5f;
    if (ne.size() == 1) for (auto& x : v) x += 1.0f;  // norms around 1
    std::vector<uint8_t> b(n * 4);
    std::memcpy(b.data(), v.data(), b.size());
    const GgmlType t = name == s_.wrong_type ? GgmlType::I32 : GgmlType::F32;
    auto st = w_.add_tensor(name, t, ne, b);
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.message());
  }

  TinySpec s_;
  gguf::Writer w_;
  std::vector<uint8_t> bytes_;
};

}  // namespace velo::test
