// SIMD tile kernels for the float weights (F32, F16, BF16)
// (FMA, F16C conversion).
#include "backend/cpu/matmul_kernels.h"
#include "backend/cpu/simd.h"

namespace velo::cpu::detail {

TileKernel tile_kernel_float(GgmlType) { return nullptr; }

}  // namespace velo::cpu::detail
