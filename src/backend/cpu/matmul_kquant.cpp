// SIMD tile kernels for the K-quants (Q4_K, Q5_K, Q6_K)
// against Q8_K activations.
#include "backend/cpu/matmul_kernels.h"
#include "backend/cpu/simd.h"

namespace velo::cpu::detail {

TileKernel tile_kernel_kquant(GgmlType) { return nullptr; }

}  // namespace velo::cpu::detail
