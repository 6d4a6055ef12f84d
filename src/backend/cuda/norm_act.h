// The residual add + RMSNorm of ops.h (add_rmsnorm), and the GLU (glu), each also
// converting its output for the matmul (group) that reads it (Matmul::act_prep: Q8 /
// Q8_K quantization or fp16 / bf16 rounding into the Matmul's scratch), so the decode
// matvec after it waits on no conversion launch of its own. The conversion is
// act_quant_dev.cuh's code: the same bytes as the standalone kernels (and the CPU's)
// on the same values.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/matmul.h"
#include "backend/cuda/ops.h"

namespace velo::cuda {

// add_rmsnorm(x, d, d_w, w, y, rows, n, eps), then y converted per `act` (kNone: nothing).
// Launched as a programmatic dependent (it waits for the kernel before it ahead of any
// access) that lets the next kernel launch at once: the matvec after it loads its first
// weights while the norm runs. Then call run_group(..., x_prepared = act.kind != kNone).
void add_rmsnorm_act(float* x, const float* d, const float* d_w, const float* w, float* y, int64_t rows, int n,
                     float eps, const Matmul::ActPrep& act, cudaStream_t stream);

// glu(kind, gate, up, out, rows, n), then out converted per `act` (kNone: plain glu), for
// the w_down matvec: run_group({w_down}, 1, out, rows, x_prepared = true). Same bits as glu
// followed by the matvec's own conversion; a programmatic dependent launch like the above.
void glu_act(Glu kind, const float* gate, const float* up, float* out, int64_t rows, int n,
             const Matmul::ActPrep& act, cudaStream_t stream);

}  // namespace velo::cuda
