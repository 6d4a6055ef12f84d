// dst[i][:] = src[rows[i]][:], for the hidden states of the tokens that want logits.
#include "backend/cuda/gather_rows.h"

namespace velo::cuda {
namespace {

__global__ void gather_rows_kernel(const float* __restrict__ src, const int32_t* __restrict__ rows,
                                   float* __restrict__ dst, int n) {
  const float* s = src + static_cast<int64_t>(rows[blockIdx.x]) * n;
  float* d = dst + static_cast<int64_t>(blockIdx.x) * n;
  for (int i = threadIdx.x; i < n; i += blockDim.x) d[i] = s[i];
}

}  // namespace

void gather_rows(const float* src, const int32_t* rows, float* dst, int64_t n_rows, int n, cudaStream_t stream) {
  if (n_rows <= 0) return;
  gather_rows_kernel<<<static_cast<unsigned>(n_rows), 256, 0, stream>>>(src, rows, dst, n);
}

}  // namespace velo::cuda
