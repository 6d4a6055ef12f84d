#include "backend/cpu/matmul.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "backend/cpu/matmul_kernels.h"

namespace velo::cpu {
namespace detail {

TileKernel tile_kernel(GgmlType t) {
  if (TileKernel k = tile_kernel_q32(t)) return k;
  if (TileKernel k = tile_kernel_kquant(t)) return k;
  if (TileKernel k = tile_kernel_float(t)) return k;
  return tile_kernel_scalar(t);
}

}  // namespace detail

namespace {

using detail::ActFormat;

[[noreturn]] void contract_violation(const char* what) {
  std::fprintf(stderr, "velo::cpu::matmul: %s\n", what);
  std::abort();
}

// Converted activations of the calling thread; grows to the largest call, then reused.
struct Scratch {
  void* data = nullptr;
  size_t capacity = 0;
  ~Scratch() { std::free(data); }
  void* get(size_t bytes) {
    if (bytes > capacity) {
      std::free(data);
      capacity = std::max(bytes, capacity * 3 / 2);
      capacity = (capacity + 63) / 64 * 64;
      data = std::aligned_alloc(64, capacity);
      if (!data) contract_violation("out of memory for activation scratch");
    }
    return data;
  }
};
thread_local Scratch tls_scratch;

// Work split: blocks of rows × tokens, handed out dynamically. Matvec-sized
// calls use several row blocks per thread (load balance on a shared machine);
// big m uses 64 × 64 blocks so weights and activations of a block stay in L2.
struct Split {
  int64_t row_block, tok_block, n_row_blocks, n_tok_blocks;
};

Split plan_split(int64_t rows, int64_t m, int threads) {
  Split s{};
  s.tok_block = m <= 64 ? m : 64;
  s.n_tok_blocks = (m + s.tok_block - 1) / s.tok_block;
  if (threads <= 1) {
    s.row_block = m <= 4 ? rows : 64;
  } else {
    const int64_t want = std::max<int64_t>(1, threads * 8 / s.n_tok_blocks);  // row blocks wanted
    s.row_block = std::max<int64_t>(16, (rows + want - 1) / want);
    if (m > 4) s.row_block = std::min<int64_t>(s.row_block, 64);
    s.row_block = (s.row_block + 15) / 16 * 16;
  }
  s.row_block = std::min(s.row_block, rows);
  s.n_row_blocks = (rows + s.row_block - 1) / s.row_block;
  return s;
}

}  // namespace

bool matmul_supported(GgmlType t) { return detail::tile_kernel_scalar(t) != nullptr; }

void matmul_many(const MatmulJob* jobs, int n_jobs, const float* x, int64_t m, ThreadPool& pool) {
  if (m <= 0 || n_jobs <= 0) return;
  if (n_jobs > kMaxMatmulJobs) contract_violation("too many matrices in one matmul_many call");
  const int64_t cols = jobs[0].w.cols;
  struct Prepared {
    detail::TileKernel kernel;
    size_t w_row, x_row;
    int format;  // index into formats[]
    const uint8_t* xq;
    Split split;
    int64_t first_chunk;
  };
  Prepared prep[kMaxMatmulJobs];
  ActFormat formats[kMaxMatmulJobs];
  size_t format_offset[kMaxMatmulJobs];
  int n_formats = 0;
  size_t scratch_bytes = 0;
  for (int j = 0; j < n_jobs; ++j) {
    const WeightMatrix& w = jobs[j].w;
    prep[j].kernel = detail::tile_kernel(w.type);
    if (!prep[j].kernel) contract_violation("unsupported weight type");
    const auto rb = row_bytes(w.type, static_cast<uint64_t>(w.cols));
    if (w.cols <= 0 || !rb) contract_violation("cols is not a whole number of blocks");
    if (w.cols != cols) contract_violation("matmul_many: matrices differ in cols");
    if (jobs[j].y_stride < w.rows) contract_violation("y_stride < rows");
    prep[j].w_row = static_cast<size_t>(*rb);
    const ActFormat f = detail::act_format(w.type);
    prep[j].x_row = detail::act_row_bytes(f, cols);
    int k = 0;
    while (k < n_formats && formats[k] != f) ++k;
    if (k == n_formats) {
      formats[n_formats] = f;
      format_offset[n_formats++] = scratch_bytes;
      if (f != ActFormat::kF32) scratch_bytes += prep[j].x_row * static_cast<size_t>(m);
    }
    prep[j].format = k;
  }

  // 1. Convert the activations once per format (F32 weights use x as is).
  auto* buf = static_cast<uint8_t*>(tls_scratch.get(std::max<size_t>(scratch_bytes, 64)));
  for (int k = 0; k < n_formats; ++k) {
    const ActFormat f = formats[k];
    if (f == ActFormat::kF32) continue;
    uint8_t* dst = buf + format_offset[k];
    const size_t xrow = detail::act_row_bytes(f, cols);
    if (m * cols <= 16384 || pool.size() == 1) {
      for (int64_t i = 0; i < m; ++i) detail::quantize_act_row(f, x + i * cols, dst + i * xrow, cols);
    } else {
      pool.parallel_for(m, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) detail::quantize_act_row(f, x + i * cols, dst + i * xrow, cols);
      });
    }
  }
  int64_t total_chunks = 0;
  for (int j = 0; j < n_jobs; ++j) {
    const int k = prep[j].format;
    prep[j].xq = formats[k] == ActFormat::kF32 ? reinterpret_cast<const uint8_t*>(x) : buf + format_offset[k];
    prep[j].first_chunk = total_chunks;
    if (jobs[j].w.rows <= 0) {  // nothing to compute: no chunks
      prep[j].split = Split{1, 1, 0, 0};
      continue;
    }
    prep[j].split = plan_split(jobs[j].w.rows, m, pool.size());
    total_chunks += prep[j].split.n_row_blocks * prep[j].split.n_tok_blocks;
  }

  // 2. Tiles of weight rows × tokens of all matrices, in one dispatch.
  auto run_block = [&](int64_t chunk, int) {
    int j = 0;  // the last job whose chunks start at or before `chunk` (empty jobs have none)
    while (j + 1 < n_jobs && chunk >= prep[j + 1].first_chunk) ++j;
    const Prepared& p = prep[j];
    const WeightMatrix& w = jobs[j].w;
    const int64_t c = chunk - p.first_chunk;
    const Split& s = p.split;
    const int64_t r0 = (c % s.n_row_blocks) * s.row_block;
    const int64_t t0 = (c / s.n_row_blocks) * s.tok_block;
    const int nr = static_cast<int>(std::min(s.row_block, w.rows - r0));
    const int nt = static_cast<int>(std::min(s.tok_block, m - t0));
    detail::Tile tile{static_cast<const uint8_t*>(w.data) + r0 * p.w_row, p.w_row, p.xq + t0 * p.x_row,
                      p.x_row, jobs[j].y + t0 * jobs[j].y_stride + r0, jobs[j].y_stride, w.cols, m};
    p.kernel(tile, nr, nt);
  };
  pool.parallel_chunks(total_chunks, run_block);
}

void matmul_strided(const WeightMatrix& w, const float* x, int64_t m, float* y, int64_t y_stride,
                    ThreadPool& pool) {
  if (w.rows <= 0) return;
  const MatmulJob job{w, y, y_stride};
  matmul_many(&job, 1, x, m, pool);
}

void matmul(const WeightMatrix& w, const float* x, int64_t m, float* y, ThreadPool& pool) {
  matmul_strided(w, x, m, y, w.rows, pool);
}

}  // namespace velo::cpu
