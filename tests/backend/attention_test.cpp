// Paged attention against a dense reference: random K/V written through
// shuffled block tables, several sequences in one call, GQA, sliding window,
// soft cap, single-token and multi-token steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/kv_cache.h"
#include "core/thread_pool.h"
#include "quant/fp16.h"

namespace velo::cpu {
namespace {

float h(float x) { return fp16_to_fp32(fp32_to_fp16(x)); }

struct Seq {
  int start = 0, n = 0;
  std::vector<int32_t> blocks;
  std::vector<float> k, v;  // [start + n][kv_heads * hd] all positions
  std::vector<float> q;     // [n][heads * hd]
  std::vector<float> out;   // [n][heads * hd]
};

// Dense causal attention in double over F16-rounded q/K/V.
std::vector<double> dense(const AttnParams& p, const Seq& s) {
  const int hd = p.head_dim, group = p.n_heads / p.n_kv_heads;
  std::vector<double> out(static_cast<size_t>(s.n) * p.n_heads * hd, 0.0);
  for (int t = 0; t < s.n; ++t) {
    const int pos = s.start + t;
    const int lo = p.window > 0 ? std::max(0, pos - p.window + 1) : 0;
    for (int hh = 0; hh < p.n_heads; ++hh) {
      const int kvh = hh / group;
      std::vector<double> sc(pos + 1 - lo);
      double mx = -1e300;
      for (int j = lo; j <= pos; ++j) {
        double d = 0;
        for (int i = 0; i < hd; ++i)
          d += double(h(s.q[(t * p.n_heads + hh) * hd + i])) * h(s.k[(j * p.n_kv_heads + kvh) * hd + i]);
        if (p.softcap > 0) d = p.softcap * std::tanh(d / p.softcap);
        d *= p.scale;
        sc[j - lo] = d;
        mx = std::max(mx, d);
      }
      double sum = 0;
      for (auto& x : sc) sum += (x = std::exp(x - mx));
      for (int j = lo; j <= pos; ++j)
        for (int i = 0; i < hd; ++i)
          out[(t * p.n_heads + hh) * hd + i] += sc[j - lo] / sum * h(s.v[(j * p.n_kv_heads + kvh) * hd + i]);
    }
  }
  return out;
}

void run_case(int heads, int kv_heads, int hd, int window, float softcap, std::vector<std::pair<int, int>> shape,
              int threads, uint32_t seed) {
  const int block = 4, max_ctx = 64, num_blocks = 64;
  AttnParams p{heads, kv_heads, hd, 1.0f / std::sqrt(float(hd)), softcap, window};
  auto cache = KvCache::create(1, num_blocks, block, kv_heads, hd);
  ASSERT_TRUE(cache.ok());
  KvLayerView kv = cache->layer(0);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<int32_t> pool_ids(num_blocks);
  std::iota(pool_ids.begin(), pool_ids.end(), 0);
  std::shuffle(pool_ids.begin(), pool_ids.end(), rng);
  int next_block = 0;

  std::vector<Seq> seqs(shape.size());
  for (size_t si = 0; si < shape.size(); ++si) {
    Seq& s = seqs[si];
    s.start = shape[si].first;
    s.n = shape[si].second;
    const int total = s.start + s.n;
    for (int b = 0; b < (total + block - 1) / block; ++b) s.blocks.push_back(pool_ids[next_block++]);
    s.k.resize(total * kv_heads * hd);
    s.v.resize(total * kv_heads * hd);
    s.q.resize(s.n * heads * hd);
    s.out.assign(s.n * heads * hd, NAN);
    for (auto& x : s.k) x = 2.0f * nd(rng);
    for (auto& x : s.v) x = nd(rng);
    for (auto& x : s.q) x = 2.0f * nd(rng);
    for (int pos = 0; pos < total; ++pos)
      kv_store(kv, s.blocks.data(), pos, &s.k[pos * kv_heads * hd], &s.v[pos * kv_heads * hd]);
  }
  std::vector<AttnSeq> views;
  for (auto& s : seqs) views.push_back(AttnSeq{s.q.data(), s.out.data(), s.n, s.start, s.blocks.data()});
  ThreadPool tp(threads);
  std::vector<float> scratch(attention_scratch_floats(tp.size(), max_ctx, hd));
  paged_attention(p, kv, views, heads * hd, heads * hd, max_ctx, scratch.data(), tp);

  for (const auto& s : seqs) {
    const auto ref = dense(p, s);
    for (size_t i = 0; i < ref.size(); ++i)
      // Probabilities are rounded to F16 (as in llama.cpp): ~1e-3 relative.
      ASSERT_NEAR(s.out[i], ref[i], 3e-3 * (1 + std::fabs(ref[i]))) << "start " << s.start << " i " << i;
  }
}

TEST(PagedAttention, SingleSequencePrefill) { run_case(4, 4, 64, 0, 0, {{0, 23}}, 2, 1); }
TEST(PagedAttention, SingleTokenDecode) { run_case(8, 2, 64, 0, 0, {{37, 1}}, 2, 2); }
TEST(PagedAttention, ManySequencesGqa) { run_case(6, 2, 32, 0, 0, {{0, 5}, {12, 1}, {3, 9}, {50, 2}}, 3, 3); }
TEST(PagedAttention, SlidingWindow) { run_case(4, 1, 16, 5, 0, {{0, 20}, {30, 3}}, 2, 4); }
TEST(PagedAttention, SlidingWindowDecode) { run_case(4, 1, 16, 7, 0, {{40, 1}}, 1, 5); }
TEST(PagedAttention, SoftCap) { run_case(2, 1, 64, 0, 20.0f, {{0, 10}}, 2, 6); }

TEST(PagedAttention, ThreadCountDoesNotChangeResults) {
  // Same inputs, 1 vs 3 threads: bit-identical.
  auto run = [](int threads) {
    const int heads = 4, hd = 32;
    auto cache = KvCache::create(1, 8, 8, 2, hd);
    KvLayerView kv = cache->layer(0);
    std::mt19937 rng(7);
    std::normal_distribution<float> nd;
    std::vector<int32_t> blocks = {5, 2, 7};
    std::vector<float> k(2 * hd), v(2 * hd), q(10 * heads * hd), out(10 * heads * hd);
    for (int pos = 0; pos < 20; ++pos) {
      for (auto& x : k) x = nd(rng);
      for (auto& x : v) x = nd(rng);
      kv_store(kv, blocks.data(), pos, k.data(), v.data());
    }
    for (auto& x : q) x = nd(rng);
    std::vector<AttnSeq> views = {AttnSeq{q.data(), out.data(), 10, 10, blocks.data()}};
    ThreadPool tp(threads);
    std::vector<float> scratch(attention_scratch_floats(tp.size(), 32, hd));
    paged_attention(AttnParams{heads, 2, hd, 0.2f, 0, 0}, kv, views, heads * hd, heads * hd, 32, scratch.data(), tp);
    return out;
  };
  EXPECT_EQ(run(1), run(3));
}

TEST(KvCache, CopyBlockCopiesEveryLayer) {
  auto c = KvCache::create(3, 4, 2, 1, 16);
  ASSERT_TRUE(c.ok());
  std::vector<float> k(16, 1.5f), v(16, -2.0f);
  int32_t table[] = {1};
  for (int il = 0; il < 3; ++il) kv_store(c->layer(il), table, 1, k.data(), v.data());
  c->copy_block(1, 3);
  for (int il = 0; il < 3; ++il) {
    EXPECT_EQ(fp16_to_fp32(c->layer(il).k_at(3, 1)[5]), 1.5f);
    EXPECT_EQ(fp16_to_fp32(c->layer(il).v_at(3, 1)[15]), -2.0f);
  }
}

TEST(KvCache, RejectsBadSizes) {
  EXPECT_FALSE(KvCache::create(0, 4, 2, 1, 16).ok());
  EXPECT_FALSE(KvCache::create(1 << 20, 1 << 24, 4096, 64, 256).ok());
}

}  // namespace
}  // namespace velo::cpu
