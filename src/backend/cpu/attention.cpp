#include "backend/cpu/attention.h"

#include <algorithm>
#include <cmath>

#include "backend/cpu/ops.h"
#include "quant/fp16.h"

#if defined(__F16C__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VELO_ATTN_AVX2 1
#endif

namespace velo::cpu {
namespace {

inline float fp16_scalar(uint16_t h) { return fp16_to_fp32(h); }
inline float fp16_round(float x) { return fp16_to_fp32(fp32_to_fp16(x)); }

// sum_i q[i] * k[i] with k in F16.
inline float dot_f16(const float* q, const uint16_t* k, int n) {
  int i = 0;
  float sum = 0;
#ifdef VELO_ATTN_AVX2
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i),
                           _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i))), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8),
                           _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i + 8))), acc1);
  }
  __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_hadd_ps(s, s);
  s = _mm_hadd_ps(s, s);
  sum = _mm_cvtss_f32(s);
#endif
  for (; i < n; ++i) sum += q[i] * fp16_scalar(k[i]);
  return sum;
}

// out[i] += w * v[i] with v in F16.
inline void axpy_f16(float w, const uint16_t* v, float* out, int n) {
  int i = 0;
#ifdef VELO_ATTN_AVX2
  const __m256 wv = _mm256_set1_ps(w);
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(wv, x, _mm256_loadu_ps(out + i)));
  }
#endif
  for (; i < n; ++i) out[i] += w * fp16_scalar(v[i]);
}

// One query row of one head against its sequence's keys.
void attend_one(const AttnParams& p, const KvLayerView& kv, const AttnSeq& s, int32_t t, int32_t h,
                int64_t q_stride, int64_t out_stride, float* scratch) {
  const int d = p.head_dim;
  const int32_t pos = s.start_pos + t;
  const int32_t lo = p.window > 0 ? std::max(0, pos - p.window + 1) : 0;  // first visible key
  // Scores start at a multiple of 16 below lo (masked), so softmax sums in the
  // same 16-key chunks as the oracle, whose rows start at cache cell 0.
  const int32_t first = lo & ~15;
  const int32_t n_kv = pos + 1 - first;
  const int32_t kvh = h / (p.n_heads / p.n_kv_heads);
  const int64_t head_off = static_cast<int64_t>(kvh) * d;

  // q rounded to F16 (the oracle multiplies an F16 cache by an F16 copy of q).
  float* q = scratch;                 // [head_dim]
  float* acc = scratch + d;           // [head_dim]
  float* scores = scratch + 2 * d;    // [n_kv]
  uint16_t* qh = reinterpret_cast<uint16_t*>(acc);  // acc is free until the V pass
  to_f16(s.q + t * q_stride + static_cast<int64_t>(h) * d, qh, d);
  from_f16(qh, q, d);

  // scores[j] = q . k_j over the visible keys, walking the block table.
  for (int32_t j = 0; j < lo - first; ++j) scores[j] = -INFINITY;
  for (int32_t j = lo - first; j < n_kv; ++j) {
    const int32_t kp = first + j;
    const uint16_t* k = kv.k_at(s.blocks[kp / kv.block_size], kp % kv.block_size) + head_off;
    scores[j] = dot_f16(q, k, d);
  }
  const int32_t off = lo - first;
  if (p.softcap > 0) softcap(scores + off, p.softcap, n_kv - off);
  scale(scores + off, p.scale, n_kv - off);
  softmax(scores, n_kv);

  // out = sum_j round_f16(p_j) * v_j
  std::fill_n(acc, d, 0.0f);
  for (int32_t j = lo - first; j < n_kv; ++j) {
    const float w = fp16_round(scores[j]);
    if (w == 0.0f) continue;
    const int32_t kp = first + j;
    const uint16_t* v = kv.v_at(s.blocks[kp / kv.block_size], kp % kv.block_size) + head_off;
    axpy_f16(w, v, acc, d);
  }
  std::copy_n(acc, d, s.out + t * out_stride + static_cast<int64_t>(h) * d);
}

}  // namespace

void paged_attention(const AttnParams& p, const KvLayerView& kv, std::span<const AttnSeq> seqs,
                     int64_t q_stride, int64_t out_stride, int32_t max_kv, float* scratch,
                     ThreadPool& pool) {
  int64_t items = 0;  // one item per (sequence, token, head)
  for (const auto& s : seqs) items += static_cast<int64_t>(s.n_tokens) * p.n_heads;
  const int64_t per_thread = attention_scratch_floats(1, max_kv, p.head_dim);
  pool.parallel_chunks(items, [&](int64_t item, int thread) {
    int64_t rest = item;
    for (const auto& s : seqs) {
      const int64_t n = static_cast<int64_t>(s.n_tokens) * p.n_heads;
      if (rest < n) {
        attend_one(p, kv, s, static_cast<int32_t>(rest / p.n_heads), static_cast<int32_t>(rest % p.n_heads),
                   q_stride, out_stride, scratch + thread * per_thread);
        return;
      }
      rest -= n;
    }
  });
}

}  // namespace velo::cpu
