// velollm synth: presets (checked against the published parameter counts), the
// tensor plan and type mix, vocabulary padding, determinism, errors, and small
// written models that parse, bind and run to finite logits in our runner.
#include "model/synth.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>

#include "engine/model_runner.h"
#include "gguf/gguf.h"
#include "model/config.h"
#include "model/weights.h"
#include "test_models.h"

namespace velo {
namespace {

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("velo_synth_" + std::to_string(::getpid()) + "_" + name)).string();
}

std::string smollm2() { return test::model_path("SmolLM2-135M-Instruct.Q4_1.gguf"); }
std::string velo_code() { return test::model_path("velo-code-40m.Q8_0.gguf"); }  // llama2 SPM vocab, 32000 tokens

// A preset shrunk to test size (the architecture's extras kept).
synth::Options small(std::string_view preset, GgmlType type, const std::string& out) {
  synth::Options o;
  o.preset = *synth::find_preset(preset);
  o.preset.n_layer = 2;
  o.preset.n_embd = 256;
  o.preset.n_ff = 512;
  o.preset.n_head = 4;
  o.preset.n_head_kv = 2;
  o.preset.head_dim = 64;
  o.preset.n_vocab = 32000;
  o.type = type;
  o.vocab_from = velo_code();
  o.out = out;
  o.threads = 2;
  return o;
}

std::vector<char> slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

// Loads `path` in the runner and checks the logits of a few tokens are finite and spread.
void expect_runs(const std::string& path) {
  RunnerOptions ro;
  ro.threads = 2;
  ro.ctx_size = 64;
  auto r = ModelRunner::load(path, ro);
  ASSERT_TRUE(r.ok()) << r.message();
  StepPlan plan;
  plan.seqs.push_back({1, {1, 450, 4996, 17354, 1701}, 0, {0, 1, 2, 3}, true});
  auto logits = (*r)->execute(plan);
  ASSERT_TRUE(logits.ok()) << logits.message();
  ASSERT_EQ(logits->size(), static_cast<size_t>((*r)->n_vocab()));
  double sum = 0, sq = 0;
  for (float x : *logits) {
    ASSERT_TRUE(std::isfinite(x));
    sum += x;
    sq += double(x) * x;
  }
  const double mean = sum / logits->size(), sd = std::sqrt(sq / logits->size() - mean * mean);
  EXPECT_GT(sd, 0.05) << "logits are (nearly) constant";
  EXPECT_LT(sd, 50.0);
}

// Published parameter counts (Hugging Face model pages / safetensors metadata).
TEST(Synth, PresetsMatchThePublishedParameterCounts) {
  const std::map<std::string_view, uint64_t> published = {
      {"llama-3.1-8b", 8030261248}, {"llama-3.2-1b", 1235814400}, {"llama-3.2-3b", 3212749824},
      {"qwen2.5-7b", 7615616512},   {"qwen2.5-0.5b", 494032768},  {"qwen3-8b", 8190735360},
      {"gemma3-1b", 999885952},     {"smollm2-135m", 134515008}};
  ASSERT_EQ(synth::presets().size(), published.size());
  for (const auto& p : synth::presets()) {
    synth::Options o;
    o.preset = p;
    o.vocab_from = smollm2();  // 49152 tokens: padded up to every preset's vocabulary
    auto plan = synth::plan(o);
    ASSERT_TRUE(plan.ok()) << p.name << ": " << plan.message();
    EXPECT_EQ(plan->n_vocab, p.n_vocab) << p.name;
    const uint64_t rope_freqs = p.rope_factor > 0 ? p.head_dim / 2 : 0;  // ours, not a trained parameter
    EXPECT_EQ(plan->n_params - rope_freqs, published.at(p.name)) << p.name;
    EXPECT_NE(synth::preset_names().find(p.name), std::string::npos);
  }
  EXPECT_EQ(synth::find_preset("llama-3.1-70b"), nullptr);
}

TEST(Synth, TypeNames) {
  EXPECT_EQ(synth::parse_type("bf16"), GgmlType::BF16);
  EXPECT_EQ(synth::parse_type("f16"), GgmlType::F16);
  EXPECT_EQ(synth::parse_type("q8_0"), GgmlType::Q8_0);
  EXPECT_EQ(synth::parse_type("q4_k"), GgmlType::Q4_K);
  EXPECT_EQ(synth::parse_type("q4_0"), GgmlType::Q4_0);
  EXPECT_EQ(synth::parse_type("q6_k"), GgmlType::Q6_K);
  EXPECT_FALSE(synth::parse_type("q3_k"));
  EXPECT_EQ(synth::type_names(), "bf16, f16, q8_0, q4_k, q4_0, q6_k");
}

// q4_k follows llama.cpp's Q4_K_M: Q6_K output and Q6_K attn_v/ffn_down on the
// first and last eighth of the layers and every third between; a real
// Llama-3.1-8B Q4_K_M file holds about 4.92 GB of tensors.
TEST(Synth, Q4KUsesTheQ4KMMix) {
  synth::Options o;
  o.preset = *synth::find_preset("llama-3.1-8b");
  o.vocab_from = smollm2();
  auto plan = synth::plan(o);
  ASSERT_TRUE(plan.ok()) << plan.message();
  std::map<std::string, GgmlType> type;
  for (const auto& t : plan->tensors) type[t.name] = t.type;
  EXPECT_EQ(type["token_embd.weight"], GgmlType::Q4_K);
  EXPECT_EQ(type["output.weight"], GgmlType::Q6_K);
  EXPECT_EQ(type["rope_freqs.weight"], GgmlType::F32);
  EXPECT_EQ(type["blk.0.attn_norm.weight"], GgmlType::F32);
  int q6 = 0;
  for (int il = 0; il < 32; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    const bool more = il < 4 || il >= 28 || (il - 4) % 3 == 2;
    EXPECT_EQ(type[b + "attn_v.weight"], more ? GgmlType::Q6_K : GgmlType::Q4_K) << il;
    EXPECT_EQ(type[b + "ffn_down.weight"], more ? GgmlType::Q6_K : GgmlType::Q4_K) << il;
    EXPECT_EQ(type[b + "attn_q.weight"], GgmlType::Q4_K);
    q6 += more;
  }
  EXPECT_EQ(q6, 16);
  EXPECT_NEAR(plan->data_bytes / 1e9, 4.92, 0.05);
  // Tied: token_embd is the output projection and gets its type.
  o.preset = *synth::find_preset("llama-3.2-1b");
  plan = synth::plan(o);
  ASSERT_TRUE(plan.ok()) << plan.message();
  EXPECT_EQ(plan->tensors[0].name, "token_embd.weight");
  EXPECT_EQ(plan->tensors[0].type, GgmlType::Q6_K);
  for (const auto& t : plan->tensors) EXPECT_NE(t.name, "output.weight");
  // Rows that are not whole K blocks fall back as llama.cpp does (896 = 3.5 x 256).
  o.preset = *synth::find_preset("qwen2.5-0.5b");
  plan = synth::plan(o);
  ASSERT_TRUE(plan.ok()) << plan.message();
  type.clear();
  for (const auto& t : plan->tensors) type[t.name] = t.type;
  EXPECT_EQ(type["blk.0.attn_q.weight"], GgmlType::Q5_0);
  EXPECT_EQ(type["blk.0.ffn_down.weight"], GgmlType::Q6_K);  // 4864 = 19 x 256
  EXPECT_EQ(type["token_embd.weight"], GgmlType::Q8_0);
}

TEST(Synth, EachArchitectureWritesParsesBindsAndRuns) {
  const std::pair<std::string_view, GgmlType> cases[] = {{"llama-3.1-8b", GgmlType::Q4_K},
                                                         {"qwen2.5-7b", GgmlType::Q8_0},
                                                         {"qwen3-8b", GgmlType::BF16},
                                                         {"gemma3-1b", GgmlType::Q6_K}};
  for (const auto& [preset, type] : cases) {
    SCOPED_TRACE(std::string(preset));
    const std::string path = tmp_path(std::string(preset) + ".gguf");
    const auto o = small(preset, type, path);
    auto written = synth::write_model(o);
    ASSERT_TRUE(written.ok()) << written.message();
    auto f = gguf::File::open(path);
    ASSERT_TRUE(f.ok()) << f.message();
    EXPECT_EQ((*f)->tensors().size(), written->tensors.size());
    auto cfg = parse_config(**f);
    ASSERT_TRUE(cfg.ok()) << cfg.message();
    EXPECT_EQ(arch_name(cfg->arch), arch_name(o.preset.arch));
    EXPECT_EQ(cfg->n_layer, 2);
    EXPECT_EQ(cfg->n_embd, 256);
    EXPECT_EQ(cfg->n_head_kv, 2);
    EXPECT_EQ(cfg->head_dim, 64);
    EXPECT_EQ(cfg->n_ctx_train, o.preset.n_ctx);
    EXPECT_FLOAT_EQ(cfg->rope_base, o.preset.rope_base);
    EXPECT_FLOAT_EQ(cfg->norm_eps, o.preset.norm_eps);
    EXPECT_EQ(cfg->sliding_window, o.preset.sliding_window);
    auto w = bind_weights(**f, *cfg);
    ASSERT_TRUE(w.ok()) << w.message();
    EXPECT_EQ(w->tied_output, o.preset.tied);
    EXPECT_EQ(w->rope_freqs != nullptr, o.preset.rope_factor > 0);
    if (w->rope_freqs) {  // llama3: high frequencies kept, low ones slowed by the factor
      EXPECT_FLOAT_EQ(w->rope_freqs[0], 1.0f);
      EXPECT_FLOAT_EQ(w->rope_freqs[31], 8.0f);
    }
    EXPECT_EQ(w->layers[0].bq != nullptr, o.preset.arch == Arch::Qwen2);
    EXPECT_EQ(w->layers[0].q_norm != nullptr, o.preset.arch == Arch::Qwen3 || o.preset.arch == Arch::Gemma3);
    EXPECT_EQ(w->layers[1].post_ffn_norm != nullptr, o.preset.arch == Arch::Gemma3);
    f->reset();
    expect_runs(path);
    std::filesystem::remove(path);
  }
}

// The full SmolLM2-135M shape (30 layers): activations stay finite through every layer.
TEST(Synth, FullDepthModelRuns) {
  synth::Options o;
  o.preset = *synth::find_preset("smollm2-135m");
  o.type = GgmlType::Q8_0;
  o.vocab_from = smollm2();
  o.out = tmp_path("smollm2.gguf");
  uint64_t last = 0, calls = 0;
  o.progress = [&](uint64_t done, uint64_t total) {
    EXPECT_GT(done, last);
    EXPECT_LE(done, total);
    last = done;
    ++calls;
  };
  auto written = synth::write_model(o);
  ASSERT_TRUE(written.ok()) << written.message();
  EXPECT_EQ(last, written->data_bytes);
  EXPECT_GT(calls, 2u);
  EXPECT_EQ(written->pad_tokens, 0);
  expect_runs(o.out);
  std::filesystem::remove(o.out);
}

TEST(Synth, VocabularyIsPaddedWithControlTokens) {
  auto o = small("llama-3.2-1b", GgmlType::Q8_0, tmp_path("pad.gguf"));
  o.preset.n_vocab = 32100;
  auto written = synth::write_model(o);
  ASSERT_TRUE(written.ok()) << written.message();
  EXPECT_EQ(written->source_tokens, 32000);
  EXPECT_EQ(written->pad_tokens, 100);
  EXPECT_EQ(written->n_vocab, 32100);
  ASSERT_FALSE(written->notes.empty());
  auto f = gguf::File::open(o.out);
  ASSERT_TRUE(f.ok()) << f.message();
  auto toks = (*f)->get_string_array("tokenizer.ggml.tokens");
  auto types = (*f)->get_int_array("tokenizer.ggml.token_type");
  auto scores = (*f)->get_float_array("tokenizer.ggml.scores");
  ASSERT_TRUE(toks.ok() && types.ok() && scores.ok());
  ASSERT_EQ(toks->size(), 32100u);
  ASSERT_EQ(types->size(), 32100u);
  ASSERT_EQ(scores->size(), 32100u);
  EXPECT_EQ((*toks)[32000], "<|synth_pad_32000|>");
  EXPECT_EQ((*toks)[32099], "<|synth_pad_32099|>");
  EXPECT_EQ((*types)[32099], 3);  // CONTROL
  EXPECT_EQ((*scores)[32099], 0.0f);
  EXPECT_EQ((*toks)[1], "<s>");  // the source's own tokens are kept
  EXPECT_EQ((*f)->find_tensor("token_embd.weight")->ne[1], 32100u);
  auto bos = (*f)->get_uint("tokenizer.ggml.bos_token_id");
  ASSERT_TRUE(bos.ok());
  EXPECT_EQ(*bos, 1u);
  f->reset();
  expect_runs(o.out);
  // A preset vocabulary smaller than the source's: the source's size is used.
  o.preset.n_vocab = 1000;
  written = synth::write_model(o);
  ASSERT_TRUE(written.ok()) << written.message();
  EXPECT_EQ(written->n_vocab, 32000);
  EXPECT_EQ(written->pad_tokens, 0);
  EXPECT_NE(written->notes.at(0).find("more than"), std::string::npos) << written->notes[0];
  std::filesystem::remove(o.out);
}

TEST(Synth, SameSeedSameBytesWhateverTheThreadCount) {
  auto a = small("qwen2.5-0.5b", GgmlType::Q4_0, tmp_path("a.gguf"));
  auto b = a;
  b.out = tmp_path("b.gguf");
  b.threads = 3;
  auto c = a;
  c.out = tmp_path("c.gguf");
  c.seed = 2;
  ASSERT_TRUE(synth::write_model(a).ok());
  ASSERT_TRUE(synth::write_model(b).ok());
  ASSERT_TRUE(synth::write_model(c).ok());
  const auto ba = slurp(a.out), bb = slurp(b.out), bc = slurp(c.out);
  EXPECT_GT(ba.size(), 1000000u);
  EXPECT_TRUE(ba == bb);
  EXPECT_EQ(ba.size(), bc.size());
  EXPECT_FALSE(ba == bc);
  for (const auto& o : {a, b, c}) std::filesystem::remove(o.out);
}

TEST(Synth, Errors) {
  auto o = small("llama-3.2-1b", GgmlType::Q8_0, "/nonexistent-dir/x.gguf");
  auto r = synth::write_model(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("cannot write /nonexistent-dir/x.gguf"), std::string::npos) << r.message();
  o.out = std::filesystem::temp_directory_path().string();
  r = synth::write_model(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("is a directory"), std::string::npos) << r.message();
  o.out = tmp_path("x.gguf");
  o.vocab_from = "/nonexistent.gguf";
  r = synth::write_model(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("vocabulary source"), std::string::npos) << r.message();
  EXPECT_FALSE(std::filesystem::exists(o.out));
  o = small("llama-3.2-1b", GgmlType::Q8_0, tmp_path("x.gguf"));
  o.preset.n_head_kv = 3;  // 4 heads do not share 3 kv heads
  EXPECT_FALSE(synth::write_model(o).ok());
  EXPECT_FALSE(std::filesystem::exists(o.out));
}

}  // namespace
}  // namespace velo
