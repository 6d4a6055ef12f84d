// CUDA matmul (backend/cuda/matmul.h) and embed against the CPU backend, their
// oracle, for every supported weight type, on fresh random weights (quantized
// with the reference quantizer) and activations. Outputs are poisoned with NaN
// (0xFF bytes) first; every element must be written, and with y_stride > rows
// the gap must stay untouched. Tolerances, max|gpu - cpu| / max|cpu|:
//  - matvec (m <= 8): bit-identical for the 32-element quants (matvec_q32.cu
//    follows the CPU's float order), 1e-5 for F32/F16/BF16, 1e-4 for the K-quants (same Q8_K activations, the
//    float combine split over a block's lanes);
//  - GEMM (m > 8, fp16/bf16 operands, f32 accumulation on the tensor cores):
//    1e-2 for F32/F16/BF16 weights; the quant types are checked against a
//    float64 product of the dequantized weights and the unrounded activations
//    (5e-3: fp16 rounding of both operands), and against the CPU only loosely
//    (1e-1), because the CPU quantizes activations to 8 bits, and the outlier
//    channel of these activations makes that error reach 3-7.5e-2 in one 256-block.
// The activation quantizers and embed are compared bit for bit.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/cpu/matmul.h"
#include "backend/cpu/matmul_kernels.h"
#include "backend/cuda/devices.h"
#include "cuda/cuda_test_util.h"
#include "backend/cuda/matmul.h"
#include "backend/cuda/matmul_kernels.h"
#include "backend/cuda/norm_act.h"
#include "backend/cuda/ops.h"
#include "core/thread_pool.h"
#include "quant/blocks.h"
#include "quant/quant.h"

namespace velo::cuda {
namespace {

using test::Dev;

const GgmlType kTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0,
                           GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                           GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

bool is_kquant(GgmlType t) { return t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K; }
bool is_float(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

std::mt19937& rng() {
  static std::mt19937 r{std::random_device{}()};
  return r;
}

// rows × cols random floats through the reference quantizer (row_bytes(t, cols) per row).
std::vector<uint8_t> make_weights(GgmlType t, int64_t rows, int64_t cols) {
  const uint64_t rb = *row_bytes(t, cols);
  std::vector<uint8_t> bytes(rb * rows);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> src(cols);
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = 0.02f * (1 + r % 7);  // rows of different magnitudes, some with an offset
    for (auto& v : src) v = nd(rng()) * scale + (r % 3 == 0 ? 0.01f : 0.0f);
    EXPECT_TRUE(quant::quantize_row(t, src.data(), bytes.data() + r * rb, cols).ok());
  }
  return bytes;
}

// Activations with an outlier channel and, in wide rows, an all-zero 256-block.
std::vector<float> make_x(int64_t m, int64_t cols) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(m * cols);
  for (auto& v : x) v = nd(rng());
  for (int64_t i = 0; i < m; ++i) {
    if (cols > 3) x[i * cols + 3] = 20.0f;
    if (cols >= 768)
      for (int j = 512; j < 768; ++j) x[i * cols + j] = 0.0f;
  }
  return x;
}

class CudaMatmul : public ::testing::Test {
 protected:
  void SetUp() override {
    if (list_devices().empty()) GTEST_SKIP() << "no CUDA device";
    CK(cudaStreamCreate(&stream_));
    auto mm = Matmul::create({kMaxCols, kMaxTokens, kMaxElems}, stream_);
    ASSERT_TRUE(mm.ok()) << mm.error().message;
    mm_ = std::move(*mm);
  }
  void TearDown() override {
    mm_.reset();
    if (stream_) cudaStreamDestroy(stream_);
  }

  struct Errors { double cpu = 0, exact = 0; };  // max|gpu - ref| / max|ref|

  // Runs W (rows × cols of t) on m fresh token rows on both backends, checking every
  // output was written and the stride gap was not. `exact` (GEMM path of the quant types
  // only) compares with float64 sums of dequantized weights × activations.
  Errors compare(GgmlType t, int64_t rows, int64_t cols, int64_t m, int64_t y_stride = 0) {
    if (y_stride == 0) y_stride = rows;
    const std::vector<uint8_t> w = make_weights(t, rows, cols);
    const std::vector<float> x = make_x(m, cols);
    std::vector<float> ref(m * y_stride, 0.0f);
    cpu::matmul_strided({t, w.data(), rows, cols}, x.data(), m, ref.data(), y_stride, pool_);
    std::vector<double> exact;
    if (m > kMaxMatvecTokens && !is_float(t)) {
      const uint64_t rb = *row_bytes(t, cols);
      std::vector<float> deq(rows * cols);
      for (int64_t r = 0; r < rows; ++r)
        EXPECT_TRUE(quant::dequantize_row(t, w.data() + r * rb, deq.data() + r * cols, cols).ok());
      exact.assign(m * y_stride, 0.0);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t r = 0; r < rows; ++r) {
          double acc = 0;
          for (int64_t k = 0; k < cols; ++k) acc += static_cast<double>(deq[r * cols + k]) * x[i * cols + k];
          exact[i * y_stride + r] = acc;
        }
    }

    Dev<uint8_t> dw(w);
    Dev<float> dx(x), dy(m * y_stride);
    mm_->run({t, dw.get(), rows, cols}, dx.get(), m, dy.get(), y_stride);
    CK(cudaGetLastError());
    CK(cudaStreamSynchronize(stream_));
    const std::vector<float> y = dy.download();

    double max_ref = 0, max_err = 0, max_exact = 0, max_exact_err = 0;
    int unwritten = 0, gap_written = 0;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < y_stride; ++r) {
        const float g = y[i * y_stride + r];
        if (r >= rows) {
          uint32_t bits;
          std::memcpy(&bits, &g, 4);
          gap_written += bits != 0xFFFFFFFFu;
          continue;
        }
        if (!std::isfinite(g)) {
          ++unwritten;
          continue;
        }
        max_ref = std::max(max_ref, std::fabs(static_cast<double>(ref[i * y_stride + r])));
        max_err = std::max(max_err, std::fabs(static_cast<double>(g) - ref[i * y_stride + r]));
        if (!exact.empty()) {
          max_exact = std::max(max_exact, std::fabs(exact[i * y_stride + r]));
          max_exact_err = std::max(max_exact_err, std::fabs(g - exact[i * y_stride + r]));
        }
      }
    EXPECT_EQ(unwritten, 0) << type_name(t) << " " << rows << "x" << cols << " m=" << m;
    EXPECT_EQ(gap_written, 0) << type_name(t) << " wrote into the y_stride gap";
    Errors e;
    e.cpu = max_ref > 0 ? max_err / max_ref : max_err;
    e.exact = max_exact > 0 ? max_exact_err / max_exact : max_exact_err;
    return e;
  }

  double cpu_tolerance(GgmlType t, int64_t m) const {
    if (m > kMaxMatvecTokens) return is_float(t) ? 1e-2 : 1e-1;  // quant types: the CPU's 8-bit error (see top)
    if (exact_ && !is_float(t) && !is_kquant(t)) return 0.0;  // the 32-element quants: the CPU's bits
    return is_kquant(t) ? 1e-4 : 1e-5;
  }

  void check(GgmlType t, int64_t rows, int64_t cols, int64_t m, int64_t y_stride = 0) {
    const Errors e = compare(t, rows, cols, m, y_stride);
    const std::string what = type_name(t) + " " + std::to_string(rows) + "x" + std::to_string(cols) +
                             " m=" + std::to_string(m) + " y_stride=" + std::to_string(y_stride);
    EXPECT_LE(e.cpu, cpu_tolerance(t, m)) << what << " vs the CPU";
    EXPECT_LE(e.exact, 5e-3) << what << " vs float64 of the dequantized weights";
  }

  void set_exact(bool on) {
    exact_ = on;
    mm_->set_exact_order(on);
  }

  bool exact_ = false;
  static constexpr int64_t kMaxCols = 4096, kMaxTokens = 200, kMaxElems = 1000 * 1024;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Matmul> mm_;
  ThreadPool pool_{4};
};

TEST_F(CudaMatmul, MatvecAndGemmMatchCpu) {
  for (GgmlType t : kTypes) {
    SCOPED_TRACE(type_name(t));
    ASSERT_TRUE(matmul_supported(t));
    for (int64_t m : {1, 2, 3, 8, 9}) check(t, 1, 256, m);
    for (int64_t m : {1, 4, 5, 8, 64}) check(t, 7, 512, m);
    for (int64_t m : {1, 3, 8, 9, 200}) check(t, 33, 4096, m);
    for (int64_t m : {1, 2, 8, 64}) check(t, 1000, 1024, m);
    if (!is_kquant(t))
      for (int64_t m : {1, 5}) check(t, 50, 576, m);  // SmolLM2's width: 18 blocks, a partial round of 8
  }
}

// Matmul::set_exact_order: the 32-element quants at m <= 8 equal the CPU bit for bit
// (matvec_q32.cu), including SmolLM2's 576 columns (a partial round of 8 blocks) and
// rows that are only 2-byte aligned.
TEST_F(CudaMatmul, ExactOrderMatvecIsTheCpusBits) {
  set_exact(true);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0}) {
    SCOPED_TRACE(type_name(t));
    for (int64_t m : {1, 2, 3, 5, 8}) {
      check(t, 7, 512, m);
      check(t, 50, 576, m);
      check(t, 33, 4096, m);
      check(t, 5, 96, m);
    }
  }
  set_exact(false);
}

// Rows that are not 16-byte multiples: an odd number of 32-blocks (2-byte aligned rows
// for Q4_0/Q5_0/Q8_0) and float rows of 100 elements (the scalar float kernel).
TEST_F(CudaMatmul, UnalignedRows) {
  for (GgmlType t : kTypes) {
    if (is_kquant(t)) continue;
    SCOPED_TRACE(type_name(t));
    const int64_t cols = is_float(t) ? 100 : 96;
    for (int64_t m : {1, 2, 8, 9, 33}) check(t, 5, cols, m);
  }
}

TEST_F(CudaMatmul, StridedOutput) {
  for (GgmlType t : kTypes) {
    SCOPED_TRACE(type_name(t));
    for (int64_t m : {1, 3, 8, 64}) check(t, 33, 512, m, 50);
  }
}

// A decode-sized and a prompt-sized call captured into a CUDA graph give the eager results.
TEST_F(CudaMatmul, GraphCapture) {
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::BF16, GgmlType::Q8_0}) {
    for (int64_t m : {1, 64}) {
      SCOPED_TRACE(type_name(t) + " m=" + std::to_string(m));
      const int64_t rows = 300, cols = 1024;
      const std::vector<uint8_t> w = make_weights(t, rows, cols);
      Dev<uint8_t> dw(w);
      Dev<float> dx(make_x(m, cols)), y_eager(m * rows), y_graph(m * rows);
      const DevMatrix dm{t, dw.get(), rows, cols};
      mm_->run(dm, dx.get(), m, y_eager.get());
      CK(cudaStreamSynchronize(stream_));
      cudaGraph_t graph = nullptr;
      CK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
      mm_->run(dm, dx.get(), m, y_graph.get());
      CK(cudaStreamEndCapture(stream_, &graph));
      cudaGraphExec_t exec = nullptr;
      CK(cudaGraphInstantiate(&exec, graph, 0));
      CK(cudaGraphLaunch(exec, stream_));
      CK(cudaStreamSynchronize(stream_));
      CK(cudaGraphExecDestroy(exec));
      CK(cudaGraphDestroy(graph));
      const auto a = y_eager.download(), b = y_graph.download();
      for (size_t i = 0; i < a.size(); ++i) {
        ASSERT_TRUE(std::isfinite(b[i])) << i;
        ASSERT_NEAR(a[i], b[i], 1e-6 * (1 + std::fabs(a[i]))) << i;
      }
    }
  }
}

// Matmul::run_group (Q/K/V, gate/up in one launch) gives every output bit for bit as
// run() on each matrix: mixed K-quants (the Q4_K_M layer), one type, float types, and
// mixed activation formats (which fall back to one launch each), m = 1..8 and a GEMM m.
// Rows are not multiples of any kernel's rows per CTA; one output has a stride gap.
TEST_F(CudaMatmul, GroupEqualsSeparateCalls) {
  const std::vector<std::vector<GgmlType>> groups = {
      {GgmlType::Q4_K, GgmlType::Q4_K, GgmlType::Q6_K}, {GgmlType::Q6_K, GgmlType::Q5_K, GgmlType::Q4_K},
      {GgmlType::Q4_K, GgmlType::Q4_K},                 {GgmlType::Q6_K, GgmlType::Q6_K, GgmlType::Q6_K},
      {GgmlType::Q8_0, GgmlType::Q8_0, GgmlType::Q8_0}, {GgmlType::Q4_0, GgmlType::Q5_1},
      {GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::BF16}, {GgmlType::BF16, GgmlType::BF16, GgmlType::BF16},
      {GgmlType::F16, GgmlType::F16},                   {GgmlType::F32, GgmlType::F32, GgmlType::F32, GgmlType::F32},
  };
  const int64_t rows_of[] = {37, 16, 5, 70};
  for (const auto& types : groups) {
    for (int64_t cols : {int64_t{1024}, int64_t{4096}}) {
      const int n = static_cast<int>(types.size());
      std::deque<Dev<uint8_t>> w;  // Dev does not move
      for (int i = 0; i < n; ++i) w.emplace_back(make_weights(types[i], rows_of[i], cols));
      for (int64_t m : {1, 2, 3, 4, 5, 6, 7, 8, 12}) {
        std::string what = "cols=";  // appended piecewise (GCC 12 warns falsely on a chain of +)
        what += std::to_string(cols);
        what += " m=";
        what += std::to_string(m);
        what += " types";
        for (GgmlType t : types) {
          what += ' ';
          what += type_name(t);
        }
        SCOPED_TRACE(what);
        Dev<float> dx(make_x(m, cols));
        std::vector<Matmul::Out> outs(n);
        std::deque<Dev<float>> y_sep, y_grp;
        for (int i = 0; i < n; ++i) {
          const int64_t stride = i == 1 ? rows_of[i] + 3 : rows_of[i];
          y_sep.emplace_back(m * stride);
          y_grp.emplace_back(m * stride);
          outs[i] = {{types[i], w[i].get(), rows_of[i], cols}, y_grp[i].get(), i == 1 ? stride : 0};
          mm_->run(outs[i].w, dx.get(), m, y_sep[i].get(), stride);
        }
        mm_->run_group(outs.data(), n, dx.get(), m);
        CK(cudaGetLastError());
        CK(cudaStreamSynchronize(stream_));
        for (int i = 0; i < n; ++i) {
          const std::vector<float> a = y_sep[i].download(), b = y_grp[i].download();
          ASSERT_EQ(a.size(), b.size());
          for (size_t k = 0; k < a.size(); ++k)
            ASSERT_EQ(0, std::memcmp(&a[k], &b[k], 4)) << "matrix " << i << " element " << k << ": " << a[k]
                                                        << " vs " << b[k];
        }
      }
    }
  }
}

// Both BF16/F16 kernels for m = 3..8 (CUDA cores, tensor cores) against the CPU, whichever
// the default picks; cols 520 (a multiple of 8, not of 32) keeps the CUDA-core kernel.
TEST_F(CudaMatmul, FloatMatvecKernelsMatchCpu) {
  using detail::FloatMatvecKernel;
  for (FloatMatvecKernel k : {FloatMatvecKernel::kSimt, FloatMatvecKernel::kMma}) {
    detail::set_float_matvec_kernel(k);
    for (GgmlType t : {GgmlType::BF16, GgmlType::F16}) {
      SCOPED_TRACE(type_name(t) + (k == FloatMatvecKernel::kMma ? " mma" : " simt"));
      for (int64_t m : {3, 4, 5, 8}) {
        check(t, 17, 4096, m);
        check(t, 40, 512, m, 45);
        check(t, 9, 520, m);
      }
    }
  }
  detail::set_float_matvec_kernel(FloatMatvecKernel::kAuto);
}

// add_rmsnorm_act: the residual stream and normed rows bit for bit as add_rmsnorm, the
// converted activations bit for bit as the standalone conversion of those rows, and a
// run_group on them (x_prepared) equal to one that converts x itself.
TEST_F(CudaMatmul, NormEpilogueConversionBitExact) {
  using Kind = Matmul::ActPrep::Kind;
  const struct { Kind kind; GgmlType weights; } cases[] = {
      {Kind::kQ8K, GgmlType::Q4_K}, {Kind::kQ8, GgmlType::Q8_0}, {Kind::kBF16, GgmlType::BF16},
      {Kind::kF16, GgmlType::F16}};
  for (const auto& c : cases) {
    for (int64_t n : {int64_t{512}, int64_t{4096}}) {
      for (int64_t m : {1, 3, 8}) {
        for (bool post_norm : {false, true}) {
          SCOPED_TRACE(type_name(c.weights) + " n=" + std::to_string(n) + " m=" + std::to_string(m) +
                       (post_norm ? " post-norm" : ""));
          const std::vector<float> x0 = make_x(m, n), dd = make_x(m, n), w = make_x(1, n), dw = make_x(1, n);
          Dev<float> xa(x0), xb(x0), d(dd), wn(w), dwn(dw), ya(m * n), yb(m * n);
          const float* dwp = post_norm ? dwn.get() : nullptr;
          add_rmsnorm(xa.get(), d.get(), dwp, wn.get(), ya.get(), m, static_cast<int>(n), 1e-5f, stream_);
          // The reference conversion of the reference rows into a buffer of the same layout.
          const bool half = c.kind == Kind::kF16 || c.kind == Kind::kBF16;
          const detail::ActQuant f = c.kind == Kind::kQ8 ? detail::ActQuant::kQ8 : detail::ActQuant::kQ8K;
          const uint64_t bytes = half ? m * n * 2 : detail::act_q8_bytes(f, m, n);
          Dev<uint8_t> ref(bytes), got(bytes);
          if (half) detail::round_act_half(ya.get(), m * n, c.kind == Kind::kBF16, reinterpret_cast<uint16_t*>(ref.get()), stream_);
          else detail::quantize_act(f, ya.get(), m, n, ref.get(), stream_);
          add_rmsnorm_act(xb.get(), d.get(), dwp, wn.get(), yb.get(), m, static_cast<int>(n), 1e-5f,
                          Matmul::ActPrep{c.kind, got.get()}, stream_);
          CK(cudaGetLastError());
          CK(cudaStreamSynchronize(stream_));
          EXPECT_EQ(xa.download(), xb.download());
          const std::vector<float> y1 = ya.download(), y2 = yb.download();
          ASSERT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4));
          const std::vector<uint8_t> r = ref.download(), g = got.download();
          if (half) {
            ASSERT_EQ(0, std::memcmp(r.data(), g.data(), bytes));
          } else {  // compare the arrays (the alignment padding between them is never written)
            const detail::ActQ8View vr = detail::act_q8_view(f, const_cast<uint8_t*>(r.data()), m, n);
            const detail::ActQ8View vg = detail::act_q8_view(f, const_cast<uint8_t*>(g.data()), m, n);
            ASSERT_EQ(0, std::memcmp(vr.qs, vg.qs, m * n));
            const int64_t nb = m * n / (f == detail::ActQuant::kQ8 ? 32 : QK_K);
            ASSERT_EQ(0, std::memcmp(vr.d, vg.d, nb * 4));
            if (vr.s) {
              ASSERT_EQ(0, std::memcmp(vr.s, vg.s, nb * 4));
            }
            if (vr.bsum) {
              ASSERT_EQ(0, std::memcmp(vr.bsum, vg.bsum, m * n / 16 * 4));
            }
          }

          // Through a group: prepared by the norm == converted by the group.
          const int64_t rows = 37;
          Dev<uint8_t> wq(make_weights(c.weights, rows, n)), wk(make_weights(c.weights, 9, n));
          Dev<float> o1(m * rows), o2(m * 9), p1(m * rows), p2(m * 9);
          const Matmul::Out plain[2] = {{{c.weights, wq.get(), rows, n}, o1.get(), 0}, {{c.weights, wk.get(), 9, n}, o2.get(), 0}};
          const Matmul::Out prep[2] = {{{c.weights, wq.get(), rows, n}, p1.get(), 0}, {{c.weights, wk.get(), 9, n}, p2.get(), 0}};
          mm_->run_group(plain, 2, ya.get(), m);
          const Matmul::ActPrep ap = mm_->act_prep(prep, 2, m);
          EXPECT_EQ(ap.kind, m <= 2 && half ? Kind::kNone : c.kind);
          xb.upload(x0);  // the same norm again: yb == ya (checked above)
          add_rmsnorm_act(xb.get(), d.get(), dwp, wn.get(), yb.get(), m, static_cast<int>(n), 1e-5f, ap, stream_);
          mm_->run_group(prep, 2, yb.get(), m, /*x_prepared=*/true);
          CK(cudaGetLastError());
          CK(cudaStreamSynchronize(stream_));
          const std::vector<float> a1 = o1.download(), b1 = p1.download(), a2 = o2.download(), b2 = p2.download();
          ASSERT_EQ(0, std::memcmp(a1.data(), b1.data(), a1.size() * 4));
          ASSERT_EQ(0, std::memcmp(a2.data(), b2.data(), a2.size() * 4));
        }
      }
    }
  }
}

// The activation quantizers against the CPU's, bit for bit (d, s, qs, bsums).
TEST_F(CudaMatmul, ActivationQuantBitExact) {
  using cpu::detail::ActFormat;
  const int64_t m = 5, cols = 1024;
  const std::vector<float> x = make_x(m, cols);
  Dev<float> dx(x);
  for (detail::ActQuant f : {detail::ActQuant::kQ8, detail::ActQuant::kQ8K}) {
    Dev<uint8_t> buf(detail::act_q8_bytes(f, m, cols));
    detail::quantize_act(f, dx.get(), m, cols, buf.get(), stream_);
    CK(cudaGetLastError());
    CK(cudaStreamSynchronize(stream_));
    const std::vector<uint8_t> host = buf.download();
    const detail::ActQ8View v = detail::act_q8_view(f, const_cast<uint8_t*>(host.data()), m, cols);
    const ActFormat cf = f == detail::ActQuant::kQ8 ? ActFormat::kQ8 : ActFormat::kQ8K;
    std::vector<uint8_t> row(cpu::detail::act_row_bytes(cf, cols));
    for (int64_t i = 0; i < m; ++i) {
      cpu::detail::quantize_act_row_scalar(cf, x.data() + i * cols, row.data(), cols);
      if (f == detail::ActQuant::kQ8) {
        const auto* b = reinterpret_cast<const cpu::detail::ActQ8*>(row.data());
        for (int64_t k = 0; k < cols / 32; ++k) {
          ASSERT_EQ(b[k].d, v.d[i * cols / 32 + k]) << i << " " << k;
          ASSERT_EQ(b[k].s, v.s[i * cols / 32 + k]) << i << " " << k;
          ASSERT_EQ(0, std::memcmp(b[k].qs, v.qs + i * cols + 32 * k, 32)) << i << " " << k;
        }
      } else {
        const auto* b = reinterpret_cast<const block_q8_K*>(row.data());
        for (int64_t k = 0; k < cols / QK_K; ++k) {
          ASSERT_EQ(b[k].d, v.d[i * cols / QK_K + k]) << i << " " << k;
          ASSERT_EQ(0, std::memcmp(b[k].qs, v.qs + i * cols + QK_K * k, QK_K)) << i << " " << k;
          for (int g = 0; g < 16; ++g) ASSERT_EQ(b[k].bsums[g], v.bsum[i * cols / 16 + 16 * k + g]);
        }
      }
    }
  }
}

// embed == quant::dequantize_row(row) * scale, bit for bit, for every type.
TEST(CudaEmbed, MatchesDequantizeRowExactly) {
  if (list_devices().empty()) GTEST_SKIP() << "no CUDA device";
  for (GgmlType t : kTypes) {
    for (int64_t cols : {int64_t{512}, int64_t{is_kquant(t) ? 256 : (is_float(t) ? 100 : 96)}}) {
      SCOPED_TRACE(type_name(t) + " cols=" + std::to_string(cols));
      const int64_t rows = 50, T = 17;
      const std::vector<uint8_t> table = make_weights(t, rows, cols);
      std::vector<int32_t> tokens(T);
      std::uniform_int_distribution<int32_t> pick(0, rows - 1);
      for (auto& v : tokens) v = pick(rng());
      tokens[1] = tokens[0];
      const float scale = std::uniform_real_distribution<float>(0.5f, 3.0f)(rng());
      Dev<uint8_t> dt(table);
      Dev<int32_t> dtok(tokens);
      Dev<float> dx(T * cols);
      embed({t, dt.get(), rows, cols}, dtok.get(), T, dx.get(), scale, nullptr);
      CK(cudaGetLastError());
      CK(cudaDeviceSynchronize());
      const std::vector<float> x = dx.download();
      const uint64_t rb = *row_bytes(t, cols);
      std::vector<float> ref(cols);
      for (int64_t i = 0; i < T; ++i) {
        ASSERT_TRUE(quant::dequantize_row(t, table.data() + tokens[i] * rb, ref.data(), cols).ok());
        for (int64_t c = 0; c < cols; ++c) {
          const float want = ref[c] * scale;
          ASSERT_EQ(0, std::memcmp(&want, &x[i * cols + c], 4)) << "token " << i << " col " << c << ": "
                                                                 << x[i * cols + c] << " vs " << want;
        }
      }
    }
  }
}

TEST_F(CudaMatmul, ScratchBytesCoversLimits) {
  const MatmulLimits decode_only{4096, 8, 4096 * 4096};
  const MatmulLimits prompt{4096, 512, 4096 * 14336};
  EXPECT_GT(Matmul::scratch_bytes(decode_only), 0u);
  // The GEMM path adds fp16 weights and activations and the cuBLAS workspace.
  EXPECT_GE(Matmul::scratch_bytes(prompt), Matmul::scratch_bytes(decode_only) + 2ull * 4096 * 14336);
  size_t free0 = 0, free1 = 0, total = 0;
  CK(cudaMemGetInfo(&free0, &total));
  {
    auto mm = Matmul::create(prompt, stream_);
    ASSERT_TRUE(mm.ok());
    CK(cudaMemGetInfo(&free1, &total));
  }
  // What create() took from the device (cuBLAS's own handle state included) is near the estimate.
  const double taken = static_cast<double>(free0) - static_cast<double>(free1);
  EXPECT_GE(taken, 0.9 * static_cast<double>(Matmul::scratch_bytes(prompt)));
}

}  // namespace
}  // namespace velo::cuda
