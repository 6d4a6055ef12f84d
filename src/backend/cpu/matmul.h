// Weight-matrix × activations products for the CPU backend: y = x · Wᵀ.
// Activations are quantized once per call the way llama.cpp does it (Q8_0-style
// blocks for the 32-element quants, Q8_K for the K-quants, fp16/bf16 rounding
// for F16/BF16 weights), then each weight row is dotted with integer SIMD.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace velo::cpu {

// `rows` rows of `cols` elements of `type`, row-major, rows contiguous (row_bytes(type, cols) apart).
struct WeightMatrix { GgmlType type; const void* data; int64_t rows; int64_t cols; };

// F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
bool matmul_supported(GgmlType t);

// y[i * w.rows + r] = dot(W row r, x[i * w.cols ...]) for i in [0, m): y = x · Wᵀ for m tokens.
// Parallel over `pool`. No heap allocation in steady state (per-thread scratch
// grows once and is reused). Preconditions, checked on every call (a violation is
// a programming error: it prints one line and aborts; validate file shapes when
// loading): matmul_supported(w.type), w.cols a whole number of blocks. x and y
// must not overlap. Results do not depend on the number of threads, nor on m
// (token i of a batch gets exactly what it would get alone).
void matmul(const WeightMatrix& w, const float* x, int64_t m, float* y, ThreadPool& pool);

// Same, with y rows `y_stride` floats apart (y[i * y_stride + r]), y_stride >= w.rows;
// lets callers write into a slice of a wider output (e.g. fused QKV buffers).
void matmul_strided(const WeightMatrix& w, const float* x, int64_t m, float* y, int64_t y_stride,
                    ThreadPool& pool);

// Several matrices with the same cols applied to the same x (Q/K/V, gate/up): the
// activations are converted once per format and all tiles go out in one dispatch.
// jobs[j].y[i * y_stride + r] = dot(W_j row r, x row i). At most kMaxMatmulJobs jobs.
struct MatmulJob { WeightMatrix w; float* y; int64_t y_stride; };
constexpr int kMaxMatmulJobs = 8;
void matmul_many(const MatmulJob* jobs, int n_jobs, const float* x, int64_t m, ThreadPool& pool);

}  // namespace velo::cpu
