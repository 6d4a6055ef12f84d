#include "kv/kv_manager.h"

#include <gtest/gtest.h>

#include <numeric>

namespace velo::kv {
namespace {

std::vector<int32_t> toks(int32_t start, int32_t n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

#define EXPECT_INVARIANTS(m) \
  do { auto st_ = (m).check_invariants(); EXPECT_TRUE(st_) << st_.message(); } while (0)

TEST(KvManager, AllocatesBlocksAsTokensGrow) {
  KvManager m(8, 4);
  EXPECT_TRUE(m.allocate(1, 1));
  EXPECT_EQ(m.block_table(1).size(), 1u);
  EXPECT_TRUE(m.allocate(1, 4));
  EXPECT_EQ(m.block_table(1).size(), 1u);
  EXPECT_TRUE(m.allocate(1, 5));
  EXPECT_EQ(m.block_table(1).size(), 2u);
  EXPECT_TRUE(m.allocate(1, 3));  // never shrinks
  EXPECT_EQ(m.block_table(1).size(), 2u);
  EXPECT_EQ(m.pool().num_free(), 6);
  EXPECT_INVARIANTS(m);
}

TEST(KvManager, AllocationIsAllOrNothing) {
  KvManager m(4, 4);
  ASSERT_TRUE(m.allocate(1, 8));
  EXPECT_FALSE(m.allocate(2, 12));  // needs 3, 2 free
  EXPECT_FALSE(m.has(2));
  EXPECT_EQ(m.pool().num_free(), 2);
  EXPECT_TRUE(m.allocate(2, 8));
  EXPECT_FALSE(m.allocate(1, 9));
  EXPECT_EQ(m.block_table(1).size(), 2u);
  EXPECT_INVARIANTS(m);
}

TEST(KvManager, SharedPrefixIsFoundAndRefCounted) {
  KvManager m(16, 4);
  auto a = toks(0, 10);  // 2 full blocks + 2 tokens
  ASSERT_TRUE(m.allocate(1, 10));
  m.commit(1, a, 10);
  EXPECT_EQ(m.pool().num_cached(), 2);

  // Same first 8 tokens, then different.
  auto b = toks(0, 8);
  b.push_back(99);
  b.push_back(98);
  b.push_back(97);
  auto hit = m.find_prefix(b, static_cast<int32_t>(b.size()) - 1);
  ASSERT_EQ(hit.blocks.size(), 2u);
  EXPECT_EQ(hit.num_tokens(), 8);
  ASSERT_TRUE(m.allocate(2, 11, &hit));
  auto t1 = m.block_table(1), t2 = m.block_table(2);
  ASSERT_EQ(t2.size(), 3u);
  EXPECT_EQ(t1[0], t2[0]);
  EXPECT_EQ(t1[1], t2[1]);
  EXPECT_NE(t1[2], t2[2]);
  EXPECT_EQ(m.pool().ref_count(t1[0]), 2);
  EXPECT_INVARIANTS(m);

  // Freeing the first keeps the shared blocks alive for the second.
  m.free(1);
  EXPECT_EQ(m.pool().ref_count(t2[0]), 1);
  EXPECT_INVARIANTS(m);
  m.free(2);
  EXPECT_EQ(m.pool().num_free(), 16);
  // ... and still cached after everyone left.
  auto again = m.find_prefix(a, 9);
  EXPECT_EQ(again.blocks.size(), 2u);
  EXPECT_INVARIANTS(m);
}

TEST(KvManager, LastTokenIsNeverServedFromCache) {
  KvManager m(8, 4);
  auto a = toks(0, 8);  // exactly two full blocks
  ASSERT_TRUE(m.allocate(1, 8));
  m.commit(1, a, 8);
  m.free(1);
  // The same 8-token prompt may only reuse the first block: the limit 7 keeps
  // the last token (and so its whole block) to be computed.
  auto hit = m.find_prefix(a, 7);
  EXPECT_EQ(hit.num_tokens(), 4);
  // A longer prompt reuses both.
  auto longer = toks(0, 9);
  EXPECT_EQ(m.find_prefix(longer, 8).num_tokens(), 8);
}

TEST(KvManager, OnlyComputedFullBlocksAreRegistered) {
  KvManager m(8, 4);
  auto a = toks(0, 12);
  ASSERT_TRUE(m.allocate(1, 12));
  m.commit(1, a, 7);  // one full block computed
  EXPECT_EQ(m.pool().num_cached(), 1);
  m.commit(1, a, 12);
  EXPECT_EQ(m.pool().num_cached(), 3);
  EXPECT_INVARIANTS(m);
}

TEST(KvManager, HitOnFreeCachedBlocksCountsAgainstFreeSpace) {
  KvManager m(3, 2);
  auto a = toks(0, 6);
  ASSERT_TRUE(m.allocate(1, 6));
  m.commit(1, a, 6);
  m.free(1);
  EXPECT_EQ(m.pool().num_free(), 3);
  auto hit = m.find_prefix(a, 5);  // 2 blocks, both free (cached)
  ASSERT_EQ(hit.blocks.size(), 2u);
  // 2 hit blocks + 2 new blocks > 3 free blocks.
  EXPECT_FALSE(m.allocate(2, 8, &hit));
  EXPECT_FALSE(m.has(2));
  EXPECT_TRUE(m.allocate(2, 6, &hit));
  EXPECT_EQ(m.pool().num_free(), 0);
  EXPECT_INVARIANTS(m);
}

TEST(KvManager, DuplicateBlocksComputedTwiceStayPrivate) {
  KvManager m(8, 2);
  auto a = toks(0, 4);
  ASSERT_TRUE(m.allocate(1, 4));
  ASSERT_TRUE(m.allocate(2, 4));  // both computed the same prefix concurrently
  m.commit(1, a, 4);
  m.commit(2, a, 4);
  EXPECT_EQ(m.pool().num_cached(), 2);
  auto hit = m.find_prefix(toks(0, 5), 4);
  ASSERT_EQ(hit.blocks.size(), 2u);
  EXPECT_EQ(hit.blocks[0], m.block_table(1)[0]);
  m.free(1);
  m.free(2);
  EXPECT_INVARIANTS(m);
}

TEST(KvManager, FreeReleasesTailFirst) {
  KvManager m(4, 1);
  auto a = toks(0, 3);
  ASSERT_TRUE(m.allocate(1, 3));
  m.commit(1, a, 3);
  std::vector<int32_t> t(m.block_table(1).begin(), m.block_table(1).end());
  m.free(1);
  auto fl = m.pool().free_list();  // the never-used block first (uncached), then tail..head
  ASSERT_EQ(fl.size(), 4u);
  EXPECT_EQ(fl[1], t[2]);
  EXPECT_EQ(fl[2], t[1]);
  EXPECT_EQ(fl[3], t[0]);
}

}  // namespace
}  // namespace velo::kv
