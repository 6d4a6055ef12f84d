// The memory planner's decisions, without a GPU: given a free-memory figure it
// places every layer, as many as fit, or refuses with the count that would
// fit, and adds F16 weight copies only when they fit too.
#include <gtest/gtest.h>

#include "backend/cuda/forward_plan.h"
#include "gguf/gguf.h"
#include "model/config.h"
#include "model/weights.h"
#include "test_models.h"

namespace velo::cuda {
namespace {

constexpr uint64_t GiB = uint64_t{1} << 30;

struct Model {
  std::unique_ptr<gguf::File> file;
  ModelConfig cfg;
  ModelWeights w;
};

Model load(const char* name) {
  Model m;
  auto f = gguf::File::open(test::model_path(name));
  EXPECT_TRUE(f.ok());
  m.file = std::move(f).value();
  m.cfg = *parse_config(*m.file);
  m.w = std::move(bind_weights(*m.file, m.cfg)).value();
  return m;
}

TransformerLimits limits(int ctx, int seqs) {
  TransformerLimits l;
  l.ctx_size = ctx;
  l.max_seqs = seqs;
  l.num_kv_blocks = (ctx + 15) / 16 * seqs;
  return l;
}

TEST(MemoryPlan, EverythingFitsOnABigCard) {
  Model m = load("SmolLM2-135M-Instruct.Q4_1.gguf");
  auto p = plan_for_free_memory(m.cfg, m.w, limits(2048, 4), Placement{}, 80 * GiB);
  ASSERT_TRUE(p.ok()) << p.message();
  EXPECT_EQ(p->gpu_layers, m.cfg.n_layer);
  EXPECT_TRUE(p->head_on_gpu);
  EXPECT_GT(p->weight_bytes, 90u << 20);  // the whole file's tensors
  EXPECT_GT(p->f16_cache_bytes, 0u);      // room for F16 copies of the Q4_1 matrices
  EXPECT_LE(p->total(), 80 * GiB);
}

TEST(MemoryPlan, AutopilotPlacesWhatFits) {
  Model m = load("SmolLM2-135M-Instruct.Q4_1.gguf");
  const TransformerLimits lim = limits(8192, 16);  // ~2.9 GiB of KV cache for 30 layers
  auto all = plan_for_free_memory(m.cfg, m.w, lim, Placement{}, 80 * GiB);
  ASSERT_TRUE(all.ok());
  const uint64_t free_b = all->total() - all->f16_cache_bytes - all->kv_bytes / 2;  // half the KV short
  auto p = plan_for_free_memory(m.cfg, m.w, lim, Placement{}, free_b);
  ASSERT_TRUE(p.ok()) << p.message();
  EXPECT_GT(p->gpu_layers, 0);
  EXPECT_LT(p->gpu_layers, m.cfg.n_layer);
  EXPECT_FALSE(p->head_on_gpu);
  EXPECT_LE(p->total() + (768u << 20), free_b);  // copies included, when they were added
  auto more = plan_for_free_memory(m.cfg, m.w, lim, Placement{}, free_b + all->kv_bytes);
  ASSERT_TRUE(more.ok());
  EXPECT_GT(more->gpu_layers, p->gpu_layers);
}

TEST(MemoryPlan, TooManyLayersIsRefusedWithTheCountThatFits) {
  Model m = load("SmolLM2-135M-Instruct.Q4_1.gguf");
  const TransformerLimits lim = limits(8192, 16);
  Placement where;
  where.gpu_layers = m.cfg.n_layer;
  auto all = plan_for_free_memory(m.cfg, m.w, lim, where, 80 * GiB);
  ASSERT_TRUE(all.ok());
  auto p = plan_for_free_memory(m.cfg, m.w, lim, where, all->total() / 2);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("--gpu-layers "), std::string::npos) << p.message();
  EXPECT_NE(p.message().find("is free"), std::string::npos) << p.message();
}

TEST(MemoryPlan, NothingFitsIsAClearError) {
  Model m = load("velo-code-40m.Q8_0.gguf");
  auto p = plan_for_free_memory(m.cfg, m.w, limits(1024, 1), Placement{}, 100u << 20);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("--device cpu"), std::string::npos) << p.message();
}

TEST(MemoryPlan, CopiesCanBeTurnedOff) {
  Model m = load("SmolLM2-135M-Instruct.Q4_1.gguf");
  Placement where;
  where.f16_cache = false;
  auto p = plan_for_free_memory(m.cfg, m.w, limits(2048, 4), where, 80 * GiB);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->f16_cache_bytes, 0u);
}

}  // namespace
}  // namespace velo::cuda
