// --device / --gpu-layers, shared by every command that loads a model.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "core/result.h"
#include "engine/model_runner.h"

namespace velo::cli {

struct DeviceFlags {
  std::string device = "auto";
  int32_t gpu_layers = -1;
  bool gpu_exact = false;
};

inline void add_device_flags(CLI::App& sub, DeviceFlags& f) {
  sub.add_option("--device", f.device,
                 "Where the model runs: auto (the GPU when one is usable, else the CPU), cpu, or cuda")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "cuda", "gpu"}));
  sub.add_option("--gpu-layers,--n-gpu-layers", f.gpu_layers,
                 "Layers kept on the GPU, the rest run on the CPU (-1: as many as fit in GPU memory)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 1 << 16));
  sub.add_flag("--gpu-exact", f.gpu_exact,
               "Decode on the GPU in the CPU backend's exact float order, so greedy output is identical to "
               "--device cpu (slower, most at long contexts); default: faster kernels within tolerance");
}

inline Status apply_device_flags(const DeviceFlags& f, RunnerOptions& o) {
  auto d = device_from_name(f.device);
  if (!d) return make_error("--device must be auto, cpu or cuda, got '" + f.device + "'");
  o.device = *d;
  o.gpu_layers = f.gpu_layers;
  o.gpu_exact = f.gpu_exact;
  return {};
}

}  // namespace velo::cli
