#include "backend/cuda/roofline.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <vector>

#include "backend/cuda/common.h"

namespace velo::cuda {
namespace {

// Random bf16 in [-1, 1): zeros would run faster than real data.
__global__ void fill_random_bf16(__nv_bfloat16* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t x = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    x ^= x >> 15;
    x *= 2246822519u;
    x ^= x >> 13;
    p[i] = __float2bfloat16(static_cast<float>(x & 0xFFFF) / 32768.0f - 1.0f);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Times `fn` with events: `reps` samples after two warm-ups, in milliseconds.
template <class Fn>
Result<std::vector<double>> time_ms(cudaStream_t s, int reps, Fn&& fn) {
  cudaEvent_t a, b;
  VELO_CUDA_TRY(cudaEventCreate(&a));
  VELO_CUDA_TRY(cudaEventCreate(&b));
  std::vector<double> out;
  for (int i = 0; i < reps + 2; ++i) {
    cudaEventRecord(a, s);
    fn();
    cudaEventRecord(b, s);
    VELO_CUDA_TRY(cudaEventSynchronize(b));
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    if (i >= 2) out.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  VELO_CUDA_TRY(cudaGetLastError());
  return out;
}

}  // namespace

Result<Roofline> measure_roofline(int device) {
  VELO_CUDA_TRY(cudaSetDevice(device));
  Roofline r;
  cudaStream_t s;
  VELO_CUDA_TRY(cudaStreamCreate(&s));
  {
    const uint64_t bytes = uint64_t{1} << 30;
    VELO_ASSIGN_OR_RETURN(DeviceBuffer src, DeviceBuffer::alloc(bytes));
    VELO_ASSIGN_OR_RETURN(DeviceBuffer dst, DeviceBuffer::alloc(bytes));
    fill_random_bf16<<<1024, 256, 0, s>>>(src.get<__nv_bfloat16>(), bytes / 2, 1);
    VELO_ASSIGN_OR_RETURN(auto ms, time_ms(s, 10, [&] {
      cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, s);
    }));
    r.copy_gbs = 2.0 * bytes / (median(ms) * 1e-3) / 1e9;
  }
  {
    const int n = 8192;
    const uint64_t elems = uint64_t{n} * n;
    VELO_ASSIGN_OR_RETURN(DeviceBuffer a, DeviceBuffer::alloc(elems * 2));
    VELO_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::alloc(elems * 2));
    VELO_ASSIGN_OR_RETURN(DeviceBuffer c, DeviceBuffer::alloc(elems * 2));
    fill_random_bf16<<<1024, 256, 0, s>>>(a.get<__nv_bfloat16>(), elems, 2);
    fill_random_bf16<<<1024, 256, 0, s>>>(b.get<__nv_bfloat16>(), elems, 3);
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return make_error("cuBLAS: cannot create a handle");
    cublasSetStream(h, s);
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    auto ms = time_ms(s, 10, [&] {
      st = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, a.get(), CUDA_R_16BF, n, b.get(), CUDA_R_16BF, n,
                        &zero, c.get(), CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    });
    cublasDestroy(h);
    if (!ms.ok()) return ms.error();
    if (st != CUBLAS_STATUS_SUCCESS) return make_error("cuBLAS: the BF16 GEMM failed");
    r.bf16_tflops = 2.0 * n * double(n) * n / (median(*ms) * 1e-3) / 1e12;
  }
  cudaStreamDestroy(s);
  return r;
}

}  // namespace velo::cuda
