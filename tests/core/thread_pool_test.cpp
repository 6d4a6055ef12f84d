#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "core/cpu_info.h"

namespace velo {
namespace {

// Every index in [0, n) is visited exactly once, in contiguous chunks, at most one per thread.
void check_cover(ThreadPool& pool, int64_t n) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::vector<std::atomic<int>> chunks_by_thread(static_cast<size_t>(pool.size()));
  pool.parallel_for(n, [&](int64_t b, int64_t e, int t) {
    ASSERT_LT(b, e);
    ASSERT_GE(t, 0);
    ASSERT_LT(t, pool.size());
    chunks_by_thread[t]++;
    for (int64_t i = b; i < e; ++i) hits[i]++;
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
  for (auto& c : chunks_by_thread) ASSERT_LE(c.load(), 1);
}

TEST(ThreadPool, CoversRangeOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 2, 3, 7, 8, 9, 1000, 100003}) check_cover(pool, n);
  }
}

TEST(ThreadPool, ClampsThreadCount) {
  ThreadPool pool(0);
  EXPECT_EQ(pool.size(), 1);
  check_cover(pool, 10);
}

TEST(ThreadPool, WorkersRunChunksAndIndicesAreUnique) {
  ThreadPool pool(3);
  std::mutex mu;
  std::vector<std::thread::id> ids;
  std::vector<std::atomic<int>> in_use(3);
  std::atomic<bool> overlap{false};
  for (int k = 0; k < 200; ++k) {
    pool.parallel_chunks(30, [&](int64_t, int t) {
      if (in_use[t]++ != 0) overlap = true;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (std::find(ids.begin(), ids.end(), std::this_thread::get_id()) == ids.end())
          ids.push_back(std::this_thread::get_id());
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
      in_use[t]--;
    });
  }
  EXPECT_FALSE(overlap.load());
  EXPECT_GE(ids.size(), 2u);  // workers took part, not only the caller
}

TEST(ThreadPool, ManyBackToBackCalls) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  for (int k = 0; k < 20000; ++k)
    pool.parallel_for(64, [&](int64_t b, int64_t e, int) { total += e - b; });
  EXPECT_EQ(total.load(), 20000 * 64);
}

TEST(ThreadPool, WorkersWakeAfterSleeping) {
  ThreadPool pool(3);
  for (int k = 0; k < 3; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(60));  // past the spin phase
    check_cover(pool, 1000);
  }
}

TEST(ThreadPool, NestedCallRunsInline) {
  ThreadPool pool(2);
  std::atomic<int64_t> inner{0};
  pool.parallel_for(2, [&](int64_t, int64_t, int t) {
    pool.parallel_for(10, [&](int64_t b, int64_t e, int ti) {
      EXPECT_EQ(ti, t);
      inner += e - b;
    });
  });
  EXPECT_EQ(inner.load(), 20);
}

TEST(ThreadPool, ConcurrentSubmitters) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  auto submit = [&] {
    for (int k = 0; k < 2000; ++k)
      pool.parallel_for(10, [&](int64_t b, int64_t e, int) { total += e - b; });
  };
  std::thread a(submit), b(submit);
  a.join();
  b.join();
  EXPECT_EQ(total.load(), 2 * 2000 * 10);
}

TEST(ThreadPool, ParallelChunksEachOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 5, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_chunks(n, [&](int64_t c, int t) {
        ASSERT_LT(t, threads);
        hits[c]++;
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1);
    }
  }
}

TEST(CpuInfo, Counts) {
  EXPECT_GE(physical_cores(), 1);
  EXPECT_GE(logical_cpus(), physical_cores());
  EXPECT_FALSE(simd_path().empty());
}

}  // namespace
}  // namespace velo
