// CPU matmul throughput per weight type.
//   matvec (m = 1): GB/s of weight bytes, from DRAM (cycling through copies ≫ L3)
//   and L3-resident (one matrix), and % of the measured DRAM read bandwidth;
//   prompt (m = 512): GFLOP/s. Also ThreadPool dispatch latency.
// usage: bench_matmul [threads] [TYPE ...]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/matmul.h"
#include "backend/cpu/membw.h"
#include "core/cpu_info.h"
#include "quant/quant.h"

namespace {

using velo::GgmlType;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Median over `reps` timings of `fn`, each timing averaging enough calls to last ≥ 20 ms.
template <class Fn>
double time_per_call(Fn&& fn, int reps = 7) {
  int n = 1;
  for (;;) {
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) fn();
    if (seconds_since(t0) > 0.02 || n > (1 << 20)) break;
    n *= 2;
  }
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) fn();
    t.push_back(seconds_since(t0) / n);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Shape { int64_t rows, cols; };

void bench_type(GgmlType type, Shape s, velo::ThreadPool& pool, double dram_gbs) {
  if (!velo::row_bytes(type, s.cols)) return;  // cols not a whole number of blocks
  const uint64_t rb = *velo::row_bytes(type, s.cols);
  const size_t mat_bytes = rb * s.rows;
  // One matrix quantized with the reference quantizer, copied until the set is ≫ L3.
  std::vector<uint8_t> one(mat_bytes);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  std::vector<float> row(s.cols);
  for (int64_t r = 0; r < s.rows; ++r) {
    for (auto& v : row) v = nd(rng);
    if (!velo::quant::quantize_row(type, row.data(), one.data() + r * rb, s.cols).ok()) {
      std::printf("%-5s quantize failed\n", velo::type_name(type).c_str());
      return;
    }
  }
  const size_t copies = std::max<size_t>(1, (size_t{256} << 20) / mat_bytes);
  std::vector<uint8_t> many(mat_bytes * copies);
  for (size_t c = 0; c < copies; ++c) std::memcpy(many.data() + c * mat_bytes, one.data(), mat_bytes);

  const int64_t m_big = 512;
  std::vector<float> x(m_big * s.cols), y(m_big * s.rows);
  for (auto& v : x) v = nd(rng) * 20;

  size_t next = 0;
  const double t_cold = time_per_call([&] {
    velo::cpu::WeightMatrix w{type, many.data() + (next++ % copies) * mat_bytes, s.rows, s.cols};
    velo::cpu::matmul(w, x.data(), 1, y.data(), pool);
  });
  const velo::cpu::WeightMatrix hot{type, one.data(), s.rows, s.cols};
  const double t_hot = time_per_call([&] { velo::cpu::matmul(hot, x.data(), 1, y.data(), pool); });
  const double t_big = time_per_call([&] { velo::cpu::matmul(hot, x.data(), m_big, y.data(), pool); }, 3);
  const double gbs_cold = mat_bytes / t_cold / 1e9;
  std::printf("%-5s %5lldx%-5lld matvec %7.1f us  DRAM %6.1f GB/s (%3.0f%% of %.1f)  L3 %6.1f GB/s   m=512 %7.1f GFLOP/s\n",
              velo::type_name(type).c_str(), static_cast<long long>(s.rows), static_cast<long long>(s.cols),
              t_cold * 1e6, gbs_cold, 100 * gbs_cold / dram_gbs, dram_gbs, mat_bytes / t_hot / 1e9,
              2.0 * s.rows * s.cols * m_big / t_big / 1e9);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : velo::physical_cores();
  if (threads < 1 || threads > 1024) {
    std::fprintf(stderr, "usage: bench_matmul [threads] [TYPE ...]\n");
    return 2;
  }
  std::vector<GgmlType> types;
  for (int i = 2; i < argc; ++i) {
    auto t = velo::type_from_name(argv[i]);
    if (!t || !velo::cpu::matmul_supported(*t)) {
      std::fprintf(stderr, "bench_matmul: unsupported type '%s'\n", argv[i]);
      return 2;
    }
    types.push_back(*t);
  }
  if (types.empty())
    types = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
             GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
             GgmlType::F16,  GgmlType::BF16, GgmlType::F32};

  velo::ThreadPool pool(threads);
  const double dispatch = time_per_call([&] { pool.parallel_for(threads, [](int64_t, int64_t, int) {}); }, 9);
  const double dram = velo::cpu::measure_read_bandwidth_gbs(pool);
  std::printf("threads %d, simd %s, parallel_for dispatch %.2f us, DRAM read %.1f GB/s\n", threads,
              velo::simd_path().c_str(), dispatch * 1e6, dram);
  for (Shape s : {Shape{2048, 2048}, Shape{1536, 576}, Shape{576, 1536}})
    for (GgmlType t : types) bench_type(t, s, pool, dram);
  return 0;
}
