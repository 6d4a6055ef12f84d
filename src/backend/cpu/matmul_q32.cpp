// SIMD tile kernels for the 32-element block quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)
// against ActQ8 activations.
#include "backend/cpu/matmul_kernels.h"
#include "backend/cpu/simd.h"

namespace velo::cpu::detail {

TileKernel tile_kernel_q32(GgmlType) { return nullptr; }

}  // namespace velo::cpu::detail
