// Row gather on the device (the forward pass picks the rows that need logits).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace velo::cuda {

// dst[i] = src[rows[i]] for i < n_rows; rows of n floats; rows is a device array.
void gather_rows(const float* src, const int32_t* rows, float* dst, int64_t n_rows, int n, cudaStream_t stream);

}  // namespace velo::cuda
