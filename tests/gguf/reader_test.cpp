// Reader: round trip through the writer, typed accessors and their errors, real models.
#include <gtest/gtest.h>

#include <cstring>

#include "gguf/gguf.h"
#include "gguf/writer.h"
#include "test_models.h"

namespace velo::gguf {
namespace {

std::vector<uint8_t> f32_bytes(const std::vector<float>& xs) {
  std::vector<uint8_t> b(xs.size() * 4);
  std::memcpy(b.data(), xs.data(), b.size());
  return b;
}

// A small file with one key of every type (nested arrays included) and two tensors.
Writer sample_writer(uint64_t alignment = 32) {
  Writer w(alignment);
  OwnedValue v;
  w.set("general.architecture", OwnedValue::string("llama"));
  w.set("llama.block_count", OwnedValue::u32(8));
  w.set("t.i32", OwnedValue::i32(-7));
  w.set("t.u64", OwnedValue::u64(1ull << 40));
  w.set("t.f32", OwnedValue::f32(1.5f));
  w.set("t.bool", OwnedValue::boolean(true));
  v = {}; v.type = ValueType::UINT8; v.u = 200; w.set("t.u8", v);
  v = {}; v.type = ValueType::INT8; v.i = -100; w.set("t.i8", v);
  v = {}; v.type = ValueType::UINT16; v.u = 65000; w.set("t.u16", v);
  v = {}; v.type = ValueType::INT16; v.i = -30000; w.set("t.i16", v);
  v = {}; v.type = ValueType::INT64; v.i = -(1ll << 50); w.set("t.i64", v);
  v = {}; v.type = ValueType::FLOAT64; v.f = 3.25e100; w.set("t.f64", v);
  w.set("tokenizer.ggml.tokens", OwnedValue::string_array({"<s>", "hello", "\xe2\x96\x81wor"}));
  w.set("t.scores", OwnedValue::f32_array({0.5f, -1.0f, 2.0f}));
  w.set("t.types", OwnedValue::i32_array({1, 2, -3}));
  OwnedValue nested;
  nested.type = ValueType::ARRAY;
  nested.elem_type = ValueType::ARRAY;
  nested.elems = {OwnedValue::i32_array({1, 2}), OwnedValue::i32_array({}), OwnedValue::i32_array({3})};
  w.set("t.nested", nested);
  EXPECT_TRUE(w.add_tensor("a", GgmlType::F32, {4, 2}, f32_bytes({1, 2, 3, 4, 5, 6, 7, 8})).ok());
  std::vector<uint8_t> q8(34 * 2, 0x11);
  EXPECT_TRUE(w.add_tensor("b.weight", GgmlType::Q8_0, {32, 2}, q8).ok());
  return w;
}

TEST(GgufReader, RoundTripEveryType) {
  const auto bytes = sample_writer().to_bytes();
  auto r = File::parse(bytes);
  ASSERT_TRUE(r.ok()) << r.message();
  const File& f = **r;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.metadata().size(), 16u);
  EXPECT_EQ(*f.get_string("general.architecture"), "llama");
  EXPECT_EQ(*f.get_uint("llama.block_count"), 8u);
  EXPECT_EQ(*f.get_int("t.i32"), -7);
  EXPECT_EQ(*f.get_uint("t.u64"), 1ull << 40);
  EXPECT_EQ(*f.get_float("t.f32"), 1.5);
  EXPECT_EQ(*f.get_bool("t.bool"), true);
  EXPECT_EQ(*f.get_uint("t.u8"), 200u);
  EXPECT_EQ(*f.get_int("t.i8"), -100);
  EXPECT_EQ(*f.get_uint("t.u16"), 65000u);
  EXPECT_EQ(*f.get_int("t.i16"), -30000);
  EXPECT_EQ(*f.get_int("t.i64"), -(1ll << 50));
  EXPECT_EQ(*f.get_float("t.f64"), 3.25e100);
  auto toks = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(toks.ok());
  EXPECT_EQ(*toks, (std::vector<std::string_view>{"<s>", "hello", "\xe2\x96\x81wor"}));
  EXPECT_EQ(*f.get_float_array("t.scores"), (std::vector<float>{0.5f, -1.0f, 2.0f}));
  EXPECT_EQ(*f.get_int_array("t.types"), (std::vector<int64_t>{1, 2, -3}));
  const Value* n = f.find("t.nested");
  ASSERT_NE(n, nullptr);
  ASSERT_EQ(n->elem_type, ValueType::ARRAY);
  ASSERT_EQ(n->elems.size(), 3u);
  EXPECT_EQ(n->elems[0].elems.size(), 2u);
  EXPECT_EQ(n->elems[0].elems[1].num.i, 2);
  EXPECT_EQ(n->elems[1].elems.size(), 0u);
  EXPECT_EQ(n->elems[2].elems[0].num.i, 3);

  ASSERT_EQ(f.tensors().size(), 2u);
  const TensorInfo* a = f.find_tensor("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, GgmlType::F32);
  EXPECT_EQ(a->ne, (std::vector<uint64_t>{4, 2}));
  EXPECT_EQ(a->n_elements, 8u);
  EXPECT_EQ(a->n_bytes, 32u);
  float got[8];
  std::memcpy(got, a->data, 32);
  EXPECT_EQ(got[7], 8.0f);
  const TensorInfo* b = f.find_tensor("b.weight");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->n_bytes, 68u);
  EXPECT_EQ(b->offset % 32, 0u);
  EXPECT_EQ(b->data[67], 0x11);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a->data) - reinterpret_cast<uintptr_t>(bytes.data()), f.data_offset());
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  EXPECT_EQ(f.find("nope"), nullptr);
}

TEST(GgufReader, RereadAndRewriteIsByteExact) {
  // parse -> copy every key and tensor into a new writer -> identical bytes.
  const auto bytes = sample_writer(64).to_bytes();
  auto r = File::parse(bytes);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ((*r)->alignment(), 64u);
  Writer w((*r)->alignment());
  for (const auto& kv : (*r)->metadata()) w.set(std::string(kv.key), OwnedValue::from(kv.value));
  for (const auto& t : (*r)->tensors())
    ASSERT_TRUE(w.add_tensor(std::string(t.name), t.type, t.ne, {t.data, t.n_bytes}).ok());
  EXPECT_EQ(w.to_bytes(), bytes);
}

TEST(GgufReader, AccessorErrorsNameKeyAndTypes) {
  const auto bytes = sample_writer().to_bytes();
  auto r = File::parse(bytes);
  ASSERT_TRUE(r.ok()) << r.message();
  const File& f = **r;
  auto expect_err = [](const auto& res, const std::string& sub) {
    ASSERT_FALSE(res.ok());
    EXPECT_NE(res.message().find(sub), std::string::npos) << res.message();
  };
  expect_err(f.get_uint("missing.key"), "missing key 'missing.key'");
  expect_err(f.get_int("missing.key"), "missing key");
  expect_err(f.get_float("missing.key"), "missing key");
  expect_err(f.get_bool("missing.key"), "missing key");
  expect_err(f.get_string("missing.key"), "missing key");
  expect_err(f.get_string_array("missing.key"), "missing key");
  expect_err(f.get_float_array("missing.key"), "missing key");
  expect_err(f.get_int_array("missing.key"), "missing key");
  expect_err(f.get_uint("general.architecture"), "key 'general.architecture' is STRING, expected an integer");
  expect_err(f.get_int("general.architecture"), "is STRING, expected an integer");
  expect_err(f.get_float("general.architecture"), "is STRING, expected a number");
  expect_err(f.get_bool("llama.block_count"), "key 'llama.block_count' is UINT32, expected BOOL");
  expect_err(f.get_string("llama.block_count"), "is UINT32, expected STRING");
  expect_err(f.get_uint("t.i32"), "is -7, expected a non-negative integer");
  expect_err(f.get_uint("t.f32"), "is FLOAT32, expected an integer");
  expect_err(f.get_string_array("t.scores"), "is ARRAY of FLOAT32, expected ARRAY of STRING");
  expect_err(f.get_float_array("tokenizer.ggml.tokens"), "is ARRAY of STRING, expected ARRAY of numbers");
  expect_err(f.get_int_array("t.scores"), "is ARRAY of FLOAT32, expected ARRAY of integers");
  expect_err(f.get_int_array("t.u8"), "is UINT8, expected ARRAY of integers");
  expect_err(f.get_uint_or("general.architecture", 3), "expected an integer");
  expect_err(f.get_float_or("t.bool", 3), "is BOOL, expected a number");
  EXPECT_EQ(*f.get_uint_or("absent", 3), 3u);
  EXPECT_EQ(*f.get_float_or("absent", 2.5), 2.5);
  EXPECT_EQ(*f.get_uint_or("llama.block_count", 3), 8u);
  EXPECT_EQ(*f.get_float("llama.block_count"), 8.0);  // integers widen to float
}

TEST(GgufReader, LargeUnsignedIsNotASignedInt) {
  Writer w;
  w.set("big", OwnedValue::u64(~0ull));
  const auto bytes = w.to_bytes();
  auto r = File::parse(bytes);
  ASSERT_TRUE(r.ok()) << r.message();
  auto i = (*r)->get_int("big");
  ASSERT_FALSE(i.ok());
  EXPECT_NE(i.message().find("too large"), std::string::npos);
}

TEST(GgufReader, OpenErrorsNameThePath) {
  auto r = File::open("/nonexistent/x.gguf");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("/nonexistent/x.gguf: cannot open"), std::string::npos) << r.message();
  auto d = File::open("/tmp");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.message().find("not a regular file"), std::string::npos) << d.message();
}

struct ModelExpect {
  const char* file;
  const char* arch;
  uint64_t blocks;
  uint64_t vocab;
};

class RealModel : public ::testing::TestWithParam<ModelExpect> {};

TEST_P(RealModel, ParsesAndEveryTensorIsInBounds) {
  const auto& p = GetParam();
  auto r = File::open(test::model_path(p.file));
  ASSERT_TRUE(r.ok()) << r.message();
  const File& f = **r;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(*f.get_string("general.architecture"), p.arch);
  EXPECT_EQ(*f.get_uint(std::string(p.arch) + ".block_count"), p.blocks);
  auto toks = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(toks.ok()) << toks.message();
  EXPECT_EQ(toks->size(), p.vocab);
  ASSERT_FALSE(f.tensors().empty());
  uint64_t end = 0;
  for (const auto& t : f.tensors()) {
    EXPECT_NE(t.data, nullptr);
    end = std::max(end, f.data_offset() + t.offset + t.n_bytes);
  }
  EXPECT_LE(end, f.file_size());
  EXPECT_NE(f.find_tensor("token_embd.weight"), nullptr);
}

INSTANTIATE_TEST_SUITE_P(
    Models, RealModel,
    ::testing::Values(ModelExpect{"velo-code-40m.Q8_0.gguf", "llama", 8, 32000},
                      ModelExpect{"velo-code-draft-12m.Q8_0.gguf", "llama", 4, 32000},
                      ModelExpect{"SmolLM2-135M-Instruct.Q4_1.gguf", "llama", 30, 49152},
                      ModelExpect{"gemma-3-270m-q4_k_m.gguf", "gemma3", 18, 262144}),
    [](const auto& info) {
      std::string s = info.param.file;
      for (auto& c : s)
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
      return s;
    });

}  // namespace
}  // namespace velo::gguf
