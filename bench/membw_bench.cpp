// Memory read bandwidth: multi-threaded streaming read of a buffer ≫ L3.
// usage: bench_membw [threads] [MiB]
#include <cstdio>
#include <cstdlib>

#include "backend/cpu/membw.h"
#include "core/cpu_info.h"

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : velo::physical_cores();
  const long mib = argc > 2 ? std::atol(argv[2]) : 1024;
  if (threads < 1 || threads > 1024 || mib < 1 || mib > (1 << 20)) {
    std::fprintf(stderr, "usage: bench_membw [threads 1..1024] [MiB]\n");
    return 2;
  }
  for (int t = 1; t <= threads; t = t == threads ? threads + 1 : std::min(threads, t * 2)) {
    velo::ThreadPool p(t);
    const double gbs = velo::cpu::measure_read_bandwidth_gbs(p, static_cast<size_t>(mib) << 20, 9);
    if (gbs <= 0) {
      std::fprintf(stderr, "bench_membw: cannot allocate %ld MiB\n", mib);
      return 1;
    }
    std::printf("read bandwidth, %d thread%s, %ld MiB buffer: %.1f GB/s (median of 9)\n", t,
                t == 1 ? "" : "s", mib, gbs);
  }
  return 0;
}
