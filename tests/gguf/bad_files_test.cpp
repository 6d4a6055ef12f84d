// The malformed corpus (tests/data/gguf_bad, written by make_bad.py): every bad
// file is rejected with a message naming its problem; the baselines parse.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "gguf/gguf.h"
#include "gguf/writer.h"

namespace velo::gguf {
namespace {

namespace fs = std::filesystem;
const fs::path kDir = fs::path(VELO_TEST_DATA_DIR) / "gguf_bad";

std::map<std::string, std::string> expected() {
  std::map<std::string, std::string> m;
  std::ifstream in(kDir / "expected.txt");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto tab = line.find('\t');
    if (tab == std::string::npos) continue;
    m[line.substr(0, tab)] = line.substr(tab + 1);
  }
  return m;
}

TEST(GgufBadFiles, EachIsRejectedWithItsReason) {
  const auto exp = expected();
  ASSERT_GE(exp.size(), 40u) << "expected.txt missing or short in " << kDir;
  for (const auto& [name, sub] : exp) {
    const std::string path = (kDir / name).string();
    auto r = File::open(path);
    ASSERT_FALSE(r.ok()) << name << " was accepted";
    const std::string& msg = r.message();
    EXPECT_NE(msg.find(sub), std::string::npos) << name << ": got '" << msg << "', want '" << sub << "'";
    EXPECT_EQ(msg.find('\n'), std::string::npos) << name << ": message is not one line";
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << name << ": message does not start with the path";
  }
}

TEST(GgufBadFiles, EveryFileInTheCorpusIsListedOrGood) {
  const auto exp = expected();
  std::set<std::string> good;
  for (const auto& e : fs::directory_iterator(kDir)) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != ".gguf") continue;
    if (name.rfind("good_", 0) == 0) {
      good.insert(name);
      continue;
    }
    EXPECT_TRUE(exp.count(name)) << name << " has no expected message in expected.txt";
  }
  EXPECT_EQ(good.size(), 4u);
  for (const auto& name : good) {
    auto r = File::open((kDir / name).string());
    ASSERT_TRUE(r.ok()) << name << ": " << r.message();
  }
  auto all = File::open((kDir / "good_all_types.gguf").string());
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)->alignment(), 64u);
  EXPECT_EQ((*all)->find_tensor("b")->offset, 64u);
  EXPECT_EQ((*all)->find("nest")->elems[0].elems[0].elems[0].num.u, 7u);
  auto v2 = File::open((kDir / "good_v2.gguf").string());
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ((*v2)->version(), 2u);
}

// Every prefix of a valid file that cuts into its tensor data or earlier is
// rejected cleanly; only the trailing alignment padding may be missing.
TEST(GgufBadFiles, EveryTruncationIsRejected) {
  Writer w;
  w.set("general.architecture", OwnedValue::string("llama"));
  w.set("tokenizer.ggml.tokens", OwnedValue::string_array({"a", "b"}));
  std::vector<uint8_t> data(34 * 2, 1);
  ASSERT_TRUE(w.add_tensor("t", GgmlType::Q8_0, {32, 2}, data).ok());
  const auto bytes = w.to_bytes();
  auto full = File::parse(bytes);
  ASSERT_TRUE(full.ok()) << full.message();
  const TensorInfo& t = (*full)->tensors()[0];
  const size_t end = (*full)->data_offset() + t.offset + t.n_bytes;
  ASSERT_LT(end, bytes.size());  // the writer pads the last tensor
  for (size_t n = 0; n <= bytes.size(); ++n) {
    auto r = File::parse(std::span(bytes.data(), n));
    EXPECT_EQ(r.ok(), n >= end) << "prefix of " << n << " bytes";
  }
}

// Scalar arrays are capped by a Value budget (file/4 + 1M) so a large file of
// one-byte elements cannot make the reader allocate 64 bytes per file byte.
TEST(GgufBadFiles, ValueBudgetBoundsMemory) {
  const uint64_t count = 3u << 20;  // 3M UINT8 elements in a ~3 MiB file: budget is ~1.75M
  std::vector<uint8_t> b;
  auto put = [&](const void* p, size_t n) { b.insert(b.end(), (const uint8_t*)p, (const uint8_t*)p + n); };
  uint32_t magic = 0x46554747, ver = 3, arr = 9, u8 = 0;
  uint64_t nt = 0, nkv = 1, klen = 1;
  put(&magic, 4); put(&ver, 4); put(&nt, 8); put(&nkv, 8);
  put(&klen, 8); put("x", 1); put(&arr, 4); put(&u8, 4); put(&count, 8);
  b.resize(b.size() + count, 0);
  auto r = File::parse(b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("too many elements"), std::string::npos) << r.message();
}

}  // namespace
}  // namespace velo::gguf
