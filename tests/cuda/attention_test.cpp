// CUDA attention (paged_attention for decode tokens / short chunks, and
// PrefillAttention for long chunks) against cpu::paged_attention, the oracle,
// over a random paged KV cache (block size 16, blocks handed out in random
// order), fresh random q/K/V every run, outputs poisoned with NaN first.
//
// Tolerance: max|gpu - cpu| / max|cpu| <= 1e-3 per case. Both paths normalise
// the probabilities before rounding them to fp16 (as the CPU does) and compute
// exp exactly as the CPU does; what is left is the summation order of q.k
// (tensor cores vs the CPU's lanes) and of the split sums, which now and then
// flips one probability's fp16 rounding (1 ulp = 1e-3 of that term). Measured
// on an H100: decode 1e-7 .. 6e-5, prefill 1e-6 .. 3e-4.
// PrefillAttention's fused (Flash) path rounds exp(s - running max) to fp16 before
// normalising, so every probability's rounding may differ from the CPU's (each
// <= 2^-11 relative; the largest term, exp(0) = 1, is exact): simulated on the CPU,
// that alone differs from the oracle by 2e-4 .. 3e-4 on these inputs; the same 1e-3 bound holds.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/kv_cache.h"
#include "backend/cuda/attention_flash.h"
#include "backend/cuda/devices.h"
#include "cuda/cuda_test_util.h"
#include "backend/cuda/ops.h"
#include "core/thread_pool.h"
#include "quant/fp16.h"

namespace velo::cuda {
namespace {

using test::Dev;

struct Shape {
  int heads, kv_heads, hd;
  float softcap = 0.0f;
  int window = 0;
};

AttnArgs args_of(const Shape& s) {
  AttnArgs a;
  a.n_heads = s.heads;
  a.n_kv_heads = s.kv_heads;
  a.head_dim = s.hd;
  a.scale = 1.0f / std::sqrt(static_cast<float>(s.hd));
  a.softcap = s.softcap;
  a.window = s.window;
  return a;
}

constexpr int kBlock = 16;

// One layer of random K/V in a CPU cache and its copy on the device; each
// sequence gets ceil(len / block) blocks drawn from a shuffled pool (with spares).
struct PagedKv {
  int block = kBlock;
  cpu::KvCache cache;
  cpu::KvLayerView view;
  std::vector<std::vector<int32_t>> tables;
  int max_blocks = 0;
  std::unique_ptr<Dev<uint16_t>> dk, dv;
  std::unique_ptr<Dev<int32_t>> dtables;  // [n_seqs][max_blocks], unused entries -1

  PagedKv(const Shape& s, const std::vector<int>& lens, std::mt19937& rng, int block_size = kBlock)
      : block(block_size) {
    int need = 0;
    for (int len : lens) {
      need += (len + block - 1) / block;
      max_blocks = std::max(max_blocks, (len + block - 1) / block);
    }
    const int num_blocks = need + 7;
    auto c = cpu::KvCache::create(1, num_blocks, block, s.kv_heads, s.hd);
    if (!c.ok()) throw std::runtime_error(c.message());
    cache = std::move(*c);
    view = cache.layer(0);
    const size_t elems = static_cast<size_t>(num_blocks) * block * s.kv_heads * s.hd;
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (size_t i = 0; i < elems; ++i) view.k[i] = fp32_to_fp16(nd(rng));
    for (size_t i = 0; i < elems; ++i) view.v[i] = fp32_to_fp16(nd(rng));
    std::vector<int32_t> ids(num_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    std::vector<int32_t> flat(lens.size() * max_blocks, -1);
    size_t next = 0;
    for (size_t i = 0; i < lens.size(); ++i) {
      tables.emplace_back();
      for (int b = 0; b < (lens[i] + block - 1) / block; ++b) {
        tables.back().push_back(ids[next]);
        flat[i * max_blocks + b] = ids[next++];
      }
    }
    dk = std::make_unique<Dev<uint16_t>>(std::vector<uint16_t>(view.k, view.k + elems));
    dv = std::make_unique<Dev<uint16_t>>(std::vector<uint16_t>(view.v, view.v + elems));
    dtables = std::make_unique<Dev<int32_t>>(flat);
  }
  KvLayer dev_layer(const Shape& s) const { return KvLayer{dk->get(), dv->get(), block, s.kv_heads, s.hd}; }
};

cpu::AttnParams cpu_params(const Shape& s) {
  const AttnArgs a = args_of(s);
  return cpu::AttnParams{a.n_heads, a.n_kv_heads, a.head_dim, a.scale, a.softcap, a.window};
}

// The oracle for token rows laid out sequence after sequence (q_stride floats apart).
std::vector<float> cpu_reference(const Shape& s, const PagedKv& kv, const std::vector<std::pair<int, int>>& seqs,
                                 const std::vector<float>& q, int64_t stride, int max_ctx) {
  std::vector<float> out(q.size(), NAN);
  std::vector<cpu::AttnSeq> views;
  int64_t row = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    views.push_back(cpu::AttnSeq{q.data() + row * stride, out.data() + row * stride, seqs[i].second, seqs[i].first,
                                 kv.tables[i].data()});
    row += seqs[i].second;
  }
  ThreadPool pool(static_cast<int>(std::max(2u, std::thread::hardware_concurrency())));
  std::vector<float> scratch(cpu::attention_scratch_floats(pool.size(), max_ctx, s.hd));
  cpu::paged_attention(cpu_params(s), kv.view, views, stride, stride, max_ctx, scratch.data(), pool);
  return out;
}

// max|gpu - cpu| / max|cpu| over the heads' columns of T rows; every such
// element must be finite and the padding after them untouched (still NaN).
double compare(const std::vector<float>& gpu, const std::vector<float>& ref, int64_t T, int64_t stride, int64_t cols) {
  double err = 0, mag = 0;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < stride; ++i) {
      const float g = gpu[t * stride + i];
      if (i >= cols) {
        EXPECT_TRUE(std::isnan(g)) << "wrote padding at row " << t << " col " << i;
        continue;
      }
      const float r = ref[t * stride + i];
      if (!std::isfinite(g)) {
        ADD_FAILURE() << "unwritten or non-finite output at row " << t << " col " << i << ": " << g;
        return INFINITY;
      }
      err = std::max(err, std::fabs(static_cast<double>(g) - r));
      mag = std::max(mag, std::fabs(static_cast<double>(r)));
    }
  }
  return err / std::max(mag, 1e-30);
}

class CudaAttention : public ::testing::Test {
 protected:
  void SetUp() override {
    if (list_devices().empty()) GTEST_SKIP() << "no CUDA device";
    CK(cudaStreamCreate(&stream_));
    seed_ = std::random_device{}();
    rng_.seed(seed_);
  }
  void TearDown() override {
    if (stream_) cudaStreamDestroy(stream_);
  }
  float q_sd_ = 2.0f;  // spread of q: larger values give peaky (sink-like) attention
  void sync() {
    CK(cudaGetLastError());
    CK(cudaStreamSynchronize(stream_));
  }
  std::vector<float> randn(size_t n, float sd) {
    std::normal_distribution<float> nd(0.0f, sd);
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng_);
    return v;
  }

  // Decode / short chunks: seqs = (start, n_tokens) each, all in one call.
  void decode(const Shape& s, const std::vector<std::pair<int, int>>& seqs, int max_ctx, double tol = 1e-3) {
    std::vector<int> lens;
    std::vector<int32_t> tok_seq, tok_pos;
    for (size_t i = 0; i < seqs.size(); ++i) {
      lens.push_back(seqs[i].first + seqs[i].second);
      for (int t = 0; t < seqs[i].second; ++t) {
        tok_seq.push_back(static_cast<int32_t>(i));
        tok_pos.push_back(seqs[i].first + t);
      }
    }
    const PagedKv kv(s, lens, rng_);
    const int64_t T = static_cast<int64_t>(tok_pos.size()), cols = int64_t{s.heads} * s.hd, stride = cols + 8;
    const std::vector<float> q = randn(T * stride, q_sd_);
    const auto ref = cpu_reference(s, kv, seqs, q, stride, max_ctx);

    const AttnArgs a = args_of(s);
    Dev<float> dq(q), dout(T * stride);
    Dev<int32_t> dseq(tok_seq), dpos(tok_pos);
    Dev<uint8_t> scratch(paged_attention_scratch_bytes(a, T, max_ctx));
    const AttnBatch b{dseq.get(), dpos.get(), kv.dtables->get(), kv.max_blocks};
    paged_attention(a, kv.dev_layer(s), b, dq.get(), dout.get(), T, stride, max_ctx, scratch.get(), stream_);
    sync();
    const double err = compare(dout.download(), ref, T, stride, cols);
    std::printf("  decode %d/%d hd %d cap %g win %d T %lld max_ctx %d: rel err %.2e\n", s.heads, s.kv_heads, s.hd,
                s.softcap, s.window, static_cast<long long>(T), max_ctx, err);
    EXPECT_LE(err, tol) << "seed " << seed_;
  }

  // One sequence's chunk of n tokens after `start` cached ones, through prefill_path_ (Auto:
  // as the engine would pick), or the fused kernel with prefill_rows_ rows per warp when set.
  void prefill(const Shape& s, int start, int n, int max_tokens, int max_ctx, double tol = 1e-3) {
    const std::vector<std::pair<int, int>> seqs{{start, n}};
    const PagedKv kv(s, {start + n}, rng_, prefill_block_);
    const int64_t cols = int64_t{s.heads} * s.hd, stride = cols + prefill_pad_;
    const std::vector<float> q = randn(n * stride, q_sd_);
    const auto ref = cpu_reference(s, kv, seqs, q, stride, max_ctx);

    const AttnArgs a = args_of(s);
    auto pa = PrefillAttention::create(a, max_tokens, max_ctx, stream_, prefill_path_);
    ASSERT_TRUE(pa.ok()) << pa.message();
    Dev<float> dq(q), dout(n * stride);
    if (prefill_rows_)
      prefill::flash(a, kv.dev_layer(s), kv.dtables->get(), start, n, dq.get(), dout.get(), stride, stream_,
                     prefill_rows_);
    else
      (*pa)->run(kv.dev_layer(s), kv.dtables->get(), start, n, dq.get(), dout.get(), stride);
    sync();
    const double err = compare(dout.download(), ref, n, stride, cols);
    const std::string how = prefill_rows_ ? "flash/" + std::to_string(prefill_rows_)
                                          : (*pa)->path() == PrefillPath::Flash ? "flash" : "cublas";
    std::printf("  prefill %s %d/%d hd %d cap %g win %d block %d start %d n %d: rel err %.2e\n", how.c_str(),
                s.heads, s.kv_heads, s.hd, s.softcap, s.window, prefill_block_, start, n, err);
    EXPECT_LE(err, tol) << "seed " << seed_;
  }
  PrefillPath prefill_path_ = PrefillPath::Auto;
  int prefill_block_ = kBlock;
  int prefill_rows_ = 0;
  int prefill_pad_ = 8;  // floats after the heads in each q / out row

  cudaStream_t stream_ = nullptr;
  uint32_t seed_ = 0;
  std::mt19937 rng_;
};

// Lengths 1, 3, 3000 and others in one batch, one token each.
const std::vector<std::pair<int, int>> kMixed{{0, 1}, {2, 1}, {2999, 1}, {700, 1}, {127, 1}};

TEST_F(CudaAttention, DecodeGqa4Hd128) { decode({32, 8, 128}, kMixed, 3072); }
TEST_F(CudaAttention, DecodeMhaHd64) { decode({8, 8, 64}, kMixed, 3072); }
TEST_F(CudaAttention, DecodeGqa8Hd256SoftCap) { decode({16, 2, 256, 20.0f}, kMixed, 3072); }
TEST_F(CudaAttention, DecodeGqa4Hd256WindowSoftCap) { decode({8, 2, 256, 20.0f, 512}, kMixed, 3072); }
TEST_F(CudaAttention, DecodeGqa1Hd128Window) { decode({4, 4, 128, 0.0f, 100}, kMixed, 3072); }
TEST_F(CudaAttention, DecodeGqa16TwoHeadTiles) { decode({32, 2, 64}, kMixed, 3072); }
TEST_F(CudaAttention, DecodeGqa3Hd80) { decode({12, 4, 80}, kMixed, 3072); }
TEST_F(CudaAttention, DecodeSmolLM2Shape) { decode({9, 3, 64}, {{0, 5}, {4, 1}, {30, 2}}, 1024); }
TEST_F(CudaAttention, DecodePeakyScores) {
  q_sd_ = 30.0f;
  decode({9, 3, 64}, {{0, 5}, {4, 1}, {300, 2}}, 1024);
}
TEST_F(CudaAttention, DecodeGqa6Hd96Window) { decode({12, 2, 96, 0.0f, 33}, kMixed, 4096); }
TEST_F(CudaAttention, DecodeBatch1LongContext) { decode({32, 8, 128}, {{8191, 1}}, 8192); }
TEST_F(CudaAttention, DecodeShortChunks) { decode({16, 4, 128, 0.0f, 0}, {{40, 7}, {0, 16}, {1000, 5}}, 2048); }
// max_ctx so large that the logits do not fit the scratch: pass 2 recomputes q.K.
TEST_F(CudaAttention, DecodeRecomputesLogits) { decode({32, 8, 128, 30.0f, 0}, kMixed, 1 << 20); }
// Enough tokens for one split per token (no combine pass).
TEST_F(CudaAttention, DecodeManyTokensOneSplit) {
  std::vector<std::pair<int, int>> seqs;
  std::uniform_int_distribution<int> len(0, 600);
  for (int i = 0; i < 70; ++i) seqs.push_back({len(rng_), 1});
  decode({32, 8, 64}, seqs, 1024);
}

// One capture, replayed after the positions changed on the device: the grid
// must not depend on the lengths.
TEST_F(CudaAttention, DecodeGraphReplayWithNewLengths) {
  const Shape s{32, 8, 128};
  const int max_ctx = 4096;
  const std::vector<int> first{5, 100, 2000}, second{6, 3000, 17};
  std::vector<int> lens;
  for (size_t i = 0; i < first.size(); ++i) lens.push_back(std::max(first[i], second[i]) + 1);
  const PagedKv kv(s, lens, rng_);
  const int64_t T = 3, cols = int64_t{s.heads} * s.hd, stride = cols;
  const std::vector<float> q = randn(T * stride, 2.0f);
  const AttnArgs a = args_of(s);
  Dev<float> dq(q), dout(T * stride);
  Dev<int32_t> dseq(std::vector<int32_t>{0, 1, 2}), dpos(std::vector<int32_t>(first.begin(), first.end()));
  Dev<uint8_t> scratch(paged_attention_scratch_bytes(a, T, max_ctx));
  const AttnBatch b{dseq.get(), dpos.get(), kv.dtables->get(), kv.max_blocks};
  cudaGraph_t graph;
  CK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  paged_attention(a, kv.dev_layer(s), b, dq.get(), dout.get(), T, stride, max_ctx, scratch.get(), stream_);
  CK(cudaStreamEndCapture(stream_, &graph));
  cudaGraphExec_t exec;
  CK(cudaGraphInstantiate(&exec, graph, 0));
  for (const auto* pos : {&first, &second}) {
    dpos.upload(std::vector<int32_t>(pos->begin(), pos->end()));
    CK(cudaGraphLaunch(exec, stream_));
    sync();
    std::vector<std::pair<int, int>> seqs;
    for (int p : *pos) seqs.push_back({p, 1});
    const auto ref = cpu_reference(s, kv, seqs, q, stride, max_ctx);
    EXPECT_LE(compare(dout.download(), ref, T, stride, cols), 1e-3) << "seed " << seed_;
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

TEST_F(CudaAttention, PrefillGqa4Hd128) {
  for (int n : {1, 17, 300}) {
    prefill({32, 8, 128}, 0, n, 300, 2048);
    prefill({32, 8, 128}, 45, n, 300, 2048);
  }
}
TEST_F(CudaAttention, PrefillMhaHd64Window) {
  for (int n : {1, 17, 300}) prefill({8, 8, 64, 0.0f, 64}, 1000, n, 512, 2048);
  prefill({8, 8, 64, 0.0f, 64}, 0, 300, 512, 2048);
}
TEST_F(CudaAttention, PrefillGqa8Hd256SoftCap) {
  for (int n : {1, 17, 300}) prefill({16, 2, 256, 30.0f}, 333, n, 300, 1024);
}
TEST_F(CudaAttention, PrefillGqa2Hd256WindowSoftCap) { prefill({8, 4, 256, 50.0f, 100}, 260, 300, 300, 1024); }
// Several query tiles (a long prefix and many heads), with and without a window.
TEST_F(CudaAttention, PrefillManyTiles) {
  prefill({32, 8, 128}, 2000, 300, 300, 4096);
  prefill({32, 8, 128, 0.0f, 256}, 2000, 300, 300, 4096);
  prefill({32, 4, 64}, 0, 1000, 1024, 16384);
}

// The cuBLAS path stays selectable (A/B, and the fallback for other head sizes).
TEST_F(CudaAttention, PrefillCublasPath) {
  prefill_path_ = PrefillPath::Cublas;
  prefill({32, 8, 128}, 45, 300, 300, 2048);
  prefill({8, 8, 64, 0.0f, 64}, 1000, 17, 512, 2048);
  prefill({16, 2, 128, 30.0f, 100}, 200, 300, 300, 1024);
}

// Which path runs: Flash for head_dim 64 / 128 (no scratch), cuBLAS otherwise.
TEST_F(CudaAttention, PrefillPathChoice) {
  const AttnArgs a128 = args_of({32, 8, 128}), a256 = args_of({16, 2, 256}), a80 = args_of({12, 4, 80});
  const char* env = std::getenv("VELO_PREFILL_ATTN");
  const bool forced = env && std::string(env) == "cublas";
  EXPECT_EQ(PrefillAttention::resolve(a128, PrefillPath::Auto), forced ? PrefillPath::Cublas : PrefillPath::Flash);
  EXPECT_EQ(PrefillAttention::resolve(a256, PrefillPath::Auto), PrefillPath::Cublas);
  EXPECT_EQ(PrefillAttention::resolve(a80, PrefillPath::Auto), PrefillPath::Cublas);
  EXPECT_EQ(PrefillAttention::scratch_bytes(a128, 512, 4096, PrefillPath::Flash), 0u);
  EXPECT_GT(PrefillAttention::scratch_bytes(a128, 512, 4096, PrefillPath::Cublas), 0u);
  EXPECT_FALSE(PrefillAttention::create(a256, 64, 1024, stream_, PrefillPath::Flash).ok());
  auto pa = PrefillAttention::create(a256, 64, 1024, stream_);
  ASSERT_TRUE(pa.ok()) << pa.message();
  EXPECT_EQ((*pa)->path(), PrefillPath::Cublas);
}

// The fused kernel: 64-row query tiles of (token, q head) over 64-key tiles. Group sizes
// 1 .. 16 (rows of one tile span 64 / group tokens), head_dim 64 and 128, chunks that
// are not a multiple of the tile, with and without a cached prefix.
TEST_F(CudaAttention, PrefillFlashGroups) {
  prefill_path_ = PrefillPath::Flash;
  const Shape shapes[] = {{8, 8, 128}, {8, 4, 64}, {16, 4, 128}, {24, 3, 64}, {32, 2, 128}, {32, 2, 64}};
  for (int rows : {16, 32}) {
    prefill_rows_ = rows;
    for (const Shape& s : shapes) {
      for (int n : {1, 63, 65, 130}) {
        prefill(s, 0, n, 256, 1024);
        prefill(s, 37, n, 256, 1024);
      }
    }
  }
}
// Sliding windows (shorter and longer than a tile, cutting tiles at both ends) and soft caps.
TEST_F(CudaAttention, PrefillFlashWindowSoftCap) {
  prefill_path_ = PrefillPath::Flash;
  for (int rows : {16, 32}) {
    prefill_rows_ = rows;
    prefill({8, 8, 64, 0.0f, 64}, 1000, 300, 512, 2048);
    prefill({8, 8, 64, 0.0f, 64}, 0, 300, 512, 2048);
    prefill({16, 4, 128, 0.0f, 17}, 100, 200, 256, 1024);
    prefill({16, 4, 128, 0.0f, 1}, 5, 70, 256, 1024);  // each token sees only itself
    prefill({16, 2, 128, 0.0f, 300}, 700, 257, 300, 2048);
    prefill({32, 8, 128, 50.0f}, 333, 300, 300, 1024);
    prefill({8, 2, 64, 30.0f, 100}, 260, 300, 300, 1024);
  }
}
// Llama-3-8B's shape over a long prompt, and a long chunk continuing a cached prefix.
TEST_F(CudaAttention, PrefillFlashLongContext) {
  prefill_path_ = PrefillPath::Flash;
  prefill({32, 8, 128}, 0, 2048, 2048, 2048);
  prefill_rows_ = 32;
  prefill({32, 8, 128}, 0, 2048, 2048, 2048);
  prefill_rows_ = 0;
  prefill({32, 8, 128}, 3000, 1000, 1024, 4096);
  prefill({32, 8, 128, 0.0f, 512}, 3000, 1000, 1024, 4096);
}
// Peaky (sink-like) attention: one key dominates, the running max jumps between tiles.
TEST_F(CudaAttention, PrefillFlashPeakyScores) {
  prefill_path_ = PrefillPath::Flash;
  q_sd_ = 30.0f;
  for (int rows : {16, 32}) {
    prefill_rows_ = rows;
    prefill({32, 8, 128}, 100, 300, 300, 1024);
    prefill({9, 3, 64}, 0, 200, 256, 1024);
  }
}
// Block sizes other than 16, one not a power of two (division, not shift, in the kernel).
TEST_F(CudaAttention, PrefillFlashBlockSizes) {
  prefill_path_ = PrefillPath::Flash;
  prefill_block_ = 24;
  prefill({32, 8, 128}, 50, 200, 256, 1024);
  prefill_block_ = 256;
  prefill({16, 4, 64, 0.0f, 100}, 300, 200, 256, 1024);
  prefill_rows_ = 32;
  prefill({16, 4, 128, 0.0f, 100}, 300, 200, 256, 1024);
}
// Odd row strides: out rows not 8-byte aligned (the kernel then stores single floats).
TEST_F(CudaAttention, PrefillFlashOddStride) {
  prefill_path_ = PrefillPath::Flash;
  prefill_pad_ = 3;
  prefill({32, 8, 128}, 10, 100, 128, 1024);
  prefill_rows_ = 32;
  prefill({8, 2, 64}, 10, 100, 128, 1024);
}

// Timings on the GPU (not a correctness check): ./test_cuda --gtest_also_run_disabled_tests
// --gtest_filter='*Timing*'
TEST_F(CudaAttention, DISABLED_Timing) {
  const Shape s{32, 8, 128};
  const AttnArgs a = args_of(s);
  auto time_us = [&](auto&& fn) {
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    fn();
    sync();
    const int reps = 50;
    CK(cudaEventRecord(e0, stream_));
    for (int i = 0; i < reps; ++i) fn();
    CK(cudaEventRecord(e1, stream_));
    sync();
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return 1000.0 * ms / reps;
  };
  for (int len : {512, 2048, 8192}) {
    const int max_ctx = 8192;
    const PagedKv kv(s, {len}, rng_);
    Dev<float> dq(randn(s.heads * s.hd, 1.0f)), dout(s.heads * s.hd);
    Dev<int32_t> dseq(std::vector<int32_t>{0}), dpos(std::vector<int32_t>{len - 1});
    Dev<uint8_t> scratch(paged_attention_scratch_bytes(a, 1, max_ctx));
    for (bool exact : {true, false}) {  // the exact-order kernel, then the split one
      const AttnBatch b{dseq.get(), dpos.get(), kv.dtables->get(), kv.max_blocks, 1, exact};
      const double us = time_us([&] {
        paged_attention(a, kv.dev_layer(s), b, dq.get(), dout.get(), 1, s.heads * s.hd, max_ctx, scratch.get(),
                        stream_);
      });
      const double gbs = 2.0 * len * s.kv_heads * s.hd * 2 / (us * 1e3);
      std::printf("  decode batch 1, 32/8 heads, hd 128, ctx %5d (max_ctx %d), %s kernel: %7.1f us (%.0f GB/s of K+V)\n",
                  len, max_ctx, exact ? "exact" : "split", us, gbs);
    }
  }
  for (int n : {512, 2048}) {
    const PagedKv kv(s, {n}, rng_);
    for (PrefillPath path : {PrefillPath::Cublas, PrefillPath::Flash}) {
      auto pa = PrefillAttention::create(a, n, n, stream_, path);
      ASSERT_TRUE(pa.ok()) << pa.message();
      Dev<float> dq(randn(static_cast<size_t>(n) * s.heads * s.hd, 1.0f)),
          dout(static_cast<size_t>(n) * s.heads * s.hd);
      const double us =
          time_us([&] { (*pa)->run(kv.dev_layer(s), kv.dtables->get(), 0, n, dq.get(), dout.get(), s.heads * s.hd); });
      const double tflops = 4.0 * s.heads * s.hd * (static_cast<double>(n) * (n + 1) / 2) / (us * 1e6);
      std::printf("  prefill %-6s n %d start 0, 32/8 heads, hd 128: %8.1f us (%.0f causal TFLOP/s)\n",
                  path == PrefillPath::Flash ? "flash" : "cublas", n, us, tflops);
    }
  }
}

}  // namespace
}  // namespace velo::cuda
