#include <cuda_runtime.h>

#include "backend/cuda/devices.h"
#include "quant/blocks.h"  // compiled by nvcc too: the block layouts are shared with device code

namespace velo::cuda {

std::vector<DeviceInfo> list_devices(std::string* why) {
  std::vector<DeviceInfo> out;
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (why)
      *why = err == cudaErrorInsufficientDriver || err == cudaErrorNoDevice
                 ? std::string("no NVIDIA GPU with a driver for CUDA 13 was found")
                 : std::string(cudaGetErrorString(err));
    (void)cudaGetLastError();
    return out;
  }
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    DeviceInfo d;
    d.index = i;
    d.name = p.name;
    d.total_bytes = p.totalGlobalMem;
    d.sm_major = p.major;
    d.sm_minor = p.minor;
    d.multiprocessors = p.multiProcessorCount;
    size_t free_b = 0, total_b = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
      d.free_bytes = free_b;
    out.push_back(d);
  }
  return out;
}

}  // namespace velo::cuda
