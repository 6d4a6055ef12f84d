// The two ceilings a GPU benchmark is measured against, read off the device
// itself rather than a datasheet: memory bandwidth (a large device-to-device
// copy, bytes read + written) and dense BF16 tensor-core throughput (a large
// cuBLAS GEMM on random data).
#pragma once
#include "core/result.h"

namespace velo::cuda {

struct Roofline {
  double copy_gbs = 0;      // GB/s (1e9 B/s), median of several 1 GiB copies
  double bf16_tflops = 0;   // TFLOP/s, median of several 8192^3 BF16 GEMMs (F32 accumulate)
};

Result<Roofline> measure_roofline(int device = 0);

}  // namespace velo::cuda
