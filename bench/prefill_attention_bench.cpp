// Prefill attention benchmark (standalone main): velo::cuda::PrefillAttention's
// fused Flash kernel (16 and 32 query rows per warp; PrefillAttention runs
// prefill::flash_warp_rows's pick, the "default" column) against the cuBLAS
// path on Llama-3-8B-shaped heads (32 q / 8 kv heads, head_dim 128; and
// head_dim 64, and 32 kv heads), one sequence's chunk of n tokens
// after `start` cached ones, K/V in a paged cache (block 16, shuffled blocks).
// TFLOP/s counts 4 * heads * head_dim per visible (query, key) pair (causal),
// the work an exact attention must do; % is of --peak (default 789, the
// measured H100 BF16 dense peak). Median of 20 runs after 3 warm-ups. "diff" is
// max |fused - cublas| / max |cublas| over the outputs (a sanity check; the
// tests compare both with the CPU).
//   bench_prefill_attention [--peak TFLOPS]
#if defined(VELO_WITH_CUDA)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "backend/cuda/attention_flash.h"
#include "backend/cuda/devices.h"
#include "backend/cuda/ops.h"

namespace {

void ck(cudaError_t e, const char* what, int line) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "line %d: %s: %s\n", line, what, cudaGetErrorString(e));
    std::exit(1);
  }
}
#define CK(expr) ck((expr), #expr, __LINE__)

struct Case {
  int heads, kv_heads, hd, start, n;
};

template <class T>
T* upload(const std::vector<T>& v) {
  T* d = nullptr;
  CK(cudaMalloc(&d, v.size() * sizeof(T)));
  CK(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  double peak = 789.0;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--peak") == 0) peak = std::atof(argv[i + 1]);
  if (velo::cuda::list_devices().empty()) {
    std::printf("no CUDA device\n");
    return 0;
  }
  using velo::cuda::PrefillAttention;
  using velo::cuda::PrefillPath;
  // A 2048-token prompt in one call, then as the 4 calls of 512 queries the forward pass
  // makes at prefill_chunk = 512 (their times add up to the prompt's).
  const std::vector<Case> cases{
      {32, 8, 128, 0, 512},     {32, 8, 128, 0, 1024},    {32, 8, 128, 0, 2048},   {32, 8, 128, 512, 512},
      {32, 8, 128, 1024, 512},  {32, 8, 128, 1536, 512},  {32, 8, 128, 0, 4096},   {32, 8, 128, 0, 8192},
      {32, 8, 128, 2048, 2048}, {32, 8, 128, 6144, 2048}, {32, 8, 64, 0, 2048},    {32, 32, 128, 0, 2048}};
  constexpr int kBlock = 16;
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::mt19937 rng(7);
  double chunked[2] = {0, 0}, whole[2] = {0, 0};  // 2048-token prompt, 32/8/128: cuBLAS, fused default
  std::printf("%-12s %6s %6s | %9s %7s %6s | %9s %7s %6s | %9s %7s %6s\n", "heads/kv/hd", "start", "n",
              "cublas us", "TFLOP/s", "%peak", "flash16", "TFLOP/s", "%peak", "flash32", "TFLOP/s", "%peak");
  for (const Case& c : cases) {
    velo::cuda::AttnArgs a;
    a.n_heads = c.heads;
    a.n_kv_heads = c.kv_heads;
    a.head_dim = c.hd;
    a.scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
    const int total = c.start + c.n, blocks = (total + kBlock - 1) / kBlock;
    const size_t kv_elems = static_cast<size_t>(blocks) * kBlock * c.kv_heads * c.hd;
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<uint16_t> kv(kv_elems);
    for (auto& x : kv) x = static_cast<uint16_t>(0x3c00 ^ (rng() & 0x83ff));  // fp16 in +-[1, 2)
    std::vector<int32_t> table(blocks);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng);
    const int64_t stride = static_cast<int64_t>(c.heads) * c.hd;
    std::vector<float> q(static_cast<size_t>(c.n) * stride);
    for (auto& x : q) x = nd(rng);
    uint16_t* dk = upload(kv);
    uint16_t* dv = upload(kv);
    int32_t* dt = upload(table);
    float* dq = upload(q);
    float* dout = nullptr;
    CK(cudaMalloc(&dout, q.size() * sizeof(float)));
    const velo::cuda::KvLayer layer{dk, dv, kBlock, c.kv_heads, c.hd};
    const double pairs = static_cast<double>(c.n) * c.start + static_cast<double>(c.n) * (c.n + 1) / 2;
    const double flop = 4.0 * c.heads * c.hd * pairs;
    auto pa = PrefillAttention::create(a, c.n, total, stream, PrefillPath::Cublas);
    if (!pa.ok()) {
      std::fprintf(stderr, "%s\n", pa.message().c_str());
      return 1;
    }
    double us[3] = {0, 0, 0};
    std::vector<float> res[3];
    for (int pi = 0; pi < 3; ++pi) {  // cuBLAS path, fused with 16 and 32 rows per warp
      std::vector<double> t;
      for (int r = 0; r < 23; ++r) {
        CK(cudaEventRecord(e0, stream));
        if (pi == 0)
          (*pa)->run(layer, dt, c.start, c.n, dq, dout, stride);
        else
          velo::cuda::prefill::flash(a, layer, dt, c.start, c.n, dq, dout, stride, stream, pi == 1 ? 16 : 32);
        CK(cudaEventRecord(e1, stream));
        CK(cudaEventSynchronize(e1));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        if (r >= 3) t.push_back(ms * 1e3);
      }
      CK(cudaGetLastError());
      std::sort(t.begin(), t.end());
      us[pi] = t[t.size() / 2];
      res[pi].resize(q.size());
      CK(cudaMemcpy(res[pi].data(), dout, q.size() * sizeof(float), cudaMemcpyDeviceToHost));
    }
    // Agreement of the fused outputs with the cuBLAS path's: max |diff| / max |cublas|.
    double diff = 0, mag = 0;
    for (size_t i = 0; i < q.size(); ++i) {
      mag = std::max(mag, std::fabs(static_cast<double>(res[0][i])));
      for (int pi = 1; pi < 3; ++pi) diff = std::max(diff, std::fabs(static_cast<double>(res[pi][i]) - res[0][i]));
    }
    auto tf = [&](double u) { return flop / (u * 1e6); };
    std::printf("%3d/%2d/%-5d %6d %6d", c.heads, c.kv_heads, c.hd, c.start, c.n);
    for (double u : us) std::printf(" | %9.1f %7.1f %5.1f%%", u, tf(u), 100 * tf(u) / peak);
    const int pick = velo::cuda::prefill::flash_warp_rows(a, c.n);
    if (c.heads == 32 && c.kv_heads == 8 && c.hd == 128 && c.n == 512 && c.start < 2048) {
      chunked[0] += us[0];
      chunked[1] += us[pick == 16 ? 1 : 2];
    }
    if (c.heads == 32 && c.kv_heads == 8 && c.hd == 128 && c.n == 2048 && c.start == 0) {
      whole[0] = us[0];
      whole[1] = us[pick == 16 ? 1 : 2];
    }
    std::printf(" | x%.2f (default %d: x%.2f)  diff %.1e\n", us[0] / std::min(us[1], us[2]), pick,
                us[0] / us[pick == 16 ? 1 : 2], diff / std::max(mag, 1e-30));
    CK(cudaFree(dk));
    CK(cudaFree(dv));
    CK(cudaFree(dt));
    CK(cudaFree(dq));
    CK(cudaFree(dout));
  }
  std::printf("\nLlama-3-8B 2048-token prompt, attention of 32 layers: as 4 calls of 512 queries: cublas %.2f ms,"
              " fused %.2f ms; as one call: cublas %.2f ms, fused %.2f ms\n",
              32 * chunked[0] * 1e-3, 32 * chunked[1] * 1e-3, 32 * whole[0] * 1e-3, 32 * whole[1] * 1e-3);
  CK(cudaStreamDestroy(stream));
  return 0;
}
#else
#include <cstdio>
int main() {
  std::printf("velollm was built without CUDA: nothing to measure\n");
  return 0;
}
#endif
