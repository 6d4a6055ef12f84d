// What this CPU is: core counts and the SIMD paths compiled into the kernels.
#pragma once
#include <string>

namespace velo {

// Physical cores (not SMT threads) this process may run on; >= 1.
int physical_cores();
// Logical CPUs this process may run on (sched affinity); >= 1.
int logical_cpus();
// The SIMD level the CPU kernels were compiled for, e.g. "avx512-vnni", "avx2", "scalar".
std::string simd_path();

}  // namespace velo
