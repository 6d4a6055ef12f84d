#include "kv/block_pool.h"

#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <set>

namespace velo::kv {
namespace {

std::vector<int32_t> toks(int32_t start, int32_t n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

TEST(BlockHash, DependsOnParentTokensAndOrder) {
  auto a = toks(0, 16);
  auto b = a;
  std::swap(b[3], b[4]);
  EXPECT_EQ(hash_block(kRootHash, a), hash_block(kRootHash, a));
  EXPECT_NE(hash_block(kRootHash, a), hash_block(kRootHash, b));
  EXPECT_NE(hash_block(kRootHash, a), hash_block(kRootHash + 1, a));
  auto c = a;
  c[15] = 16;  // the last token matters too
  EXPECT_NE(hash_block(kRootHash, a), hash_block(kRootHash, c));
  // Zero tokens of different counts are different blocks.
  std::vector<int32_t> z1(4, 0), z2(5, 0);
  EXPECT_NE(hash_block(kRootHash, z1), hash_block(kRootHash, z2));
}

TEST(BlockHash, NoCollisionsOverManyRandomBlocks) {
  std::mt19937 rng(7);
  std::set<BlockHash> seen;
  for (int i = 0; i < 50000; ++i) {
    std::vector<int32_t> t(8);
    for (auto& x : t) x = static_cast<int32_t>(rng() % 4);  // tiny alphabet: many near-duplicates
    seen.insert(hash_block(static_cast<BlockHash>(i), t));
  }
  EXPECT_EQ(seen.size(), 50000u);
}

TEST(BlockPool, AllocateUntilEmptyThenRelease) {
  BlockPool p(4, 16);
  EXPECT_EQ(p.num_free(), 4);
  EXPECT_DOUBLE_EQ(p.usage(), 0.0);
  std::set<int32_t> got;
  for (int i = 0; i < 4; ++i) {
    auto b = p.allocate();
    ASSERT_TRUE(b);
    EXPECT_EQ(p.ref_count(*b), 1);
    got.insert(*b);
  }
  EXPECT_EQ(got.size(), 4u);
  EXPECT_FALSE(p.allocate());
  EXPECT_DOUBLE_EQ(p.usage(), 1.0);
  ASSERT_TRUE(p.check_invariants()) << p.check_invariants().message();
  p.release(2);
  EXPECT_EQ(p.num_free(), 1);
  EXPECT_DOUBLE_EQ(p.usage(), 0.75);
  EXPECT_EQ(p.allocate(), std::optional<int32_t>(2));
  ASSERT_TRUE(p.check_invariants()) << p.check_invariants().message();
}

TEST(BlockPool, RefCountsAndTouch) {
  BlockPool p(3, 4);
  int32_t b = *p.allocate();
  p.touch(b);
  EXPECT_EQ(p.ref_count(b), 2);
  p.release(b);
  EXPECT_EQ(p.ref_count(b), 1);
  EXPECT_EQ(p.num_free(), 2);
  p.release(b);
  EXPECT_EQ(p.ref_count(b), 0);
  EXPECT_EQ(p.num_free(), 3);
  // Touching a free block takes it out of the free list.
  p.touch(b);
  EXPECT_EQ(p.num_free(), 2);
  auto fl = p.free_list();
  EXPECT_EQ(std::count(fl.begin(), fl.end(), b), 0);
  ASSERT_TRUE(p.check_invariants()) << p.check_invariants().message();
}

TEST(BlockPool, CachedBlocksStayFindableUntilEvictedInLruOrder) {
  BlockPool p(3, 2);
  std::vector<int32_t> ids;
  std::vector<BlockHash> hs;
  for (int i = 0; i < 3; ++i) {
    int32_t b = *p.allocate();
    auto t = toks(10 * i, 2);
    BlockHash h = hash_block(kRootHash, t);
    EXPECT_TRUE(p.register_full(b, h, kRootHash, t));
    ids.push_back(b);
    hs.push_back(h);
  }
  EXPECT_EQ(p.num_cached(), 3);
  // Release in order 1, 0, 2: LRU order of the free list is that order.
  p.release(ids[1]);
  p.release(ids[0]);
  p.release(ids[2]);
  EXPECT_EQ(p.free_list(), (std::vector<int32_t>{ids[1], ids[0], ids[2]}));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(p.lookup(hs[i], kRootHash, toks(10 * i, 2)), ids[i]);
  // A hit on block 1 (touch) then release moves it to the tail.
  p.touch(ids[1]);
  p.release(ids[1]);
  EXPECT_EQ(p.free_list(), (std::vector<int32_t>{ids[0], ids[2], ids[1]}));
  // Allocation evicts from the head: block 0 loses its hash first.
  EXPECT_EQ(p.allocate(), ids[0]);
  EXPECT_FALSE(p.lookup(hs[0], kRootHash, toks(0, 2)));
  EXPECT_EQ(p.lookup(hs[2], kRootHash, toks(20, 2)), ids[2]);
  EXPECT_EQ(p.num_cached(), 2);
  ASSERT_TRUE(p.check_invariants()) << p.check_invariants().message();
}

TEST(BlockPool, UncachedBlocksAreReusedBeforeCachedOnes) {
  BlockPool p(2, 2);
  int32_t a = *p.allocate(), b = *p.allocate();
  auto t = toks(0, 2);
  ASSERT_TRUE(p.register_full(a, hash_block(kRootHash, t), kRootHash, t));
  p.release(a);  // cached: tail
  p.release(b);  // uncached: head
  EXPECT_EQ(p.allocate(), b);
  EXPECT_TRUE(p.lookup(hash_block(kRootHash, t), kRootHash, t));
}

TEST(BlockPool, LookupComparesParentAndTokens) {
  BlockPool p(2, 2);
  int32_t a = *p.allocate();
  auto t = toks(5, 2);
  BlockHash h = hash_block(kRootHash, t);
  ASSERT_TRUE(p.register_full(a, h, kRootHash, t));
  // Same hash value but different content (a forged collision) is not a hit.
  EXPECT_FALSE(p.lookup(h, kRootHash, toks(6, 2)));
  EXPECT_FALSE(p.lookup(h, kRootHash + 1, t));
  EXPECT_EQ(p.lookup(h, kRootHash, t), a);
  // A second block with the same hash stays uncached.
  int32_t b = *p.allocate();
  EXPECT_FALSE(p.register_full(b, h, kRootHash, t));
  EXPECT_FALSE(p.hash_of(b));
  EXPECT_EQ(p.hash_of(a), std::optional<BlockHash>(h));
}

TEST(BlockPool, ClearCacheDropsFreeHashesOnly) {
  BlockPool p(2, 1);
  int32_t a = *p.allocate(), b = *p.allocate();
  std::vector<int32_t> ta{1}, tb{2};
  p.register_full(a, hash_block(kRootHash, ta), kRootHash, ta);
  p.register_full(b, hash_block(kRootHash, tb), kRootHash, tb);
  p.release(a);
  p.clear_cache();
  EXPECT_FALSE(p.hash_of(a));
  EXPECT_TRUE(p.hash_of(b));  // still in use
  ASSERT_TRUE(p.check_invariants()) << p.check_invariants().message();
}

TEST(BlockPool, PrefixCounters) {
  BlockPool p(1, 1);
  p.record_query(100, 32);
  p.record_query(10, 0);
  EXPECT_EQ(p.prefix_queries(), 110u);
  EXPECT_EQ(p.prefix_hits(), 32u);
}

TEST(BlockPool, RandomOperationsKeepInvariants) {
  std::mt19937 rng(123);
  BlockPool p(32, 4);
  std::vector<int32_t> held;  // one entry per reference we hold
  for (int step = 0; step < 20000; ++step) {
    int op = static_cast<int>(rng() % 4);
    if (op == 0) {
      if (auto b = p.allocate()) {
        held.push_back(*b);
      } else {
        EXPECT_EQ(p.num_free(), 0);
      }
    } else if (op == 1 && !held.empty()) {
      size_t i = rng() % held.size();
      p.release(held[i]);
      held[i] = held.back();
      held.pop_back();
    } else if (op == 2 && !held.empty()) {
      int32_t b = held[rng() % held.size()];
      p.touch(b);
      held.push_back(b);
    } else if (op == 3 && !held.empty()) {
      int32_t b = held[rng() % held.size()];
      std::vector<int32_t> t(4);
      for (auto& x : t) x = static_cast<int32_t>(rng() % 3);
      BlockHash parent = rng() % 2;
      p.register_full(b, hash_block(parent, t), parent, t);
    }
    if (step % 97 == 0) ASSERT_TRUE(p.check_invariants()) << "step " << step << ": " << p.check_invariants().message();
  }
  std::vector<int32_t> refs(32, 0);
  for (int32_t b : held) ++refs[b];
  for (int32_t b = 0; b < 32; ++b) EXPECT_EQ(p.ref_count(b), refs[b]);
  ASSERT_TRUE(p.check_invariants()) << p.check_invariants().message();
}

}  // namespace
}  // namespace velo::kv
