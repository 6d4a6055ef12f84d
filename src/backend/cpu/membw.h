// Memory read bandwidth of this machine: the roofline a matvec can reach.
#pragma once
#include <cstddef>

#include "core/thread_pool.h"

namespace velo::cpu {

// Streams a buffer of `bytes` (≫ L3) with every thread of `pool` reading its own
// contiguous part, `runs` times; returns the median in GB/s (1e9 bytes/s), or 0
// when the buffer cannot be allocated.
double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes = size_t{512} << 20, int runs = 7);

}  // namespace velo::cpu
