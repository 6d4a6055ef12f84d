// CUDA device discovery (only built when the CUDA backend is on).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace velo::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
  int sm_major = 0, sm_minor = 0;
  int multiprocessors = 0;
};

// Devices the driver reports; empty (with `why` set) when there is no usable GPU.
std::vector<DeviceInfo> list_devices(std::string* why = nullptr);

}  // namespace velo::cuda
