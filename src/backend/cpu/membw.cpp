#include "backend/cpu/membw.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/cpu/simd.h"

namespace velo::cpu {
namespace {

// Sum of the bytes' 64-bit words, reading four streams at once (quarters of the
// range) with software prefetch, the way the matvec kernels read weight rows: one
// plain stream per core does not keep enough misses in flight to reach the
// machine's bandwidth.
uint64_t read_range(const uint8_t* p, size_t n) {
  const size_t q = n / 4 / 128 * 128;
  uint64_t sum = 0;
#if VELO_SIMD_AVX2
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < q; i += 64) {
    for (int s = 0; s < 4; ++s) {
      const uint8_t* line = p + s * q + i;
      _mm_prefetch(reinterpret_cast<const char*>(line) + 1024, _MM_HINT_T0);  // as the kernels do
      __m256i& acc = s == 0 ? a0 : s == 1 ? a1 : s == 2 ? a2 : a3;
      acc = _mm256_add_epi64(acc, _mm256_load_si256(reinterpret_cast<const __m256i*>(line)));
      acc = _mm256_add_epi64(acc, _mm256_load_si256(reinterpret_cast<const __m256i*>(line + 32)));
    }
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  uint64_t lanes[4];
  std::memcpy(lanes, &s, sizeof(lanes));
  sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
#else
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i < q; i += 8) {
    uint64_t v[4];
    for (int s = 0; s < 4; ++s) std::memcpy(&v[s], p + s * q + i, 8);
    s0 += v[0]; s1 += v[1]; s2 += v[2]; s3 += v[3];
  }
  sum = s0 + s1 + s2 + s3;
#endif
  for (size_t i = 4 * q; i < n; ++i) sum += p[i];
  return sum;
}

}  // namespace

double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes, int runs) {
  bytes = std::max<size_t>(bytes / 4096 * 4096, 4096);
  auto* buf = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes));
  if (!buf) return 0;
  // Touch every page with non-zero data (untouched pages all map the zero page).
  pool.parallel_for(static_cast<int64_t>(bytes / 4096), [&](int64_t b, int64_t e, int) {
    std::memset(buf + b * 4096, 0x5a, static_cast<size_t>(e - b) * 4096);
  });
  std::atomic<uint64_t> sink{0};
  std::vector<double> gbs;
  const int64_t lines = static_cast<int64_t>(bytes / 64);
  for (int r = 0; r < std::max(1, runs) + 1; ++r) {  // first run warms up
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(lines, [&](int64_t b, int64_t e, int) {
      sink.fetch_add(read_range(buf + b * 64, static_cast<size_t>(e - b) * 64), std::memory_order_relaxed);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) gbs.push_back(static_cast<double>(bytes) / s / 1e9);
  }
  std::free(buf);
  std::sort(gbs.begin(), gbs.end());
  return sink.load() == 1 ? -1 : gbs[gbs.size() / 2];  // sink read keeps the loads alive
}

}  // namespace velo::cpu
