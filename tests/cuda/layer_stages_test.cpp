// Layer 0 of SmolLM2 stage by stage on both backends, from the same inputs:
// every stage must be the CPU's to the bit (greedy decoding on the GPU follows
// the CPU's only then); the first that is not names the kernel to fix. Each GPU stage starts from
// the CPU's output of the stage before, so differences do not accumulate.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/kv_cache.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/ops.h"
#include "backend/cuda/devices.h"
#include "backend/cuda/matmul.h"
#include "backend/cuda/ops.h"
#include "core/thread_pool.h"
#include "gguf/gguf.h"
#include "model/config.h"
#include "model/weights.h"
#include "quant/quant.h"
#include "test_models.h"

namespace velo {
namespace {

struct Dev {
  void* p = nullptr;
  explicit Dev(size_t bytes) { cudaMalloc(&p, bytes); }
  Dev(const void* src, size_t bytes) : Dev(bytes) { cudaMemcpy(p, src, bytes, cudaMemcpyHostToDevice); }
  ~Dev() { cudaFree(p); }
  template <class T> T* as() const { return static_cast<T*>(p); }
};

std::vector<float> down(const float* d, size_t n) {
  std::vector<float> h(n);
  cudaDeviceSynchronize();
  cudaMemcpy(h.data(), d, n * 4, cudaMemcpyDeviceToHost);
  return h;
}

double rel(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, double(std::fabs(a[i] - b[i])));
    m = std::max(m, double(std::fabs(b[i])));
  }
  return m > 0 ? d / m : d;
}

TEST(CudaLayerStages, SmolLM2LayerZero) {
  if (cuda::list_devices().empty()) GTEST_SKIP() << "no CUDA GPU";
  auto f = gguf::File::open(test::model_path("SmolLM2-135M-Instruct.Q4_1.gguf"));
  ASSERT_TRUE(f.ok());
  auto cfgr = parse_config(**f);
  ASSERT_TRUE(cfgr.ok());
  ModelConfig c = *cfgr;
  auto wr = bind_weights(**f, c);
  ASSERT_TRUE(wr.ok());
  const ModelWeights& w = *wr;
  const LayerWeights& L = w.layers[0];
  const int E = c.n_embd, QD = c.q_dim(), KVD = c.kv_dim(), D = c.head_dim, F = c.n_ff, T = 5;
  const std::vector<int32_t> toks{1, 504, 1341, 3526, 5399};
  ThreadPool pool(2);
  cudaStream_t st;
  ASSERT_EQ(cudaStreamCreate(&st), cudaSuccess);
  auto mm = cuda::Matmul::create({F, 8, int64_t{F} * E}, st);
  ASSERT_TRUE(mm.ok());
  (*mm)->set_exact_order(true);  // the CPU's float order (Placement::exact_order)
  auto report = [&](const char* stage, const std::vector<float>& gpu, const std::vector<float>& cpu) {
    const double e = rel(gpu, cpu);
    size_t diff = gpu.size() == cpu.size() ? 0 : 1;
    for (size_t i = 0; i < std::min(gpu.size(), cpu.size()); ++i) diff += std::memcmp(&gpu[i], &cpu[i], 4) != 0;
    std::printf("  %-22s rel err %.3e, %zu of %zu values differ\n", stage, e, diff, cpu.size());
    EXPECT_EQ(diff, 0u) << stage;  // every stage is the CPU's to the bit
  };
  auto gpu_mm = [&](const cpu::WeightMatrix& m, const std::vector<float>& x) {
    const size_t wb = m.rows * *row_bytes(m.type, m.cols);
    Dev dw(m.data, wb), dx(x.data(), x.size() * 4), dy(T * m.rows * 4);
    (*mm)->run({m.type, dw.p, m.rows, m.cols}, dx.as<float>(), T, dy.as<float>());
    return down(dy.as<float>(), T * m.rows);
  };
  auto cpu_mm = [&](const cpu::WeightMatrix& m, const std::vector<float>& x) {
    std::vector<float> y(T * m.rows);
    cpu::matmul(m, x.data(), T, y.data(), pool);
    return y;
  };

  // Embeddings and the attention norm.
  std::vector<float> x(T * E), xb(T * E);
  const uint64_t rb = *row_bytes(w.tok_embd.type, E);
  for (int t = 0; t < T; ++t)
    (void)quant::dequantize_row(w.tok_embd.type, static_cast<const uint8_t*>(w.tok_embd.data) + toks[t] * rb,
                                &x[t * E], E);
  for (int t = 0; t < T; ++t) cpu::rmsnorm(&x[t * E], L.attn_norm, &xb[t * E], E, c.norm_eps);
  {
    Dev dx(x.data(), x.size() * 4), dw(L.attn_norm, E * 4), dy(x.size() * 4);
    cuda::rmsnorm(dx.as<float>(), dw.as<float>(), dy.as<float>(), T, E, c.norm_eps, st);
    report("attn rmsnorm", down(dy.as<float>(), x.size()), xb);
  }
  // Projections.
  std::vector<float> q = cpu_mm(L.wq, xb), k = cpu_mm(L.wk, xb), v = cpu_mm(L.wv, xb);
  report("q = xb Wq", gpu_mm(L.wq, xb), q);
  report("k = xb Wk", gpu_mm(L.wk, xb), k);
  // RoPE.
  const cpu::RopeParams rp{c.n_rot, c.rope_base, c.rope_freq_scale, w.rope_freqs, c.rope_layout};
  std::vector<float> qr = q, kr = k, cs(c.n_rot);
  for (int t = 0; t < T; ++t) {
    cpu::rope_cos_sin(rp, t, cs.data());
    cpu::rope_apply(rp, cs.data(), &qr[t * QD], c.n_head, D);
    cpu::rope_apply(rp, cs.data(), &kr[t * KVD], c.n_head_kv, D);
  }
  {
    std::vector<int32_t> pos{0, 1, 2, 3, 4};
    Dev dq(q.data(), q.size() * 4), dp(pos.data(), pos.size() * 4);
    auto table = cuda::RopeTable::build(rp, 16);
    ASSERT_TRUE(table.ok()) << table.message();
    cuda::rope(table->args(), dp.as<int32_t>(), dq.as<float>(), T, c.n_head, D, QD, st);
    report("rope(q)", down(dq.as<float>(), q.size()), qr);
  }
  // K/V into a one-block cache, then attention.
  auto kvc = cpu::KvCache::create(1, 1, 16, c.n_head_kv, D);
  ASSERT_TRUE(kvc.ok());
  cpu::KvLayerView view = kvc->layer(0);
  const int32_t block0 = 0;
  for (int t = 0; t < T; ++t) cpu::kv_store(view, &block0, t, &kr[t * KVD], &v[t * KVD]);
  std::vector<float> att(T * QD), scratch(cpu::attention_scratch_floats(pool.size(), 16, D));
  const cpu::AttnParams ap{c.n_head, c.n_head_kv, D, c.attn_scale, c.attn_softcap, 0};
  std::vector<cpu::AttnSeq> seqs{cpu::AttnSeq{qr.data(), att.data(), T, 0, &block0}};
  cpu::paged_attention(ap, view, seqs, QD, QD, 16, scratch.data(), pool);
  {
    const size_t halves = 16 * KVD;
    Dev dk(view.k, halves * 2), dv(view.v, halves * 2), dq(qr.data(), qr.size() * 4), dout(att.size() * 4);
    std::vector<int32_t> seq(T, 0), pos{0, 1, 2, 3, 4};
    Dev ds(seq.data(), T * 4), dp(pos.data(), T * 4), dbt(&block0, 4);
    const cuda::AttnArgs a{c.n_head, c.n_head_kv, D, c.attn_scale, c.attn_softcap, 0};
    Dev sc(cuda::paged_attention_scratch_bytes(a, T, 16) + 256);
    const cuda::KvLayer kl{dk.as<uint16_t>(), dv.as<uint16_t>(), 16, c.n_head_kv, D};
    cuda::paged_attention(a, kl, {ds.as<int32_t>(), dp.as<int32_t>(), dbt.as<int32_t>(), 1, T, true}, dq.as<float>(),
                          dout.as<float>(), T, QD, 16, sc.p, st);
    report("attention", down(dout.as<float>(), att.size()), att);
  }
  // Output projection, residual, FFN norm.
  std::vector<float> o = cpu_mm(L.wo, att);
  report("o = att Wo", gpu_mm(L.wo, att), o);
  std::vector<float> x2 = x, xb2(T * E);
  for (int t = 0; t < T; ++t) {
    cpu::add(&x2[t * E], &o[t * E], E);
    cpu::rmsnorm(&x2[t * E], L.ffn_norm, &xb2[t * E], E, c.norm_eps);
  }
  {
    Dev dx(x.data(), x.size() * 4), dd(o.data(), o.size() * 4), dw(L.ffn_norm, E * 4), dy(x.size() * 4);
    cuda::add_rmsnorm(dx.as<float>(), dd.as<float>(), nullptr, dw.as<float>(), dy.as<float>(), T, E, c.norm_eps, st);
    report("x += o", down(dx.as<float>(), x.size()), x2);
    report("ffn rmsnorm", down(dy.as<float>(), x.size()), xb2);
  }
  // Gated FFN.
  std::vector<float> g = cpu_mm(L.w_gate, xb2), u = cpu_mm(L.w_up, xb2), h(T * F);
  report("gate = xb Wg", gpu_mm(L.w_gate, xb2), g);
  cpu::swiglu(g.data(), u.data(), h.data(), T * F);
  {
    Dev dg(g.data(), g.size() * 4), du(u.data(), u.size() * 4), dh(h.size() * 4);
    cuda::glu(cuda::Glu::SiLU, dg.as<float>(), du.as<float>(), dh.as<float>(), T, F, st);
    report("silu(gate) * up", down(dh.as<float>(), h.size()), h);
  }
  std::vector<float> dn = cpu_mm(L.w_down, h);
  report("down = h Wd", gpu_mm(L.w_down, h), dn);
  cudaStreamDestroy(st);
}

}  // namespace
}  // namespace velo
