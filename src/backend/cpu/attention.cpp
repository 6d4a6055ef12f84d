#include "backend/cpu/attention.h"

#include <algorithm>
#include <cmath>

#include "backend/cpu/ops.h"
#include "quant/fp16.h"

#if defined(__AVX512F__) && defined(__F16C__)
#include <immintrin.h>
#define VELO_ATTN_AVX512 1
#endif

// Summation order. llama.cpp's q.k and p.V are F16 matrix products whose
// reduction order depends on the batch: with >= 2 query tokens they run as a
// GEMM (one 16-lane FMA accumulator per output, lanes = index mod 16, then a
// horizontal add); with 1 token as dot products (four 16-lane accumulators,
// lanes = index mod 64, combined (a0+a2)+(a1+a3), then a horizontal add). We
// accumulate in exactly those lanes so that our logits match the oracle's bit
// for bit; on CPUs without AVX-512 the same order is emulated in scalar code.

namespace velo::cpu {
namespace {

inline float fp16_round(float x) { return fp16_to_fp32(fp32_to_fp16(x)); }

// Horizontal sum of 16 lanes in _mm512_reduce_add_ps's tree order.
inline float reduce16(const float* a) {
#ifdef VELO_ATTN_AVX512
  return _mm512_reduce_add_ps(_mm512_loadu_ps(a));
#else
  float t8[8], t4[4];
  for (int i = 0; i < 8; ++i) t8[i] = a[i + 8] + a[i];
  for (int i = 0; i < 4; ++i) t4[i] = t8[i + 4] + t8[i];
  const float x0 = t4[0] + t4[2], x1 = t4[1] + t4[3];
  return x0 + x1;
#endif
}

// acc[l] = fma(q[l], k[l], acc[l]) for 16 lanes, k in F16.
inline void fma16(const float* q, const uint16_t* k, float* acc) {
#ifdef VELO_ATTN_AVX512
  const __m512 kv = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(k)));
  _mm512_storeu_ps(acc, _mm512_fmadd_ps(kv, _mm512_loadu_ps(q), _mm512_loadu_ps(acc)));
#else
  for (int l = 0; l < 16; ++l) acc[l] = std::fma(fp16_to_fp32(k[l]), q[l], acc[l]);
#endif
}

// q . k (q already F16-exact), in the GEMM or the dot-product order.
inline float dot_f16(const float* q, const uint16_t* k, int n, bool gemm) {
#ifdef VELO_ATTN_AVX512
  auto ld = [&](int i) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + i))); };
  if (gemm) {  // n % 16 == 0 (checked at load)
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) acc = _mm512_fmadd_ps(ld(i), _mm512_loadu_ps(q + i), acc);
    return _mm512_reduce_add_ps(acc);
  }
  const int np = n & ~63;
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int i = 0; i < np; i += 64) {
    a0 = _mm512_fmadd_ps(ld(i), _mm512_loadu_ps(q + i), a0);
    a1 = _mm512_fmadd_ps(ld(i + 16), _mm512_loadu_ps(q + i + 16), a1);
    a2 = _mm512_fmadd_ps(ld(i + 32), _mm512_loadu_ps(q + i + 32), a2);
    a3 = _mm512_fmadd_ps(ld(i + 48), _mm512_loadu_ps(q + i + 48), a3);
  }
  double sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
#else
  alignas(64) float acc[64] = {};
  if (gemm) {
    for (int i = 0; i < n; i += 16) fma16(q + i, k + i, acc);
    return reduce16(acc);
  }
  const int np = n & ~63;
  for (int i = 0; i < np; i += 64)
    for (int j = 0; j < 4; ++j) fma16(q + i + 16 * j, k + i + 16 * j, acc + 16 * j);
  float s[16];
  for (int l = 0; l < 16; ++l) s[l] = (acc[l] + acc[32 + l]) + (acc[16 + l] + acc[48 + l]);
  double sum = reduce16(s);
#endif
  for (int i = np; i < n; ++i) sum += static_cast<double>(q[i] * fp16_to_fp32(k[i]));
  return static_cast<float>(sum);
}

// acc[i] = fma(w, v[i], acc[i]) over n dims, v in F16.
inline void axpy_f16(float w, const uint16_t* v, float* acc, int n) {
  int i = 0;
#ifdef VELO_ATTN_AVX512
  const __m512 wv = _mm512_set1_ps(w);
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i)));
    _mm512_storeu_ps(acc + i, _mm512_fmadd_ps(x, wv, _mm512_loadu_ps(acc + i)));
  }
#endif
  for (; i < n; ++i) acc[i] = std::fma(fp16_to_fp32(v[i]), w, acc[i]);
}

// One query row of one head against its sequence's keys.
void attend_one(const AttnParams& p, const KvLayerView& kv, const AttnSeq& s, int32_t t, int32_t h,
                int64_t q_stride, int64_t out_stride, bool gemm, float* scratch) {
  const int d = p.head_dim;
  const int32_t pos = s.start_pos + t;
  const int32_t lo = p.window > 0 ? std::max(0, pos - p.window + 1) : 0;  // first visible key
  // Scores start at a multiple of 16 below lo (masked), so softmax sums in the
  // same 16-key chunks as the oracle, whose rows start at cache cell 0.
  const int32_t first = lo & ~15;
  const int32_t off = lo - first;
  const int32_t n_kv = pos + 1 - first;
  const int32_t kvh = h / (p.n_heads / p.n_kv_heads);
  const int64_t head_off = static_cast<int64_t>(kvh) * d;
  const int lanes = gemm ? 16 : 64;

  float* q = scratch;                        // [head_dim]
  float* acc = scratch + d;                  // [lanes][head_dim] p.V accumulators
  float* scores = scratch + d + 64 * d;      // [n_kv]

  // q rounded to F16 (the oracle multiplies the F16 cache by an F16 copy of q).
  uint16_t* qh = reinterpret_cast<uint16_t*>(acc);
  to_f16(s.q + t * q_stride + static_cast<int64_t>(h) * d, qh, d);
  from_f16(qh, q, d);

  // scores[j] = q . k over the visible keys, walking the block table.
  for (int32_t j = 0; j < off; ++j) scores[j] = -INFINITY;
  const int64_t row = kv.row_elems();
  for (int32_t kp = lo, bi = lo / kv.block_size, slot = lo % kv.block_size; kp <= pos; ++bi, slot = 0) {
    const uint16_t* k = kv.k_at(s.blocks[bi], slot) + head_off;  // walk one block at a time
    for (; slot < kv.block_size && kp <= pos; ++slot, ++kp, k += row) scores[kp - first] = dot_f16(q, k, d, gemm);
  }
  if (p.softcap > 0) softcap(scores + off, p.softcap, n_kv - off);
  scale(scores + off, p.scale, n_kv - off);
  softmax(scores, n_kv);

  // out = sum_j f16(p_j) v_j, key position kp accumulating in lane kp % lanes.
  std::fill_n(acc, static_cast<int64_t>(lanes) * d, 0.0f);
  for (int32_t kp = lo, bi = lo / kv.block_size, slot = lo % kv.block_size; kp <= pos; ++bi, slot = 0) {
    const uint16_t* v = kv.v_at(s.blocks[bi], slot) + head_off;
    for (; slot < kv.block_size && kp <= pos; ++slot, ++kp, v += row) {
      const float w = fp16_round(scores[kp - first]);
      if (w != 0.0f) axpy_f16(w, v, acc + static_cast<int64_t>(kp & (lanes - 1)) * d, d);
    }
  }
  float* out = s.out + t * out_stride + static_cast<int64_t>(h) * d;
  float lane[16];
  for (int i = 0; i < d; ++i) {
    if (gemm) {
      for (int l = 0; l < 16; ++l) lane[l] = acc[l * d + i];
    } else {
      for (int l = 0; l < 16; ++l)
        lane[l] = (acc[l * d + i] + acc[(32 + l) * d + i]) + (acc[(16 + l) * d + i] + acc[(48 + l) * d + i]);
    }
    out[i] = reduce16(lane);
  }
}

}  // namespace

void paged_attention(const AttnParams& p, const KvLayerView& kv, std::span<const AttnSeq> seqs,
                     int64_t q_stride, int64_t out_stride, int32_t max_kv, float* scratch,
                     ThreadPool& pool) {
  struct Job {  // captured by one pointer: the std::function stays allocation-free
    const AttnParams& p;
    const KvLayerView& kv;
    std::span<const AttnSeq> seqs;
    int64_t q_stride, out_stride, per_thread;
    bool gemm;
    float* scratch;
  };
  int64_t items = 0;  // one item per (sequence, token, head)
  for (const auto& s : seqs) items += static_cast<int64_t>(s.n_tokens) * p.n_heads;
  // More than one query token in the step: llama.cpp would run these products as a GEMM.
  const Job job{p, kv, seqs, q_stride, out_stride, attention_scratch_floats(1, max_kv, p.head_dim),
                items > p.n_heads, scratch};
  const Job* j = &job;
  pool.parallel_chunks(items, [j](int64_t item, int thread) {
    int64_t rest = item;
    for (const auto& s : j->seqs) {
      const int64_t n = static_cast<int64_t>(s.n_tokens) * j->p.n_heads;
      if (rest < n) {
        attend_one(j->p, j->kv, s, static_cast<int32_t>(rest / j->p.n_heads),
                   static_cast<int32_t>(rest % j->p.n_heads), j->q_stride, j->out_stride, j->gemm,
                   j->scratch + thread * j->per_thread);
        return;
      }
      rest -= n;
    }
  });
}

}  // namespace velo::cpu
