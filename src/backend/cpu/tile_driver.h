// Splits a tile of nrows × ntok outputs into register micro-tiles of R rows × T
// tokens. Micro::run<R, T>(tile, r0, t0) computes one micro-tile; every output
// goes through the same instruction sequence whatever R and T are, so the split
// never changes results.
#pragma once
#include "backend/cpu/matmul_kernels.h"
#include "backend/cpu/simd.h"

namespace velo::cpu::detail {

template <class Micro, int R, int T>
VELO_INLINE void rows_pass(const Tile& a, int nrows, int t0) {
  int r = 0;
  for (; r + R <= nrows; r += R) Micro::template run<R, T>(a, r, t0);
  for (; r < nrows; ++r) Micro::template run<1, T>(a, r, t0);
}

// kRows × 4 micro-tiles for prompt batches, kRowsMatvec × 1 for single tokens.
template <class Micro, int kRows, int kRowsMatvec>
void drive_tiles(const Tile& a, int nrows, int ntok) {
  if (ntok == 1) {
    // Start the first row group's loads all at once; kernels prefetch the rest a group ahead.
    prefetch_range(a.w, a.w_stride * static_cast<size_t>(nrows < kRowsMatvec ? nrows : kRowsMatvec));
    rows_pass<Micro, kRowsMatvec, 1>(a, nrows, 0);
    return;
  }
  int t = 0;
  for (; t + 4 <= ntok; t += 4) rows_pass<Micro, kRows, 4>(a, nrows, t);
  switch (ntok - t) {
    case 3: rows_pass<Micro, kRows, 3>(a, nrows, t); break;
    case 2: rows_pass<Micro, kRows, 2>(a, nrows, t); break;
    case 1: rows_pass<Micro, kRows, 1>(a, nrows, t); break;
    default: break;
  }
}

}  // namespace velo::cpu::detail
