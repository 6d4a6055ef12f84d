// Shared by the CUDA backend's host code: error checks and an owning device
// buffer. Plain C++ (no device code) so .cpp files of upper layers may use it.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "core/result.h"

namespace velo::cuda {

inline Status cuda_status(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return {};
  return make_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
}

// Returns the error of a failed CUDA runtime call from the enclosing function.
#define VELO_CUDA_TRY(expr)                                                  \
  do {                                                                       \
    if (cudaError_t velo_cuda_e_ = (expr); velo_cuda_e_ != cudaSuccess)      \
      return ::velo::cuda::cuda_status(velo_cuda_e_, #expr).error();         \
  } while (0)

// An owning device allocation (cudaMalloc; never managed memory).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  static Result<DeviceBuffer> alloc(size_t bytes) {
    DeviceBuffer b;
    if (bytes == 0) return Result<DeviceBuffer>(std::move(b));
    if (cudaError_t e = cudaMalloc(&b.p_, bytes); e != cudaSuccess) {
      (void)cudaGetLastError();  // clear the sticky-free allocation error
      return make_error("CUDA: out of device memory allocating " + std::to_string(bytes >> 20) + " MiB (" +
                        cudaGetErrorString(e) + ")");
    }
    b.n_ = bytes;
    return Result<DeviceBuffer>(std::move(b));
  }
  void reset() {
    if (p_) cudaFree(p_);
    p_ = nullptr;
    n_ = 0;
  }
  template <class T = void> T* get() const { return static_cast<T*>(p_); }
  size_t bytes() const { return n_; }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace velo::cuda
