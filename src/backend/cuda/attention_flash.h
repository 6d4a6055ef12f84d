// Fused (flash) prefill attention: PrefillAttention's default path for
// head_dim 64 and 128 (attention_flash.cu). Internal to the CUDA backend.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/ops.h"

namespace velo::cuda::prefill {

// The rows per warp flash() picks for n query tokens on the current device: 32 when
// that still gives at least one full wave of CTAs, else 16.
int flash_warp_rows(const AttnArgs& a, int n);

// Shapes the fused kernel serves (the cuBLAS path takes the others).
bool flash_supported(const AttnArgs& a);

// Same contract as PrefillAttention::run: n query tokens at positions start .. start+n-1
// (rows of q / out, q_stride floats apart, heads concatenated) over keys 0 .. start+n-1 of
// one sequence, read through block_table. No scratch; enqueues one kernel on `stream`.
// warp_rows: query rows per warp, 16 or 32 (more rows reuse each K/V tile loaded more
// often, at more registers and fewer CTAs); 0 picks flash_warp_rows(a, n).
void flash(const AttnArgs& a, const KvLayer& kv, const int32_t* block_table, int start, int n, const float* q,
           float* out, int64_t q_stride, cudaStream_t stream, int warp_rows = 0);

}  // namespace velo::cuda::prefill
