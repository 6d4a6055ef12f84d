// Writer: argument checks, file output, and the streaming path used by quantize.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unistd.h>

#include "gguf/gguf.h"
#include "gguf/writer.h"

namespace velo::gguf {
namespace {

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("velo_gguf_" + std::to_string(::getpid()) + "_" + name)).string();
}

TEST(GgufWriter, RejectsBadTensors) {
  Writer w;
  std::vector<uint8_t> b(34);
  EXPECT_FALSE(w.add_tensor("", GgmlType::Q8_0, {32}, b).ok());
  EXPECT_FALSE(w.add_tensor(std::string(65, 'x'), GgmlType::Q8_0, {32}, b).ok());
  EXPECT_FALSE(w.add_tensor("t", GgmlType::Q8_0, {31}, b).ok());            // not whole blocks
  EXPECT_FALSE(w.add_tensor("t", GgmlType::Q8_0, {32, 2}, b).ok());         // too few bytes
  EXPECT_FALSE(w.add_tensor("t", GgmlType::Q8_0, {}, b).ok());              // no dims
  EXPECT_FALSE(w.add_tensor("t", GgmlType::Q8_0, {32, 1, 1, 1, 1}, b).ok());
  EXPECT_FALSE(w.add_tensor("t", static_cast<GgmlType>(4), {32}, b).ok());  // retired type id
  auto ok = w.add_tensor("t", GgmlType::Q8_0, {32}, b);
  ASSERT_TRUE(ok.ok()) << ok.message();
  auto dup = w.add_tensor("t", GgmlType::Q8_0, {32}, b);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.message().find("duplicate tensor name 't'"), std::string::npos);
}

TEST(GgufWriter, SetReplacesAndAlignmentKeyFollowsWriter) {
  Writer w(128);
  w.set("k", OwnedValue::u32(1));
  w.set("k", OwnedValue::string("two"));
  w.set("general.alignment", OwnedValue::u32(8));  // overridden by the writer's own alignment
  std::vector<uint8_t> b(4, 7);
  ASSERT_TRUE(w.add_tensor("a", GgmlType::F32, {1}, b).ok());
  ASSERT_TRUE(w.add_tensor("b", GgmlType::F32, {1}, b).ok());
  const auto bytes = w.to_bytes();
  auto r = File::parse(bytes);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ((*r)->metadata().size(), 2u);
  EXPECT_EQ(*(*r)->get_string("k"), "two");
  EXPECT_EQ(*(*r)->get_uint("general.alignment"), 128u);
  EXPECT_EQ((*r)->find_tensor("b")->offset, 128u);
  EXPECT_EQ((*r)->data_offset() % 128, 0u);
  EXPECT_TRUE(Writer(0).to_bytes().empty());
  EXPECT_FALSE(Writer(48).write(tmp_path("bad_align.gguf")).ok());
}

TEST(GgufWriter, StreamingWriteMatchesInMemoryBytes) {
  std::vector<uint8_t> a(64), c(34 * 3);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i);
  for (size_t i = 0; i < c.size(); ++i) c[i] = static_cast<uint8_t>(255 - i);
  Writer mem, stream;
  for (Writer* w : {&mem, &stream}) w->set("general.architecture", OwnedValue::string("llama"));
  ASSERT_TRUE(mem.add_tensor("a", GgmlType::F32, {16}, a).ok());
  ASSERT_TRUE(mem.add_tensor("c", GgmlType::Q8_0, {32, 3}, c).ok());
  ASSERT_TRUE(stream.add_tensor("a", GgmlType::F32, {16}, a).ok());
  ASSERT_TRUE(stream.declare_tensor("c", GgmlType::Q8_0, {32, 3}).ok());
  const std::string path = tmp_path("stream.gguf");
  auto s = stream.write_streaming(path, [&](size_t i, const Writer::Emit& emit) -> Status {
    EXPECT_EQ(i, 1u);
    for (size_t row = 0; row < 3; ++row) VELO_TRY(emit({c.data() + row * 34, 34}));  // one row at a time
    return {};
  });
  ASSERT_TRUE(s.ok()) << s.message();
  auto f = File::open(path);
  ASSERT_TRUE(f.ok()) << f.message();
  const auto want = mem.to_bytes();
  ASSERT_EQ((*f)->file_size(), want.size());
  EXPECT_EQ(std::memcmp((*f)->find_tensor("c")->data, c.data(), c.size()), 0);
  EXPECT_TRUE(std::equal(want.begin(), want.end(), (*f)->find_tensor("a")->data - (*f)->data_offset()));
  std::remove(path.c_str());
}

TEST(GgufWriter, StreamingProducerMustEmitExactSize) {
  Writer w;
  ASSERT_TRUE(w.declare_tensor("c", GgmlType::F32, {4}).ok());
  const std::string path = tmp_path("short.gguf");
  std::vector<uint8_t> b(20);
  auto few = w.write_streaming(path, [&](size_t, const Writer::Emit& emit) { return emit({b.data(), 12}); });
  ASSERT_FALSE(few.ok());
  EXPECT_NE(few.message().find("emitted 12 of 16 bytes"), std::string::npos) << few.message();
  auto many = w.write_streaming(path, [&](size_t, const Writer::Emit& emit) { return emit({b.data(), 20}); });
  ASSERT_FALSE(many.ok());
  EXPECT_NE(many.message().find("more than its 16 bytes"), std::string::npos) << many.message();
  auto plain = w.write(path);
  ASSERT_FALSE(plain.ok());
  EXPECT_NE(plain.message().find("declared"), std::string::npos);
  auto err = w.write_streaming(path, [&](size_t, const Writer::Emit&) -> Status { return make_error("boom"); });
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.message(), "boom");
  EXPECT_FALSE(Writer().write("/nonexistent-dir/x.gguf").ok());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace velo::gguf
