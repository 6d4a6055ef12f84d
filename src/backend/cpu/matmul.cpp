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

void matmul_strided(const WeightMatrix& w, const float* x, int64_t m, float* y, int64_t y_stride,
                    ThreadPool& pool) {
  if (m <= 0 || w.rows <= 0) return;
  const detail::TileKernel kernel = detail::tile_kernel(w.type);
  if (!kernel) contract_violation("unsupported weight type");
  const auto rb = row_bytes(w.type, static_cast<uint64_t>(w.cols));
  if (w.cols <= 0 || !rb) contract_violation("cols is not a whole number of blocks");
  if (y_stride < w.rows) contract_violation("y_stride < rows");

  // 1. Convert the activations once (F32 weights use x as is).
  const ActFormat fmt = detail::act_format(w.type);
  const size_t xrow = detail::act_row_bytes(fmt, w.cols);
  const uint8_t* xq = reinterpret_cast<const uint8_t*>(x);
  if (fmt != ActFormat::kF32) {
    auto* buf = static_cast<uint8_t*>(tls_scratch.get(xrow * static_cast<size_t>(m)));
    const int64_t cols = w.cols;
    if (m * cols <= 16384 || pool.size() == 1) {
      for (int64_t i = 0; i < m; ++i) detail::quantize_act_row(fmt, x + i * cols, buf + i * xrow, cols);
    } else {
      pool.parallel_for(m, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) detail::quantize_act_row(fmt, x + i * cols, buf + i * xrow, cols);
      });
    }
    xq = buf;
  }

  // 2. Tiles of weight rows × tokens.
  const Split s = plan_split(w.rows, m, pool.size());
  const auto* wbase = static_cast<const uint8_t*>(w.data);
  auto run_block = [&](int64_t c, int) {
    const int64_t r0 = (c % s.n_row_blocks) * s.row_block;
    const int64_t t0 = (c / s.n_row_blocks) * s.tok_block;
    const int nr = static_cast<int>(std::min(s.row_block, w.rows - r0));
    const int nt = static_cast<int>(std::min(s.tok_block, m - t0));
    detail::Tile tile{wbase + r0 * *rb, static_cast<size_t>(*rb), xq + t0 * xrow, xrow,
                      y + t0 * y_stride + r0, y_stride, w.cols};
    kernel(tile, nr, nt);
  };
  pool.parallel_chunks(s.n_row_blocks * s.n_tok_blocks, run_block);
}

void matmul(const WeightMatrix& w, const float* x, int64_t m, float* y, ThreadPool& pool) {
  matmul_strided(w, x, m, y, w.rows, pool);
}

}  // namespace velo::cpu
