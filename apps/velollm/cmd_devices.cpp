// `velollm devices`: what hardware velollm sees (CPU threads, CUDA GPUs).
#include <cstdio>
#include <thread>

#include "command.h"
#ifdef VELO_WITH_CUDA
#include "backend/cuda/devices.h"
#endif

namespace {

int run_devices() {
  std::printf("cpu: %u hardware threads\n", std::thread::hardware_concurrency());
#ifdef VELO_WITH_CUDA
  std::string why;
  auto devs = velo::cuda::list_devices(&why);
  if (devs.empty()) std::printf("cuda: no usable GPU (%s)\n", why.c_str());
  for (const auto& d : devs)
    std::printf("cuda:%d %s, sm_%d%d, %d SMs, %.1f GiB (%.1f GiB free)\n", d.index, d.name.c_str(),
                d.sm_major, d.sm_minor, d.multiprocessors, d.total_bytes / 1073741824.0,
                d.free_bytes / 1073741824.0);
#else
  std::printf("cuda: not built (configure with nvcc on PATH or -DVELO_CUDA=ON)\n");
#endif
  return 0;
}

const bool registered = velo::cli::register_command(
    {"devices", "List the CPU and GPUs velollm can use", 90,
     [](CLI::App&) -> std::function<int()> { return run_devices; }});

}  // namespace
