// Helpers shared by the GPU tests: a checked CUDA call and a device array.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace velo::cuda::test {

inline void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
#define CK(expr) ::velo::cuda::test::ck((expr), #expr)

// A device array of n T's, poisoned with 0xFF bytes (NaN for floats and halves);
// `off` elements of slack in front let a test misalign it.
template <class T> class Dev {
 public:
  explicit Dev(size_t n, size_t off = 0) : n_(n), off_(off) {
    CK(cudaMalloc(&base_, (n + off + 1) * sizeof(T)));
    CK(cudaMemset(base_, 0xFF, (n + off + 1) * sizeof(T)));
  }
  explicit Dev(const std::vector<T>& h, size_t off = 0) : Dev(h.size(), off) { upload(h); }
  ~Dev() { cudaFree(base_); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  T* get() const { return base_ + off_; }
  void upload(const std::vector<T>& h) { CK(cudaMemcpy(get(), h.data(), n_ * sizeof(T), cudaMemcpyHostToDevice)); }
  std::vector<T> download() const {
    std::vector<T> h(n_);
    CK(cudaMemcpy(h.data(), get(), n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }

 private:
  T* base_ = nullptr;
  size_t n_, off_;
};

}  // namespace velo::cuda::test
