// CUDA row and element-wise kernels (backend/cuda/ops.h) against the CPU
// backend, their oracle, on fresh random inputs. Outputs are poisoned with NaN
// (0xFF bytes) first, so an element a kernel failed to write shows up.
// Tolerance: max|gpu - cpu| / max|cpu| <= 1e-6 for the norms; RoPE (its cos/sin
// table is the CPU's own), kv_store and both GLU activations are compared bit
// for bit; the fused decode kernels (rope_store, glu_act) bit for bit with the
// separate kernels they replace.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/cpu/kv_cache.h"
#include "backend/cpu/ops.h"
#include "backend/cuda/devices.h"
#include "cuda/cuda_test_util.h"
#include "backend/cuda/matmul_kernels.h"
#include "backend/cuda/norm_act.h"
#include "backend/cuda/ops.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace velo::cuda {
namespace {

using test::Dev;

class CudaRowOps : public ::testing::Test {
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
  // After every launch: launch errors, then execution errors.
  void sync() {
    CK(cudaGetLastError());
    CK(cudaStreamSynchronize(stream_));
  }
  std::vector<float> randn(size_t n, float sd = 1.0f) {
    std::normal_distribution<float> nd(0.0f, sd);
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng_);
    return v;
  }
  std::vector<float> uniform(size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> ud(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = ud(rng_);
    return v;
  }
  std::string ctx() const { return "seed " + std::to_string(seed_); }

  cudaStream_t stream_ = nullptr;
  uint32_t seed_ = 0;
  std::mt19937 rng_;
};

// max|out - ref| / max|ref|; infinite when out has a NaN/inf the reference lacks.
double rel_err(const std::vector<float>& out, const std::vector<float>& ref) {
  EXPECT_EQ(out.size(), ref.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(out[i]) && std::isfinite(ref[i])) return INFINITY;
    num = std::max(num, std::fabs(static_cast<double>(out[i]) - ref[i]));
    den = std::max(den, std::fabs(static_cast<double>(ref[i])));
  }
  return den > 0 ? num / den : num;
}

template <class T> size_t count_diff(const std::vector<T>& a, const std::vector<T>& b) {
  size_t bad = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) bad += std::memcmp(&a[i], &b[i], sizeof(T)) != 0;
  return bad;
}

constexpr double kTol = 1e-6;
const int kNs[] = {1, 7, 16, 33, 64, 576, 1001, 2048, 4096, 5120};
const int kRows[] = {1, 3, 300};

TEST_F(CudaRowOps, RmsNormMatchesCpu) {
  for (int n : kNs)
    for (int rows : kRows)
      for (int off : {0, 1})  // 1: misaligned, the scalar path
        for (bool with_w : {true, false}) {
          SCOPED_TRACE(ctx() + " n=" + std::to_string(n) + " rows=" + std::to_string(rows) +
                       " off=" + std::to_string(off) + " w=" + std::to_string(with_w));
          const size_t sz = static_cast<size_t>(rows) * n;
          auto x = randn(sz, 3.0f), w = randn(n);
          std::vector<float> ref(sz);
          for (int r = 0; r < rows; ++r)
            cpu::rmsnorm(x.data() + r * n, with_w ? w.data() : nullptr, ref.data() + r * n, n, 1e-6f);
          Dev<float> dx(x, off), dw(w, off), dy(sz, off);
          rmsnorm(dx.get(), with_w ? dw.get() : nullptr, dy.get(), rows, n, 1e-6f, stream_);
          sync();
          EXPECT_LE(rel_err(dy.download(), ref), kTol);
          rmsnorm(dx.get(), with_w ? dw.get() : nullptr, dx.get(), rows, n, 1e-6f, stream_);  // in place
          sync();
          EXPECT_LE(rel_err(dx.download(), ref), kTol);
        }
}

TEST_F(CudaRowOps, RmsNormManyRows) {
  const int rows = 65537, n = 16;  // more rows than a grid's y/z limit
  SCOPED_TRACE(ctx());
  auto x = randn(static_cast<size_t>(rows) * n), w = randn(n);
  std::vector<float> ref(x.size());
  for (int r = 0; r < rows; ++r) cpu::rmsnorm(x.data() + r * n, w.data(), ref.data() + r * n, n, 1e-5f);
  Dev<float> dx(x), dw(w), dy(x.size());
  rmsnorm(dx.get(), dw.get(), dy.get(), rows, n, 1e-5f, stream_);
  sync();
  EXPECT_LE(rel_err(dy.download(), ref), kTol);
}

TEST_F(CudaRowOps, AddRmsNormMatchesCpuAddThenNorm) {
  for (int n : kNs)
    for (int rows : kRows)
      for (int variant = 0; variant < 4; ++variant) {
        // variant bit 0: post-norm d_w; bit 1: misaligned (scalar path) and y aliasing d.
        const bool post = variant & 1, odd = variant & 2;
        SCOPED_TRACE(ctx() + " n=" + std::to_string(n) + " rows=" + std::to_string(rows) +
                     " variant=" + std::to_string(variant));
        const size_t sz = static_cast<size_t>(rows) * n;
        auto x = randn(sz, 2.0f), d = randn(sz, 5.0f), w = randn(n), dw = randn(n);
        std::vector<float> xref = x, yref(sz), tmp(n);
        for (int r = 0; r < rows; ++r) {
          float* xr = xref.data() + r * n;
          const float* dr = d.data() + r * n;
          if (post) {
            cpu::rmsnorm(dr, dw.data(), tmp.data(), n, 1e-6f);
            cpu::add(xr, tmp.data(), n);
          } else {
            cpu::add(xr, dr, n);
          }
          cpu::rmsnorm(xr, w.data(), yref.data() + r * n, n, 1e-6f);
        }
        const size_t off = odd ? 1 : 0;
        Dev<float> dx(x, off), dd(d, off), dww(w, off), ddw(dw, off), dy(sz, off);
        float* y = odd ? dd.get() : dy.get();
        add_rmsnorm(dx.get(), dd.get(), post ? ddw.get() : nullptr, dww.get(), y, rows, n, 1e-6f, stream_);
        sync();
        EXPECT_LE(rel_err(dx.download(), xref), kTol) << "x";
        EXPECT_LE(rel_err(odd ? dd.download() : dy.download(), yref), kTol) << "y";
      }
}

TEST_F(CudaRowOps, AddRmsNormWithoutWeight) {
  const int rows = 5, n = 576;
  SCOPED_TRACE(ctx());
  auto x = randn(rows * n), d = randn(rows * n);
  std::vector<float> xref = x, yref(rows * n);
  for (int r = 0; r < rows; ++r) {
    cpu::add(xref.data() + r * n, d.data() + r * n, n);
    cpu::rmsnorm(xref.data() + r * n, nullptr, yref.data() + r * n, n, 1e-5f);
  }
  Dev<float> dx(x), dd(d), dy(rows * n);
  add_rmsnorm(dx.get(), dd.get(), nullptr, nullptr, dy.get(), rows, n, 1e-5f, stream_);
  sync();
  EXPECT_LE(rel_err(dx.download(), xref), kTol);
  EXPECT_LE(rel_err(dy.download(), yref), kTol);
}

// Lengths around the vector width, the grid-stride cap (16384 CTAs x 256 threads x 4) and beyond.
const int64_t kLens[] = {1, 3, 4, 5, 1000, 4096 * 300 + 3, 5'000'001, 17'000'003};

TEST_F(CudaRowOps, AddScaleSoftcapMatchCpu) {
  for (int64_t n : kLens)
    for (int off : {0, 1}) {
      SCOPED_TRACE(ctx() + " n=" + std::to_string(n) + " off=" + std::to_string(off));
      auto x = randn(n, 20.0f), y = randn(n);
      Dev<float> dx(x, off), dy(y, off);
      auto ref = x;
      cpu::add(ref.data(), y.data(), static_cast<int>(n));
      add(dx.get(), dy.get(), n, stream_);
      sync();
      EXPECT_LE(rel_err(dx.download(), ref), kTol) << "add";
      cpu::scale(ref.data(), 0.0883883f, static_cast<int>(n));
      scale(dx.get(), 0.0883883f, n, stream_);
      sync();
      EXPECT_LE(rel_err(dx.download(), ref), kTol) << "scale";
      dx.upload(x);
      ref = x;
      cpu::softcap(ref.data(), 30.0f, static_cast<int>(n));
      softcap(dx.get(), 30.0f, n, stream_);
      sync();
      EXPECT_LE(rel_err(dx.download(), ref), kTol) << "softcap";
    }
}

TEST_F(CudaRowOps, AddBiasMatchesCpu) {
  for (int n : kNs)
    for (int rows : {1, 3, 300, 65537})
      for (int off : {0, 1}) {
        if (rows == 65537 && n > 64) continue;
        SCOPED_TRACE(ctx() + " n=" + std::to_string(n) + " rows=" + std::to_string(rows) +
                     " off=" + std::to_string(off));
        auto x = randn(static_cast<size_t>(rows) * n), b = randn(n);
        auto ref = x;
        for (int r = 0; r < rows; ++r) cpu::add(ref.data() + static_cast<size_t>(r) * n, b.data(), n);
        Dev<float> dx(x, off), db(b, off);
        add_bias(dx.get(), db.get(), rows, n, stream_);
        sync();
        EXPECT_LE(rel_err(dx.download(), ref), kTol);
      }
}

TEST_F(CudaRowOps, GluMatchesCpu) {
  for (Glu kind : {Glu::SiLU, Glu::GeLU})
    for (int n : kNs)
      for (int rows : kRows)
        for (int variant = 0; variant < 3; ++variant) {  // 0: plain, 1: misaligned, 2: out aliases gate
          SCOPED_TRACE(ctx() + " kind=" + std::to_string(static_cast<int>(kind)) + " n=" + std::to_string(n) +
                       " rows=" + std::to_string(rows) + " variant=" + std::to_string(variant));
          const size_t sz = static_cast<size_t>(rows) * n;
          auto gate = randn(sz, 30.0f), up = randn(sz);  // sd 30: GeLU's |g| >= 10 and exp's saturation too
          std::vector<float> ref(sz);
          if (kind == Glu::SiLU) cpu::swiglu(gate.data(), up.data(), ref.data(), static_cast<int>(sz));
          else cpu::geglu(gate.data(), up.data(), ref.data(), static_cast<int>(sz));
          const size_t off = variant == 1 ? 1 : 0;
          Dev<float> dg(gate, off), du(up, off), dout(sz, off);
          float* out = variant == 2 ? dg.get() : dout.get();
          glu(kind, dg.get(), du.get(), out, rows, n, stream_);
          sync();
          EXPECT_EQ(count_diff(variant == 2 ? dg.download() : dout.download(), ref), 0u);
        }
}

// Every half in (-11, 11) as the gate, up = 1: the activation itself, bit for bit with
// the CPU's fp16 table (plus values just around the +-10 cut-offs).
TEST_F(CudaRowOps, GeluEqualsCpuTableForEveryHalf) {
  std::vector<float> gate;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float x = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::fabs(x) < 11.0f) gate.push_back(x);
  }
  for (float c : {-10.0f, 10.0f})
    for (float e : {-1e-3f, -1e-6f, 0.0f, 1e-6f, 1e-3f}) gate.push_back(c + e);
  for (float v : randn(4097, 3.0f)) gate.push_back(v);  // off the half grid
  const std::vector<float> up(gate.size(), 1.0f);
  std::vector<float> ref(gate.size());
  cpu::geglu(gate.data(), up.data(), ref.data(), static_cast<int>(gate.size()));
  Dev<float> dg(gate), du(up), dout(gate.size());
  glu(Glu::GeLU, dg.get(), du.get(), dout.get(), 1, static_cast<int>(gate.size()), stream_);
  sync();
  const auto out = dout.download();
  int bad = 0;
  for (size_t i = 0; i < gate.size(); ++i)
    if (std::memcmp(&out[i], &ref[i], 4) != 0 && bad++ < 5)
      ADD_FAILURE() << "gate " << gate[i] << ": gpu " << out[i] << " cpu " << ref[i];
  EXPECT_EQ(bad, 0) << ctx();
}

struct RopeCase {
  int n_heads, head_dim, n_rot;
  bool neox, factors;
  float base, freq_scale;
  int extra;  // row_stride - n_heads * head_dim (a fused QKV row has other heads after)
};

TEST_F(CudaRowOps, RopeMatchesCpu) {
  const RopeCase cases[] = {
      {32, 128, 128, false, false, 10000.0f, 1.0f, 0},    // llama
      {8, 128, 128, false, true, 500000.0f, 1.0f, 2048},  // llama3 rope_freqs, K inside a QKV row
      {16, 128, 128, true, false, 1000000.0f, 1.0f, 0},   // qwen
      {4, 256, 256, true, false, 10000.0f, 0.125f, 512},  // gemma3 global layers (linear scaling)
      {3, 64, 32, true, true, 10000.0f, 1.0f, 7},         // partial rotation, odd stride
      {5, 80, 64, false, false, 10000.0f, 0.5f, 1},       // partial rotation, norm layout
  };
  for (const RopeCase& c : cases)
    for (int T : {1, 5, 300}) {
      SCOPED_TRACE(ctx() + " heads=" + std::to_string(c.n_heads) + " hd=" + std::to_string(c.head_dim) +
                   " n_rot=" + std::to_string(c.n_rot) + " neox=" + std::to_string(c.neox) + " T=" +
                   std::to_string(T));
      const int64_t stride = static_cast<int64_t>(c.n_heads) * c.head_dim + c.extra;
      auto x = randn(static_cast<size_t>(T) * stride);
      std::uniform_int_distribution<int32_t> pd(0, 8191);
      std::vector<int32_t> pos(T);
      for (auto& p : pos) p = pd(rng_);
      pos[0] = T > 1 ? 8191 : pos[0];
      if (T > 2) pos[1] = 0;
      auto factors = uniform(c.n_rot / 2, 1.0f, 8.0f);
      cpu::RopeParams p;
      p.n_rot = c.n_rot;
      p.freq_base = c.base;
      p.freq_scale = c.freq_scale;
      p.freq_factors = c.factors ? factors.data() : nullptr;
      p.layout = c.neox ? cpu::RopeLayout::Neox : cpu::RopeLayout::Norm;
      auto ref = x;
      std::vector<float> cs(c.n_rot);
      for (int t = 0; t < T; ++t) {
        cpu::rope_cos_sin(p, pos[t], cs.data());
        cpu::rope_apply(p, cs.data(), ref.data() + t * stride, c.n_heads, c.head_dim);
      }
      Dev<float> dx(x);
      Dev<int32_t> dpos(pos);
      auto table = RopeTable::build(p, 8192);
      ASSERT_TRUE(table.ok()) << table.message();
      rope(table->args(), dpos.get(), dx.get(), T, c.n_heads, c.head_dim, stride, stream_);
      sync();
      EXPECT_EQ(count_diff(dx.download(), ref), 0u);
    }
}

struct KvCase {
  int n_kv_heads, head_dim, block_size, num_blocks, T, extra, off;
};

TEST_F(CudaRowOps, KvStoreBitExactWithCpu) {
  const KvCase cases[] = {
      {8, 128, 16, 40, 300, 4096, 0},  // K/V inside a fused QKV row
      {1, 64, 32, 3, 1, 0, 0},
      {4, 256, 16, 9, 77, 0, 1},  // misaligned rows: scalar path
      {3, 5, 4, 11, 40, 1, 0},    // row of 15 halves: scalar path
  };
  for (const KvCase& c : cases) {
    SCOPED_TRACE(ctx() + " kv_heads=" + std::to_string(c.n_kv_heads) + " hd=" + std::to_string(c.head_dim) +
                 " T=" + std::to_string(c.T));
    const int row = c.n_kv_heads * c.head_dim;
    const int64_t stride = 2 * row + c.extra;  // k and v rows interleaved in one buffer
    const size_t cache = static_cast<size_t>(c.num_blocks) * c.block_size * row;
    // Normal values plus fp16 edge cases: overflow to inf, subnormals, ties.
    auto kv = randn(static_cast<size_t>(c.T) * stride, 10.0f);
    const float edges[] = {65504.0f, 65520.0f, 1e6f, -7e4f, 3e-6f, -6e-8f, 1e-9f, 1.00048828125f, 2049.0f};
    for (size_t i = 0; i < std::size(edges) && i < kv.size(); ++i) kv[i * 3 % kv.size()] = edges[i];
    // Distinct slots in random order; the last token skipped (slot -1).
    std::vector<int32_t> slots(static_cast<size_t>(c.num_blocks) * c.block_size);
    std::iota(slots.begin(), slots.end(), 0);
    std::shuffle(slots.begin(), slots.end(), rng_);
    slots.resize(c.T);
    if (c.T > 1) slots.back() = -1;

    std::vector<uint16_t> kref(cache, 0xFFFF), vref(cache, 0xFFFF);
    std::vector<int32_t> identity(c.num_blocks);
    std::iota(identity.begin(), identity.end(), 0);  // block table 0, 1, 2...: position == slot
    const cpu::KvLayerView view{kref.data(), vref.data(), c.block_size, c.n_kv_heads, c.head_dim};
    for (int t = 0; t < c.T; ++t)
      if (slots[t] >= 0)
        cpu::kv_store(view, identity.data(), slots[t], kv.data() + t * stride, kv.data() + t * stride + row);

    Dev<float> dkv(kv, c.off);
    Dev<uint16_t> dk(cache), dv(cache);  // poisoned 0xFFFF, like the reference
    Dev<int32_t> dslots(slots);
    KvLayer layer{dk.get(), dv.get(), c.block_size, c.n_kv_heads, c.head_dim};
    kv_store(layer, dslots.get(), dkv.get(), dkv.get() + row, c.T, stride, stream_);
    sync();
    EXPECT_EQ(count_diff(dk.download(), kref), 0u) << "K";
    EXPECT_EQ(count_diff(dv.download(), vref), 0u) << "V";
  }
}

struct RopeStoreCase {
  int n_heads, n_kv_heads, head_dim, n_rot;
  bool neox;
  float q_scale;
  int q_extra, kv_extra;  // row strides beyond the heads
};

// rope_store == rope(q), rope(k), q *= q_scale per row, kv_store(k, v): q, k and both
// caches bit for bit (the separate kernels are checked against the CPU above).
TEST_F(CudaRowOps, RopeStoreEqualsSeparateKernels) {
  const RopeStoreCase cases[] = {
      {32, 8, 128, 128, false, 1.0f, 0, 0},        // llama 3 8B
      {16, 2, 128, 128, true, 1.0f, 0, 0},         // qwen
      {8, 4, 256, 256, true, 0.0625f, 0, 0},       // gemma3: query_pre_scale
      {3, 1, 64, 32, true, 0.125f, 5, 3},          // partial rotation, odd strides
      {5, 5, 80, 64, false, 0.5f, 0, 1},           // partial rotation, adjacent pairs
      {2, 1, 64, 0, false, 1.0f, 0, 0},            // no rotation (table absent)
      {3, 1, 5, 4, false, 0.25f, 0, 0},            // odd head_dim: the separate kernels
  };
  for (const RopeStoreCase& c : cases)
    for (int T : {1, 5, 8}) {
      SCOPED_TRACE(ctx() + " heads=" + std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads) +
                   " hd=" + std::to_string(c.head_dim) + " n_rot=" + std::to_string(c.n_rot) +
                   " T=" + std::to_string(T));
      const int block_size = 16, num_blocks = 4, row = c.n_kv_heads * c.head_dim;
      const int64_t qs = static_cast<int64_t>(c.n_heads) * c.head_dim + c.q_extra, kvs = row + c.kv_extra;
      auto q = randn(static_cast<size_t>(T) * qs, 4.0f), k = randn(static_cast<size_t>(T) * kvs, 4.0f),
           v = randn(static_cast<size_t>(T) * kvs, 4.0f);
      std::uniform_int_distribution<int32_t> pd(0, 4095);
      std::vector<int32_t> pos(T), slots(static_cast<size_t>(num_blocks) * block_size);
      for (auto& p : pos) p = pd(rng_);
      std::iota(slots.begin(), slots.end(), 0);
      std::shuffle(slots.begin(), slots.end(), rng_);
      slots.resize(T);
      if (T > 1) slots.back() = -1;  // skipped
      cpu::RopeParams p;
      p.n_rot = c.n_rot;
      p.freq_base = 500000.0f;
      p.layout = c.neox ? cpu::RopeLayout::Neox : cpu::RopeLayout::Norm;
      auto table = RopeTable::build(p, 4096);
      ASSERT_TRUE(table.ok()) << table.message();
      const RopeArgs& ra = table->args();
      const size_t cache = static_cast<size_t>(num_blocks) * block_size * row;
      Dev<int32_t> dpos(pos), dslots(slots);
      std::vector<std::vector<float>> fl;
      std::vector<std::vector<uint16_t>> hl;
      for (bool fused : {false, true}) {
        Dev<float> dq(q), dk(k), dv(v);
        Dev<uint16_t> kc(cache), vc(cache);
        const KvLayer layer{kc.get(), vc.get(), block_size, c.n_kv_heads, c.head_dim};
        if (fused) {
          rope_store(ra, dpos.get(), dq.get(), c.n_heads, qs, c.q_scale, dk.get(), dv.get(), kvs, layer,
                     dslots.get(), T, stream_);
        } else {
          rope(ra, dpos.get(), dq.get(), T, c.n_heads, c.head_dim, qs, stream_);
          rope(ra, dpos.get(), dk.get(), T, c.n_kv_heads, c.head_dim, kvs, stream_);
          if (c.q_scale != 1.0f)
            for (int t = 0; t < T; ++t)
              scale(dq.get() + t * qs, c.q_scale, static_cast<int64_t>(c.n_heads) * c.head_dim, stream_);
          kv_store(layer, dslots.get(), dk.get(), dv.get(), T, kvs, stream_);
        }
        sync();
        fl.push_back(dq.download());
        fl.push_back(dk.download());
        hl.push_back(kc.download());
        hl.push_back(vc.download());
      }
      EXPECT_EQ(count_diff(fl[2], fl[0]), 0u) << "q";
      EXPECT_EQ(count_diff(fl[3], fl[1]), 0u) << "k";
      EXPECT_EQ(count_diff(hl[2], hl[0]), 0u) << "K cache";
      EXPECT_EQ(count_diff(hl[3], hl[1]), 0u) << "V cache";
      if (c.n_rot > 0 || c.q_scale != 1.0f) {
        EXPECT_NE(count_diff(fl[0], q), 0u) << "nothing rotated or scaled";
      }
    }
}

// glu_act == glu, then the standalone conversion of its output (quantize_act /
// round_act_half) into a buffer of the same layout: out and every byte of the scratch.
TEST_F(CudaRowOps, GluActEqualsGluThenConversion) {
  using Kind = Matmul::ActPrep::Kind;
  for (Kind kind : {Kind::kQ8, Kind::kQ8K, Kind::kF16, Kind::kBF16})
    for (Glu g : {Glu::SiLU, Glu::GeLU})
      for (int n : {512, 14336})
        for (int rows : {1, 3, 8})
          for (int variant = 0; variant < 3; ++variant) {  // 0: plain, 1: misaligned, 2: out aliases gate
            SCOPED_TRACE(ctx() + " kind=" + std::to_string(static_cast<int>(kind)) + " glu=" +
                         std::to_string(static_cast<int>(g)) + " n=" + std::to_string(n) + " rows=" +
                         std::to_string(rows) + " variant=" + std::to_string(variant));
            const size_t sz = static_cast<size_t>(rows) * n;
            auto gate = randn(sz, 4.0f), up = randn(sz);
            for (size_t i = 0; i < sz; i += 97) gate[i] *= 8.0f;  // GeLU's |g| >= 10, exp's saturation
            if (rows > 1) std::fill(up.begin() + n, up.begin() + n + 256, 0.0f);  // all-zero blocks
            const bool half = kind == Kind::kF16 || kind == Kind::kBF16;
            const auto f = kind == Kind::kQ8 ? detail::ActQuant::kQ8 : detail::ActQuant::kQ8K;
            const uint64_t bytes = half ? sz * 2 : detail::act_q8_bytes(f, rows, n);
            const size_t off = variant == 1 ? 1 : 0;
            std::vector<std::vector<float>> outs;
            std::vector<std::vector<uint8_t>> acts;
            for (bool fused : {false, true}) {
              Dev<float> dg(gate, off), du(up, off), dout(sz, off);
              Dev<uint8_t> act(bytes);  // poisoned: bytes neither writes stay equal
              float* out = variant == 2 ? dg.get() : dout.get();
              if (fused) {
                glu_act(g, dg.get(), du.get(), out, rows, n, Matmul::ActPrep{kind, act.get()}, stream_);
              } else {
                glu(g, dg.get(), du.get(), out, rows, n, stream_);
                if (half)
                  detail::round_act_half(out, static_cast<int64_t>(sz), kind == Kind::kBF16,
                                         reinterpret_cast<uint16_t*>(act.get()), stream_);
                else
                  detail::quantize_act(f, out, rows, n, act.get(), stream_);
              }
              sync();
              outs.push_back(variant == 2 ? dg.download() : dout.download());
              acts.push_back(act.download());
            }
            EXPECT_EQ(count_diff(outs[1], outs[0]), 0u) << "out";
            EXPECT_EQ(count_diff(acts[1], acts[0]), 0u) << "converted";
          }
}

// Launchers only enqueue (no sync, no allocation): a sequence of them captured into a
// CUDA graph and replayed gives the same bits as the eager calls.
TEST_F(CudaRowOps, LaunchersCaptureIntoGraph) {
  SCOPED_TRACE(ctx());
  const int T = 3, heads = 4, hd = 64, n = heads * hd, ff = 320;
  auto x = randn(T * n), d = randn(T * n), w = randn(n), gate = randn(T * ff), up = randn(T * ff);
  const std::vector<int32_t> pos = {5, 100, 7000}, slots = {9, 0, 4};
  std::vector<std::vector<float>> got;
  for (bool graph : {false, true}) {
    Dev<float> dx(x), dd(d), dw(w), dy(T * n), dg(gate), du(up);
    Dev<int32_t> dpos(pos), dslots(slots);
    Dev<uint16_t> kc(16 * n), vc(16 * n);
    cpu::RopeParams rp;
    rp.n_rot = hd;
    rp.layout = cpu::RopeLayout::Neox;
    auto table = RopeTable::build(rp, 8192);
    ASSERT_TRUE(table.ok()) << table.message();
    const RopeArgs& ra = table->args();
    const KvLayer layer{kc.get(), vc.get(), 4, heads, hd};
    Dev<uint16_t> kc2(16 * n), vc2(16 * n);
    const KvLayer half_layer{kc2.get(), vc2.get(), 4, heads, hd};  // k, v rows of `heads` heads
    Dev<uint8_t> act(detail::act_q8_bytes(detail::ActQuant::kQ8, T, ff));
    cudaGraph_t g = nullptr;
    if (graph) CK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal));
    add_rmsnorm(dx.get(), dd.get(), dw.get(), dw.get(), dy.get(), T, n, 1e-6f, stream_);
    rope(ra, dpos.get(), dy.get(), T, heads, hd, n, stream_);
    kv_store(layer, dslots.get(), dy.get(), dx.get(), T, n, stream_);
    glu(Glu::GeLU, dg.get(), du.get(), dg.get(), T, ff, stream_);
    softcap(dg.get(), 30.0f, T * ff, stream_);
    // The fused decode kernels (programmatic dependent launches) after the others.
    rope_store(ra, dpos.get(), dx.get(), heads / 2, n, 0.5f, dy.get(), dd.get(), n, half_layer, dslots.get(), T,
               stream_);
    glu_act(Glu::SiLU, dg.get(), du.get(), dg.get(), T, ff, Matmul::ActPrep{Matmul::ActPrep::Kind::kQ8, act.get()},
            stream_);
    if (graph) {
      CK(cudaStreamEndCapture(stream_, &g));
      cudaGraphExec_t exec = nullptr;
      CK(cudaGraphInstantiate(&exec, g, 0));
      CK(cudaGraphLaunch(exec, stream_));
      sync();
      CK(cudaGraphExecDestroy(exec));
      CK(cudaGraphDestroy(g));
    }
    sync();
    std::vector<float> all = dy.download();
    for (const auto& v : {dx.download(), dg.download()}) all.insert(all.end(), v.begin(), v.end());
    for (const auto& h : {kc.download(), vc.download(), kc2.download(), vc2.download()})
      all.insert(all.end(), h.begin(), h.end());
    const std::vector<uint8_t> a = act.download();
    for (size_t i = 0; i < a.size(); i += 4) {
      float f;
      std::memcpy(&f, a.data() + i, 4);
      all.push_back(f);
    }
    got.push_back(std::move(all));
  }
  EXPECT_EQ(std::memcmp(got[0].data(), got[1].data(), got[0].size() * 4), 0);
}

}  // namespace
}  // namespace velo::cuda
