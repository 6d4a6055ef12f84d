#include "core/cpu_info.h"

#include <sched.h>

#include <fstream>
#include <set>
#include <thread>
#include <utility>

namespace velo {

int logical_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

int physical_cores() {
  // Distinct (package, core) pairs among the CPUs we may run on; SMT siblings share one.
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return logical_cpus();
  std::set<std::pair<int, int>> cores;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    std::ifstream core_f(base + "core_id"), pkg_f(base + "physical_package_id");
    int core = -1, pkg = -1;
    if (!(core_f >> core) || !(pkg_f >> pkg)) return logical_cpus();  // no sysfs topology
    cores.emplace(pkg, core);
  }
  return cores.empty() ? logical_cpus() : static_cast<int>(cores.size());
}

std::string simd_path() {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
  return "avx512-vnni";
#elif defined(__AVX2__) && defined(__AVXVNNI__)
  return "avx2-vnni";
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  return "avx2";
#else
  return "scalar";
#endif
}

}  // namespace velo
