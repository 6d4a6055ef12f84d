// The forward pass on the GPU: the same stages as the CPU Transformer
// (src/model/transformer.cpp), each a kernel from ops.h / matmul.h, enqueued
// on one stream. Pure decode steps (one token per sequence) are captured into
// a CUDA graph per token count and replayed: their kernels read every
// per-step value (tokens, positions, block tables) from device buffers that
// are refreshed by one host-to-device copy before the launch.
#include "backend/cuda/cuda_forward.h"
#include "backend/cuda/cuda_forward_impl.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "backend/cuda/devices.h"
#include "backend/cuda/device_model.h"
#include "backend/cuda/forward_plan.h"
#include "backend/cuda/gather_rows.h"
#include "backend/cuda/norm_act.h"
#include "backend/cuda/ops.h"
#include "model/transformer.h"
#include "quant/quant.h"

namespace velo::cuda {
CudaForward::~CudaForward() {
  if (stream_) cudaStreamSynchronize(stream_);
  for (auto& [t, g] : graphs_) cudaGraphExecDestroy(g);
  if (host_) cudaFreeHost(host_);
  if (logits_all_host_) cudaFreeHost(logits_all_host_);
  mm_.reset();
  prefill_[0].reset();
  prefill_[1].reset();
  if (stream_) cudaStreamDestroy(stream_);
}

Status CudaForward::init() {
  const ModelConfig& c = cfg_;
  const int L = mp_.gpu_layers;
  VELO_CUDA_TRY(cudaSetDevice(where_.device));
  VELO_CUDA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  const bool progress = mp_.weight_bytes > (uint64_t{1} << 30);
  VELO_ASSIGN_OR_RETURN(dm_, upload_model(c, w_, L, mp_.head_on_gpu, stream_, progress));

  VELO_ASSIGN_OR_RETURN(kv_, DeviceBuffer::alloc(mp_.kv_bytes));
  VELO_ASSIGN_OR_RETURN(act_, DeviceBuffer::alloc(shape_.act_bytes()));
  VELO_ASSIGN_OR_RETURN(meta_, DeviceBuffer::alloc(shape_.meta_bytes()));
  VELO_ASSIGN_OR_RETURN(attn_scratch_, DeviceBuffer::alloc(shape_.paged_scratch_bytes()));
  MatmulLimits ml = shape_.matmul_limits(w_, L);
  if (mp_.f16_cache_bytes > 0) {  // F16 copies replace the per-call dequantization scratch
    ml.max_weight_elems = 0;
    VELO_TRY(build_f16_cache());
  }
  max_dequant_ = ml.max_weight_elems;
  VELO_ASSIGN_OR_RETURN(mm_, Matmul::create(ml, stream_));
  mm_->set_exact_order(where_.exact_order);
  for (int v = 0; v < (c.sliding_window > 0 ? 2 : 1); ++v) {
    VELO_ASSIGN_OR_RETURN(rope_[v], RopeTable::build(shape_.rope_params(v == 1, w_.rope_freqs), lim_.ctx_size));
    VELO_ASSIGN_OR_RETURN(prefill_[v], PrefillAttention::create(shape_.attn_args(v == 1), shape_.prefill_chunk,
                                                                lim_.ctx_size, stream_));
  }
  VELO_CUDA_TRY(cudaMallocHost(&host_, shape_.host_bytes()));

  // Carve the buffers (sizes and order are ForwardShape's).
  float* a = act_.get<float>();
  auto take = [&a](int64_t n) { float* p = a; a += n; return p; };
  const int64_t T = lim_.max_batch_tokens, S = lim_.max_seqs;
  x_ = take(T * c.n_embd);
  xb_ = take(T * c.n_embd);
  xb2_ = take(T * c.n_embd);
  q_ = take(T * c.q_dim());
  att_ = take(T * c.q_dim());
  k_ = take(T * c.kv_dim());
  v_ = take(T * c.kv_dim());
  hg_ = take(T * c.n_ff);
  hu_ = take(T * c.n_ff);
  h_ = take(S * c.n_embd);
  logits_ = take(S * c.n_vocab);
  int32_t* m = meta_.get<int32_t>();
  d_tok_ = m; d_pos_ = m + T; d_seq_ = m + 2 * T; d_slot_ = m + 3 * T; d_out_ = m + 4 * T; d_bt_ = m + 4 * T + S;
  h_meta_ = static_cast<int32_t*>(host_);
  h_tok_ = h_meta_; h_pos_ = h_meta_ + T; h_seq_ = h_meta_ + 2 * T; h_slot_ = h_meta_ + 3 * T;
  h_out_ = h_meta_ + 4 * T; h_bt_ = h_meta_ + 4 * T + S;
  h_x_ = reinterpret_cast<float*>(static_cast<uint8_t*>(host_) + shape_.meta_bytes());
  h_logits_ = h_x_ + T * c.n_embd;

  if (!mp_.head_on_gpu) {
    VELO_ASSIGN_OR_RETURN(cpu_, Transformer::create(c, w_, lim_, pool_, L));
  }
  VELO_CUDA_TRY(cudaStreamSynchronize(stream_));
  const auto devs = list_devices();
  const std::string name = where_.device < static_cast<int>(devs.size()) ? devs[where_.device].name : "GPU";
  desc_ = "cuda:" + std::to_string(where_.device) + " " + name + " (" + std::to_string(L) + "/" +
          std::to_string(c.n_layer) + " layers" + (mp_.head_on_gpu ? "" : ", the rest on the CPU") + ", " +
          std::to_string(mp_.total() >> 20) + " MiB" + (mp_.f16_cache_bytes ? ", F16 copies for prompts" : "") +
          (where_.exact_order ? ", CPU-exact order" : "") + ")";
  return {};
}

KvLayer CudaForward::kv_layer(int il) const {
  const int64_t per = shape_.kv_layer_halves();
  auto* base = kv_.get<uint16_t>() + static_cast<int64_t>(il) * 2 * per;
  return KvLayer{base, base + per, lim_.block_size, cfg_.n_head_kv, cfg_.head_dim};
}

Status CudaForward::build_f16_cache() {
  VELO_ASSIGN_OR_RETURN(f16_, DeviceBuffer::alloc(mp_.f16_cache_bytes));
  auto* out = f16_.get<uint8_t>();
  for (const DevLayer& L : dm_.layers)
    for (const DevMatrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) {
      if (!m->data || !needs_dequant(m->type) || m->type == GgmlType::F32) continue;
      dequantize_to_f16(*m, reinterpret_cast<uint16_t*>(out), stream_);
      f16_of_[m->data] = DevMatrix{GgmlType::F16, out, m->rows, m->cols};
      out += (static_cast<uint64_t>(m->rows) * m->cols * 2 + 255) / 256 * 256;
    }
  VELO_CUDA_TRY(cudaGetLastError());
  return {};
}

void CudaForward::mm(const DevMatrix& w, const float* x, int64_t m, float* y) {
  if (m > kMaxMatvecTokens) {
    if (auto it = f16_of_.find(w.data); it != f16_of_.end()) {
      mm_->run(it->second, x, m, y);
      return;
    }
  }
  // A quantized matrix larger than the dequantization scratch (the LM head) takes the
  // matvec path in slices of kMaxMatvecTokens tokens.
  if (m > kMaxMatvecTokens && needs_dequant(w.type) && w.rows * w.cols > max_dequant_) {
    for (int64_t i = 0; i < m; i += kMaxMatvecTokens)
      mm_->run(w, x + i * w.cols, std::min(kMaxMatvecTokens, m - i), y + i * w.rows, w.rows);
    return;
  }
  mm_->run(w, x, m, y);
}

void CudaForward::enqueue_attention(int il, int32_t step_tokens) {
  const bool swa = cfg_.is_swa(il);
  const AttnArgs a = shape_.attn_args(swa);
  const KvLayer kv = kv_layer(il);
  const int QD = cfg_.q_dim();
  for (const Segment& s : segs_) {
    if (!s.prefill) {
      const AttnBatch b{d_seq_ + s.t0, d_pos_ + s.t0, d_bt_, shape_.max_blocks, step_tokens, where_.exact_order};
      paged_attention(a, kv, b, q_ + static_cast<int64_t>(s.t0) * QD, att_ + static_cast<int64_t>(s.t0) * QD, s.n,
                      QD, lim_.ctx_size, attn_scratch_.get(), stream_);
      continue;
    }
    // Long chunk: tensor-core attention in slices of prefill_chunk queries.
    const int32_t* bt = d_bt_ + static_cast<int64_t>(s.seq) * shape_.max_blocks;
    for (int32_t j = 0; j < s.n; j += shape_.prefill_chunk) {
      const int32_t n = std::min(shape_.prefill_chunk, s.n - j);
      const int64_t row = static_cast<int64_t>(s.t0 + j) * QD;
      prefill_[swa ? 1 : 0]->run(kv, bt, s.start_pos + j, n, q_ + row, att_ + row, QD);
    }
  }
}

void CudaForward::enqueue_layer(int il, int32_t T) {
  const ModelConfig& c = cfg_;
  const DevLayer& L = dm_.layers[il];
  const int E = c.n_embd, QD = c.q_dim(), KVD = c.kv_dim(), D = c.head_dim, F = c.n_ff;
  const float eps = c.norm_eps;
  const bool swa = c.is_swa(il);

  // Decode-sized steps run Q/K/V and gate/up as grouped matvecs (one launch each), whose
  // activation conversion the norm before them writes in its epilogue (add_rmsnorm_act);
  // likewise the GLU for w_down (glu_act), and RoPE + KV store are one launch (rope_store).
  const bool group = T <= kMaxMatvecTokens;
  const Matmul::Out qkv[3] = {{L.wq, q_, 0}, {L.wk, k_, 0}, {L.wv, v_, 0}};
  const Matmul::Out gate_up[2] = {{L.w_gate, hg_, 0}, {L.w_up, hu_, 0}};

  // Attention input norm (later layers get it fused into the previous residual add).  xb [T, E]
  if (il == 0) rmsnorm(x_, L.attn_norm, xb_, T, E, eps, stream_);
  // q = xb Wq^T [T, QD]; k, v = xb Wk^T, xb Wv^T [T, KVD]
  if (group) {
    mm_->run_group(qkv, 3, xb_, T, /*x_prepared=*/il > 0);  // by the previous layer's last norm
  } else {
    mm(L.wq, xb_, T, q_);
    mm(L.wk, xb_, T, k_);
    mm(L.wv, xb_, T, v_);
  }
  if (L.bq) add_bias(q_, L.bq, T, QD, stream_);
  if (L.bk) add_bias(k_, L.bk, T, KVD, stream_);
  if (L.bv) add_bias(v_, L.bv, T, KVD, stream_);
  if (L.q_norm) {  // per-head RMSNorm (qwen3, gemma3)
    rmsnorm(q_, L.q_norm, q_, static_cast<int64_t>(T) * c.n_head, D, eps, stream_);
    rmsnorm(k_, L.k_norm, k_, static_cast<int64_t>(T) * c.n_head_kv, D, eps, stream_);
  }
  const RopeArgs& ra = rope_[swa ? 1 : 0].args();
  if (group) {  // the same four steps in one launch (rope_store.cu)
    rope_store(ra, d_pos_, q_, c.n_head, QD, c.query_pre_scale, k_, v_, KVD, kv_layer(il), d_slot_, T, stream_);
  } else {
    rope(ra, d_pos_, q_, T, c.n_head, D, QD, stream_);
    rope(ra, d_pos_, k_, T, c.n_head_kv, D, KVD, stream_);
    if (c.query_pre_scale != 1.0f) scale(q_, c.query_pre_scale, static_cast<int64_t>(T) * QD, stream_);
    kv_store(kv_layer(il), d_slot_, k_, v_, T, KVD, stream_);
  }

  enqueue_attention(il, T);  // att [T, QD]

  // x += [post_norm](att Wo^T); xb = rmsnorm(x) * ffn_norm                 [T, E]
  mm(L.wo, att_, T, xb2_);
  add_rmsnorm_act(x_, xb2_, L.post_attn_norm, L.ffn_norm, xb_, T, E, eps,
                  group ? mm_->act_prep(gate_up, 2, T) : Matmul::ActPrep{}, stream_);

  // h = act(xb Wg^T) * (xb Wu^T) [T, F]; x += [post_norm](h Wd^T), then the next norm
  if (group) {
    mm_->run_group(gate_up, 2, xb_, T, /*x_prepared=*/true);
  } else {
    mm(L.w_gate, xb_, T, hg_);
    mm(L.w_up, xb_, T, hu_);
  }
  // The GLU converts its output for the w_down matvec in the same launch (glu_act).
  const Glu act = c.arch == Arch::Gemma3 ? Glu::GeLU : Glu::SiLU;
  if (group) {
    const Matmul::Out down[1] = {{L.w_down, xb2_, 0}};
    glu_act(act, hg_, hu_, hg_, T, F, mm_->act_prep(down, 1, T), stream_);
    mm_->run_group(down, 1, hg_, T, /*x_prepared=*/true);
  } else {
    glu(act, hg_, hu_, hg_, T, F, stream_);
    mm(L.w_down, hg_, T, xb2_);
  }
  const bool last = il + 1 == static_cast<int>(dm_.layers.size());
  const float* next_norm = !last ? dm_.layers[il + 1].attn_norm : (dm_.head ? dm_.output_norm : nullptr);
  Matmul::ActPrep next_qkv;  // the next layer's Q/K/V conversion (its run_group counts on it)
  if (group && !last) {
    const DevLayer& N = dm_.layers[il + 1];
    const Matmul::Out nq[3] = {{N.wq, q_, 0}, {N.wk, k_, 0}, {N.wv, v_, 0}};
    next_qkv = mm_->act_prep(nq, 3, T);
  }
  add_rmsnorm_act(x_, xb2_, L.post_ffn_norm, next_norm, xb_, T, E, eps, next_qkv, stream_);
}

void CudaForward::enqueue_step(int32_t T, int32_t n_out, bool all_logits) {
  const ModelConfig& c = cfg_;
  if (dm_.head) embed(dm_.tok_embd, d_tok_, T, x_, c.embd_scale, stream_);
  for (int il = 0; il < static_cast<int>(dm_.layers.size()); ++il) enqueue_layer(il, T);
  if (!dm_.head) return;
  // xb = rmsnorm(x) * output_norm (fused into the last layer). LM head on the rows that want logits.
  if (all_logits) {
    mm(dm_.output, xb_, T, logits_all_.get<float>());
    if (c.final_softcap > 0) softcap(logits_all_.get<float>(), c.final_softcap, static_cast<int64_t>(T) * c.n_vocab, stream_);
    return;
  }
  gather_rows(xb_, d_out_, h_, n_out, c.n_embd, stream_);
  mm(dm_.output, h_, n_out, logits_);
  if (c.final_softcap > 0) softcap(logits_, c.final_softcap, static_cast<int64_t>(n_out) * c.n_vocab, stream_);
}

// Fills the pinned metadata (tokens, positions, KV slots, rows wanting logits, block
// tables) and splits the plan into attention segments.
void CudaForward::upload_plan(const StepPlan& plan) {
  const int32_t mb = shape_.max_blocks, bs = lim_.block_size;
  segs_.clear();
  int32_t t = 0, o = 0;
  for (size_t si = 0; si < plan.seqs.size(); ++si) {
    const ScheduledSeq& s = plan.seqs[si];
    const int32_t n = static_cast<int32_t>(s.tokens.size());
    const bool prefill = n >= kPrefillMinTokens;
    if (prefill || segs_.empty() || segs_.back().prefill) segs_.push_back(Segment{t, 0, static_cast<int32_t>(si), s.start_pos, prefill});
    segs_.back().n += n;
    for (int32_t i = 0; i < n; ++i, ++t) {
      const int32_t p = s.start_pos + i;
      h_tok_[t] = s.tokens[i];
      h_pos_[t] = p;
      h_seq_[t] = static_cast<int32_t>(si);
      h_slot_[t] = s.block_table[p / bs] * bs + p % bs;
    }
    if (s.need_logits) h_out_[o++] = t - 1;
    const size_t nb = std::min(s.block_table.size(), static_cast<size_t>(mb));
    std::copy_n(s.block_table.data(), nb, h_bt_ + si * mb);
    std::fill(h_bt_ + si * mb + nb, h_bt_ + (si + 1) * mb, 0);
  }
}

Result<cudaGraphExec_t> CudaForward::decode_graph(int32_t T) {
  if (auto it = graphs_.find(T); it != graphs_.end()) return it->second;
  cudaGraph_t g = nullptr;
  VELO_CUDA_TRY(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  enqueue_step(T, T, false);
  const cudaError_t ec = cudaStreamEndCapture(stream_, &g);
  if (ec != cudaSuccess) {
    (void)cudaGetLastError();
    return cuda_status(ec, "capturing the decode step into a CUDA graph").error();
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t ei = cudaGraphInstantiate(&exec, g, 0);
  cudaGraphDestroy(g);
  VELO_CUDA_TRY(ei);
  graphs_.emplace(T, exec);
  return exec;
}

Status CudaForward::ensure_all_logits() {
  if (logits_all_.bytes()) return {};
  const uint64_t bytes = static_cast<uint64_t>(lim_.max_batch_tokens) * cfg_.n_vocab * sizeof(float);
  VELO_ASSIGN_OR_RETURN(logits_all_, DeviceBuffer::alloc(bytes));
  VELO_CUDA_TRY(cudaMallocHost(&logits_all_host_, bytes));
  return {};
}

Result<std::span<const float>> CudaForward::run(const StepPlan& plan, bool all_logits, bool logits_stay_on_device) {
  VELO_TRY(validate_plan(plan, lim_, cfg_.n_vocab));
  const ModelConfig& c = cfg_;
  const int32_t T = plan.num_tokens();
  if (T == 0) return std::span<const float>();
  int32_t n_out = 0;
  bool decode = !all_logits;
  for (const auto& s : plan.seqs) {
    n_out += s.need_logits ? 1 : 0;
    decode = decode && s.tokens.size() == 1 && s.need_logits;
  }
  if (all_logits && dm_.head) VELO_TRY(ensure_all_logits());
  VELO_CUDA_TRY(cudaSetDevice(where_.device));  // the engine steps from its own thread

  upload_plan(plan);
  VELO_CUDA_TRY(cudaMemcpyAsync(meta_.get(), h_meta_, shape_.meta_bytes(), cudaMemcpyHostToDevice, stream_));
  if (!dm_.head) {  // embeddings stay on the CPU when the head does
    const uint64_t row = *row_bytes(w_.tok_embd.type, c.n_embd);
    const auto* emb = static_cast<const uint8_t*>(w_.tok_embd.data);
    for (int32_t t = 0; t < T; ++t) {
      float* xr = h_x_ + static_cast<int64_t>(t) * c.n_embd;
      (void)quant::dequantize_row(w_.tok_embd.type, emb + h_tok_[t] * row, xr, c.n_embd);
      if (c.embd_scale != 1.0f)
        for (int i = 0; i < c.n_embd; ++i) xr[i] *= c.embd_scale;
    }
    VELO_CUDA_TRY(cudaMemcpyAsync(x_, h_x_, static_cast<uint64_t>(T) * c.n_embd * 4, cudaMemcpyHostToDevice, stream_));
  }

  if (decode && dm_.head && where_.graphs) {
    VELO_ASSIGN_OR_RETURN(cudaGraphExec_t g, decode_graph(T));
    VELO_CUDA_TRY(cudaGraphLaunch(g, stream_));
  } else {
    enqueue_step(T, n_out, all_logits);
  }
  VELO_CUDA_TRY(cudaGetLastError());

  if (!dm_.head) {  // hand the hidden state to the CPU for the remaining layers and the head
    VELO_CUDA_TRY(cudaMemcpyAsync(h_x_, x_, static_cast<uint64_t>(T) * c.n_embd * 4, cudaMemcpyDeviceToHost, stream_));
    VELO_CUDA_TRY(cudaStreamSynchronize(stream_));
    return cpu_->forward_from(plan, h_x_, all_logits);
  }
  if (logits_stay_on_device) return std::span<const float>();  // forward_sample() reads logits_
  const int64_t n_rows = all_logits ? T : n_out;
  const uint64_t bytes = static_cast<uint64_t>(n_rows) * c.n_vocab * sizeof(float);
  float* host = all_logits ? logits_all_host_ : h_logits_;
  VELO_CUDA_TRY(cudaMemcpyAsync(host, all_logits ? logits_all_.get<float>() : logits_, bytes, cudaMemcpyDeviceToHost,
                                stream_));
  VELO_CUDA_TRY(cudaStreamSynchronize(stream_));
  return std::span<const float>(host, static_cast<size_t>(n_rows) * c.n_vocab);
}

void CudaForward::copy_block(int32_t src, int32_t dst) {
  const uint64_t bytes = static_cast<uint64_t>(lim_.block_size) * cfg_.kv_dim() * sizeof(uint16_t);
  const int64_t halves = static_cast<int64_t>(lim_.block_size) * cfg_.kv_dim();
  for (int il = 0; il < static_cast<int>(dm_.layers.size()); ++il) {
    const KvLayer kv = kv_layer(il);
    for (uint16_t* base : {kv.k, kv.v})
      (void)cudaMemcpyAsync(base + dst * halves, base + src * halves, bytes, cudaMemcpyDeviceToDevice, stream_);
  }
  if (cpu_) cpu_->copy_block(src, dst);
}

Result<MemoryPlan> plan_memory(const ModelConfig& cfg, const ModelWeights& w, const TransformerLimits& lim,
                               const Placement& where) {
  return plan_device_memory(cfg, w, lim, where);
}

Result<std::unique_ptr<Forward>> create_forward(const ModelConfig& cfg, const ModelWeights& w,
                                                const TransformerLimits& lim, const Placement& where,
                                                ThreadPool& pool) {
  VELO_ASSIGN_OR_RETURN(MemoryPlan mp, plan_device_memory(cfg, w, lim, where));
  auto f = std::make_unique<CudaForward>(cfg, w, lim, mp, where, pool);
  VELO_TRY(f->init());
  return std::unique_ptr<Forward>(std::move(f));
}

}  // namespace velo::cuda
