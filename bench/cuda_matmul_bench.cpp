// CUDA matmul benchmark (standalone main): decode matvec bandwidth and prompt
// GEMM throughput of velo::cuda::Matmul on Llama-3-8B-shaped matrices, against
// the device's measured copy bandwidth and a plain cuBLAS bf16 GEMM.
//
// Matvec: m = 1 (and m = 8 for 14336x4096), 50 calls captured into a CUDA graph
// (as the decode step runs them), rotating over enough weight copies to exceed
// the L2 cache. "us" is the median per call from events recorded between the
// calls; "mean us" replays the graph without those events, so consecutive calls
// overlap as the programmatic-dependent-launch chain lets them (the steady state
// of a decode step). GB/s counts weight bytes only. First, one layer's Q/K/V and
// gate/up as separate calls against one grouped call, and the BF16 m = 3..8 kernels
// (CUDA cores vs tensor cores); `bench_cuda_matmul groups` stops after those. A breakdown times the
// activation conversion and the matvec kernel alone, and the GEMM section the
// m > 8 path (dequantize + cuBLAS) against a plain cuBLAS bf16 GEMM.
#if defined(VELO_WITH_CUDA)
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cuda/devices.h"
#include "backend/cuda/matmul.h"
#include "backend/cuda/matmul_kernels.h"
#include "core/dtype.h"
#include "quant/quant.h"

namespace {

using velo::GgmlType;

void ck(cudaError_t e, const char* what, int line) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "line %d: %s: %s\n", line, what, cudaGetErrorString(e));
    std::exit(1);
  }
}
#define CK(expr) ck((expr), #expr, __LINE__)

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Device-to-device copy of 1 GiB, bytes read + written per second (median of 10).
double copy_bandwidth() {
  const size_t n = 1ull << 30;
  void *a = nullptr, *b = nullptr;
  CK(cudaMalloc(&a, n));
  CK(cudaMalloc(&b, n));
  CK(cudaMemset(a, 1, n));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::vector<double> t;
  for (int i = 0; i < 12; ++i) {
    CK(cudaEventRecord(e0));
    CK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    if (i >= 2) t.push_back(ms * 1e-3);
  }
  CK(cudaFree(a));
  CK(cudaFree(b));
  return 2.0 * n / median(t);
}

// Fills `bytes` of device memory with copies of a few properly quantized random rows.
void fill_weights(GgmlType type, int64_t rows, int64_t cols, void* dev) {
  const int64_t pattern_rows = std::min<int64_t>(rows, 16);
  const uint64_t rb = *velo::row_bytes(type, cols);
  std::vector<uint8_t> pattern(rb * pattern_rows);
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> src(cols);
  for (int64_t r = 0; r < pattern_rows; ++r) {
    for (auto& v : src) v = nd(rng);
    if (!velo::quant::quantize_row(type, src.data(), pattern.data() + r * rb, cols).ok()) std::exit(1);
  }
  std::vector<uint8_t> host(rb * rows);
  for (int64_t r = 0; r < rows; r += pattern_rows) {
    const int64_t n = std::min(pattern_rows, rows - r);
    std::memcpy(host.data() + r * rb, pattern.data(), n * rb);
  }
  CK(cudaMemcpy(dev, host.data(), host.size(), cudaMemcpyHostToDevice));
}

std::vector<float> random_floats(size_t n) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

struct Shape { int64_t rows, cols; };

// Seconds per call of `call(i)` (i < 50) captured into one CUDA graph, as the decode
// step runs them: the median of per-call intervals (events recorded between the
// calls) and the mean over a replay of the same graph without the events.
struct GraphTime { double median, mean; };
template <class F>
GraphTime time_graph(cudaStream_t s, F&& call) {
  constexpr int kCalls = 50;
  std::vector<cudaEvent_t> ev(kCalls + 1);
  for (auto& e : ev) CK(cudaEventCreate(&e));
  GraphTime out{};
  for (int with_events = 1; with_events >= 0; --with_events) {
    cudaGraph_t graph = nullptr;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < kCalls; ++i) {
      if (with_events || i == 0) CK(cudaEventRecordWithFlags(ev[i], s, cudaEventRecordExternal));
      call(i);
    }
    CK(cudaEventRecordWithFlags(ev[kCalls], s, cudaEventRecordExternal));
    CK(cudaStreamEndCapture(s, &graph));
    cudaGraphExec_t exec = nullptr;
    CK(cudaGraphInstantiate(&exec, graph, 0));
    CK(cudaGraphLaunch(exec, s));  // warm-up
    CK(cudaGraphLaunch(exec, s));
    CK(cudaStreamSynchronize(s));
    float ms = 0;
    if (with_events) {
      std::vector<double> t;
      for (int i = 0; i < kCalls; ++i) {
        CK(cudaEventElapsedTime(&ms, ev[i], ev[i + 1]));
        t.push_back(ms * 1e-3);
      }
      out.median = median(t);
    } else {
      CK(cudaEventElapsedTime(&ms, ev[0], ev[kCalls]));
      out.mean = ms * 1e-3 / kCalls;
    }
    CK(cudaGraphExecDestroy(exec));
    CK(cudaGraphDestroy(graph));
  }
  for (auto& e : ev) CK(cudaEventDestroy(e));
  return out;
}

// Median seconds of eager calls (GEMMs: long enough that launch gaps do not matter).
template <class F>
double time_eager(cudaStream_t s, int reps, F&& call) {
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int i = 0; i < 3; ++i) call();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(e0, s));
    call();
    CK(cudaEventRecord(e1, s));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(ms * 1e-3);
  }
  CK(cudaEventDestroy(e0));
  CK(cudaEventDestroy(e1));
  return median(t);
}

// Plain cuBLAS bf16 GEMM (f32 accumulate) on n^3: the tensor-core ceiling.
double cublas_peak_tflops(cudaStream_t s, int n) {
  std::vector<float> f = random_floats(static_cast<size_t>(n) * n);
  std::vector<uint16_t> h(f.size());
  for (size_t i = 0; i < f.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &f[i], 4);
    h[i] = static_cast<uint16_t>(u >> 16);
  }
  void *a, *b, *c;
  const size_t bytes = h.size() * 2;
  CK(cudaMalloc(&a, bytes));
  CK(cudaMalloc(&b, bytes));
  CK(cudaMalloc(&c, bytes));
  CK(cudaMemcpy(a, h.data(), bytes, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(b, h.data(), bytes, cudaMemcpyHostToDevice));
  cublasHandle_t blas;
  if (cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) std::exit(1);
  cublasSetStream(blas, s);
  const float alpha = 1, beta = 0;
  const double sec = time_eager(s, 10, [&] {
    cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b, CUDA_R_16BF, n, &beta, c,
                 CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  });
  cublasDestroy(blas);
  CK(cudaFree(a));
  CK(cudaFree(b));
  CK(cudaFree(c));
  return 2.0 * n * n * n / sec * 1e-12;
}

// One decode layer's Q/K/V (4096, 1024, 1024 rows) and gate/up (2 × 14336 rows), all of
// 4096 columns: separate Matmul::run calls against one Matmul::run_group call, m = 1 and 8.
void bench_groups(velo::cuda::Matmul& mm, cudaStream_t s, const float* x, float* y, double copy_bw, uint64_t l2) {
  using velo::cuda::Matmul;
  struct Group {
    const char* name;
    std::vector<GgmlType> types;
    std::vector<int64_t> rows;
  };
  const Group groups[] = {
      {"QKV BF16", {GgmlType::BF16, GgmlType::BF16, GgmlType::BF16}, {4096, 1024, 1024}},
      {"QKV Q4_K", {GgmlType::Q4_K, GgmlType::Q4_K, GgmlType::Q4_K}, {4096, 1024, 1024}},
      {"QKV Q4_K/Q6_K", {GgmlType::Q4_K, GgmlType::Q4_K, GgmlType::Q6_K}, {4096, 1024, 1024}},
      {"gate/up BF16", {GgmlType::BF16, GgmlType::BF16}, {14336, 14336}},
      {"gate/up Q4_K", {GgmlType::Q4_K, GgmlType::Q4_K}, {14336, 14336}},
  };
  const int64_t cols = 4096;
  std::printf("\ngrouped calls (mean us per group in a graph, weight bytes / time vs copy bandwidth)\n");
  std::printf("%-14s %3s %11s %7s %11s %7s %8s\n", "group", "m", "separate", "% copy", "grouped", "% copy", "speedup");
  for (const Group& g : groups) {
    const size_t n = g.types.size();
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; ++i) bytes += *velo::row_bytes(g.types[i], cols) * g.rows[i];
    const int n_copies = static_cast<int>(std::max<uint64_t>(2, (3 * l2 + bytes - 1) / bytes));
    std::vector<std::vector<void*>> w(n_copies, std::vector<void*>(n));
    for (int c = 0; c < n_copies; ++c)
      for (size_t i = 0; i < n; ++i) {
        const uint64_t b = *velo::row_bytes(g.types[i], cols) * g.rows[i];
        CK(cudaMalloc(&w[c][i], b));
        if (c == 0) fill_weights(g.types[i], g.rows[i], cols, w[c][i]);
        else CK(cudaMemcpy(w[c][i], w[0][i], b, cudaMemcpyDeviceToDevice));
      }
    for (int64_t m : {int64_t{1}, int64_t{8}}) {
      auto outs = [&](int c) {
        std::vector<Matmul::Out> o(n);
        int64_t off = 0;
        for (size_t i = 0; i < n; ++i) {
          o[i] = {{g.types[i], w[c][i], g.rows[i], cols}, y + off, 0};
          off += g.rows[i] * m;
        }
        return o;
      };
      const GraphTime sep = time_graph(s, [&](int k) {
        for (const Matmul::Out& o : outs(k % n_copies)) mm.run(o.w, x, m, o.y);
      });
      const GraphTime grp = time_graph(s, [&](int k) {
        const auto o = outs(k % n_copies);
        mm.run_group(o.data(), static_cast<int>(n), x, m);
      });
      std::printf("%-14s %3lld %9.1f us %6.1f%% %9.1f us %6.1f%% %7.2fx\n", g.name, static_cast<long long>(m),
                  sep.mean * 1e6, 100.0 * bytes / sep.mean / copy_bw, grp.mean * 1e6,
                  100.0 * bytes / grp.mean / copy_bw, sep.mean / grp.mean);
    }
    for (auto& v : w)
      for (void* p : v) CK(cudaFree(p));
  }
}

// BF16 weights at m = 3..8: the CUDA-core kernel against the tensor-core one.
void bench_float_kernels(velo::cuda::Matmul& mm, cudaStream_t s, const float* x, float* y, double copy_bw,
                         uint64_t l2) {
  namespace d = velo::cuda::detail;
  std::printf("\nBF16 matvec, CUDA cores (simt) vs tensor cores (mma), mean us per call in a graph\n");
  std::printf("%-13s %3s %9s %7s %9s %7s\n", "rows x cols", "m", "simt us", "% copy", "mma us", "% copy");
  for (const Shape& sh : {Shape{4096, 4096}, Shape{1024, 4096}, Shape{14336, 4096}, Shape{4096, 14336}}) {
    const uint64_t bytes = *velo::row_bytes(GgmlType::BF16, sh.cols) * sh.rows;
    std::vector<void*> copies(std::max<uint64_t>(2, (3 * l2 + bytes - 1) / bytes));
    for (auto& c : copies) CK(cudaMalloc(&c, bytes));
    fill_weights(GgmlType::BF16, sh.rows, sh.cols, copies[0]);
    for (size_t i = 1; i < copies.size(); ++i) CK(cudaMemcpy(copies[i], copies[0], bytes, cudaMemcpyDeviceToDevice));
    for (int64_t m : {int64_t{3}, int64_t{4}, int64_t{5}, int64_t{8}}) {
      GraphTime t[2];
      for (int k = 0; k < 2; ++k) {
        d::set_float_matvec_kernel(k == 0 ? d::FloatMatvecKernel::kSimt : d::FloatMatvecKernel::kMma);
        t[k] = time_graph(s, [&](int i) { mm.run({GgmlType::BF16, copies[i % copies.size()], sh.rows, sh.cols}, x, m, y); });
      }
      d::set_float_matvec_kernel(d::FloatMatvecKernel::kAuto);
      std::printf("%6lldx%-6lld %3lld %9.1f %6.1f%% %9.1f %6.1f%%\n", static_cast<long long>(sh.rows),
                  static_cast<long long>(sh.cols), static_cast<long long>(m), t[0].mean * 1e6,
                  100.0 * bytes / t[0].mean / copy_bw, t[1].mean * 1e6, 100.0 * bytes / t[1].mean / copy_bw);
    }
    for (auto& c : copies) CK(cudaFree(c));
  }
}

}  // namespace

// Usage: bench_cuda_matmul [groups]   ("groups": only the grouped-call and BF16 kernel tables)
int main(int argc, char** argv) {
  const auto t_start = std::chrono::steady_clock::now();
  std::string why;
  const auto devs = velo::cuda::list_devices(&why);
  if (devs.empty()) {
    std::printf("no CUDA device (%s): nothing to measure\n", why.c_str());
    return 0;
  }
  CK(cudaSetDevice(0));
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  const double copy_bw = copy_bandwidth();
  std::printf("device: %s, %d SMs, L2 %d MB; copy bandwidth %.0f GB/s (read + write, 1 GiB D2D, median of 10)\n\n",
              prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, copy_bw * 1e-9);

  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  const Shape shapes[] = {{4096, 4096}, {1024, 4096}, {14336, 4096}, {4096, 14336}, {128256, 4096}};
  const GgmlType types[] = {GgmlType::BF16, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q4_0};
  const int64_t max_tokens = 2048;
  auto mm_r = velo::cuda::Matmul::create({14336, max_tokens, 14336 * 4096}, s);
  if (!mm_r.ok()) {
    std::fprintf(stderr, "%s\n", mm_r.message().c_str());
    return 1;
  }
  velo::cuda::Matmul& mm = **mm_r;
  const std::vector<float> xh = random_floats(static_cast<size_t>(max_tokens) * 14336);
  float *x, *y;
  CK(cudaMalloc(&x, xh.size() * sizeof(float)));
  CK(cudaMalloc(&y, static_cast<size_t>(max_tokens) * 128256 * sizeof(float)));
  CK(cudaMemcpy(x, xh.data(), xh.size() * sizeof(float), cudaMemcpyHostToDevice));

  const uint64_t l2 = static_cast<uint64_t>(prop.l2CacheSize);
  bench_groups(mm, s, x, y, copy_bw, l2);
  bench_float_kernels(mm, s, x, y, copy_bw, l2);
  if (argc > 1 && std::strcmp(argv[1], "groups") == 0) {
    CK(cudaFree(x));
    CK(cudaFree(y));
    mm_r = velo::make_error("done");
    CK(cudaStreamDestroy(s));
    return 0;
  }

  std::printf("\nper call: median of 50 calls with events between them; 'mean' replays the 50 without\n");
  std::printf("%-5s %-13s %3s %9s %9s %7s %9s %7s\n", "type", "rows x cols", "m", "us", "GB/s", "% copy", "mean us",
              "% copy");
  for (GgmlType type : types) {
    for (const Shape& sh : shapes) {
      const uint64_t bytes = *velo::row_bytes(type, sh.cols) * sh.rows;
      const int n_copies = static_cast<int>(std::max<uint64_t>(2, (3 * l2 + bytes - 1) / bytes));
      std::vector<void*> copies(n_copies);
      for (auto& c : copies) CK(cudaMalloc(&c, bytes));
      fill_weights(type, sh.rows, sh.cols, copies[0]);
      for (int i = 1; i < n_copies; ++i) CK(cudaMemcpy(copies[i], copies[0], bytes, cudaMemcpyDeviceToDevice));
      for (int64_t m : {int64_t{1}, int64_t{8}}) {
        if (m == 8 && !(sh.rows == 14336 && sh.cols == 4096)) continue;
        const GraphTime t = time_graph(s, [&](int i) {
          mm.run({type, copies[i % copies.size()], sh.rows, sh.cols}, x, m, y);
        });
        std::printf("%-5s %6lldx%-6lld %3lld %9.1f %9.0f %6.1f%% %9.1f %6.1f%%\n", velo::type_name(type).c_str(),
                    static_cast<long long>(sh.rows), static_cast<long long>(sh.cols), static_cast<long long>(m),
                    t.median * 1e6, bytes / t.median * 1e-9, 100.0 * bytes / t.median / copy_bw, t.mean * 1e6,
                    100.0 * bytes / t.mean / copy_bw);
      }
      for (auto& c : copies) CK(cudaFree(c));
    }
  }

  // Where a decode call's time goes: the activation conversion and the matvec kernel alone.
  {
    namespace d = velo::cuda::detail;
    void* act;
    CK(cudaMalloc(&act, d::act_q8_bytes(d::ActQuant::kQ8K, 8, 14336) + (1 << 20)));
    std::printf("\nbreakdown, m = 1 (mean us per call in a graph): activation conversion alone, matvec kernel\n"
                "alone (for BF16 that rounds the activations itself, the path Matmul::run takes for m <= 2)\n");
    for (GgmlType type : {GgmlType::BF16, GgmlType::Q4_K, GgmlType::Q8_0}) {
      for (const Shape& sh : {Shape{4096, 4096}, Shape{14336, 4096}, Shape{4096, 14336}}) {
        const uint64_t bytes = *velo::row_bytes(type, sh.cols) * sh.rows;
        std::vector<void*> copies(std::max<uint64_t>(2, (3 * l2 + bytes - 1) / bytes));
        for (auto& c : copies) CK(cudaMalloc(&c, bytes));
        fill_weights(type, sh.rows, sh.cols, copies[0]);
        const bool half = type == GgmlType::BF16;
        const d::ActQuant f = d::act_quant_of(type);
        const GraphTime conv = time_graph(s, [&](int) {
          if (half) d::round_act_half(x, sh.cols, true, static_cast<uint16_t*>(act), s);
          else d::quantize_act(f, x, 1, sh.cols, act, s);
        });
        const GraphTime mv = time_graph(s, [&](int i) {  // BF16, m = 1: rounds x itself
          void* w = copies[i % copies.size()];
          if (half) d::matvec_float(type, w, sh.rows, sh.cols, x, 1, y, sh.rows, static_cast<uint16_t*>(act), s);
          else d::matvec_quant(type, w, sh.rows, sh.cols, d::act_q8_view(f, act, 1, sh.cols), 1, y, sh.rows, s);
        });
        std::printf("%-5s %6lldx%-6lld  conversion %5.1f us   matvec %6.1f us (%5.1f%% copy)\n",
                    velo::type_name(type).c_str(), static_cast<long long>(sh.rows), static_cast<long long>(sh.cols),
                    conv.mean * 1e6, mv.mean * 1e6, 100.0 * bytes / mv.mean / copy_bw);
        for (auto& c : copies) CK(cudaFree(c));
      }
    }
    CK(cudaFree(act));
  }

  const double peak = cublas_peak_tflops(s, 8192);
  std::printf("\ncuBLAS bf16 GEMM 8192^3: %.0f TFLOP/s\n", peak);
  std::printf("%-5s %-13s %5s %9s %9s %7s\n", "type", "rows x cols", "m", "us", "TFLOP/s", "% peak");
  for (GgmlType type : {GgmlType::BF16, GgmlType::Q4_K}) {
    for (const Shape& sh : {Shape{4096, 4096}, Shape{14336, 4096}}) {
      const uint64_t bytes = *velo::row_bytes(type, sh.cols) * sh.rows;
      void* w;
      CK(cudaMalloc(&w, bytes));
      fill_weights(type, sh.rows, sh.cols, w);
      for (int64_t m : {int64_t{512}, int64_t{2048}}) {
        const double sec = time_eager(s, 10, [&] { mm.run({type, w, sh.rows, sh.cols}, x, m, y); });
        const double tf = 2.0 * m * sh.rows * sh.cols / sec * 1e-12;
        std::printf("%-5s %6lldx%-6lld %5lld %9.1f %9.1f %6.1f%%\n", velo::type_name(type).c_str(),
                    static_cast<long long>(sh.rows), static_cast<long long>(sh.cols), static_cast<long long>(m),
                    sec * 1e6, tf, 100.0 * tf / peak);
      }
      CK(cudaFree(w));
    }
  }
  CK(cudaGetLastError());
  CK(cudaFree(x));
  CK(cudaFree(y));
  mm_r = velo::make_error("done");  // destroy the Matmul before the stream
  CK(cudaStreamDestroy(s));
  std::printf("\ntotal %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count());
  return 0;
}
#else
#include <cstdio>
int main() {
  std::printf("velollm was built without CUDA: nothing to measure\n");
  return 0;
}
#endif
