// quant.h dispatch: argument checks, then the typed kernels of ref.h.
#include "quant/strict_fp.h"
// (strict_fp.h first: no fused multiply-add in this file.)
#include "quant/quant.h"

#include <cstring>
#include <string>

#include "quant/fp16.h"
#include "quant/ref.h"

namespace velo::quant {

void dequantize_row_f16(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_fp32(x[i]);
}
void dequantize_row_bf16(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(x[i]);
}
void quantize_row_f16(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}
void quantize_row_bf16(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_bf16(x[i]);
}

namespace {

bool supported(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
    case GgmlType::Q8_0: case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K:
    case GgmlType::Q5_K: case GgmlType::Q6_K: case GgmlType::Q8_K:
      return true;
    default:
      return false;
  }
}

Status check_args(GgmlType t, const void* src, const void* dst, int64_t n, const char* what) {
  if (!supported(t)) return make_error(std::string("cannot ") + what + " " + type_name(t) + ": type not supported");
  if (n < 0) return make_error(std::string(what) + " " + type_name(t) + ": negative length " + std::to_string(n));
  const uint32_t block = type_traits(t)->block_elems;
  if (n % block != 0)
    return make_error(std::string(what) + " " + type_name(t) + ": length " + std::to_string(n) +
                      " is not a multiple of the block size " + std::to_string(block));
  if (n > 0 && (src == nullptr || dst == nullptr))
    return make_error(std::string(what) + " " + type_name(t) + ": null buffer");
  return {};
}

}  // namespace

bool can_dequantize(GgmlType t) { return supported(t); }
bool can_quantize(GgmlType t) { return supported(t); }

Status dequantize_row(GgmlType t, const void* src, float* dst, int64_t n) {
  VELO_TRY(check_args(t, src, dst, n, "dequantize"));
  if (n == 0) return {};
  switch (t) {
    case GgmlType::F32: std::memmove(dst, src, static_cast<size_t>(n) * sizeof(float)); break;
    case GgmlType::F16: dequantize_row_f16(static_cast<const uint16_t*>(src), dst, n); break;
    case GgmlType::BF16: dequantize_row_bf16(static_cast<const uint16_t*>(src), dst, n); break;
    case GgmlType::Q4_0: dequantize_row_q4_0(static_cast<const block_q4_0*>(src), dst, n); break;
    case GgmlType::Q4_1: dequantize_row_q4_1(static_cast<const block_q4_1*>(src), dst, n); break;
    case GgmlType::Q5_0: dequantize_row_q5_0(static_cast<const block_q5_0*>(src), dst, n); break;
    case GgmlType::Q5_1: dequantize_row_q5_1(static_cast<const block_q5_1*>(src), dst, n); break;
    case GgmlType::Q8_0: dequantize_row_q8_0(static_cast<const block_q8_0*>(src), dst, n); break;
    case GgmlType::Q2_K: dequantize_row_q2_K(static_cast<const block_q2_K*>(src), dst, n); break;
    case GgmlType::Q3_K: dequantize_row_q3_K(static_cast<const block_q3_K*>(src), dst, n); break;
    case GgmlType::Q4_K: dequantize_row_q4_K(static_cast<const block_q4_K*>(src), dst, n); break;
    case GgmlType::Q5_K: dequantize_row_q5_K(static_cast<const block_q5_K*>(src), dst, n); break;
    case GgmlType::Q6_K: dequantize_row_q6_K(static_cast<const block_q6_K*>(src), dst, n); break;
    case GgmlType::Q8_K: dequantize_row_q8_K(static_cast<const block_q8_K*>(src), dst, n); break;
    default: break;  // rejected by check_args
  }
  return {};
}

Status quantize_row(GgmlType t, const float* src, void* dst, int64_t n) {
  VELO_TRY(check_args(t, src, dst, n, "quantize"));
  if (n == 0) return {};
  switch (t) {
    case GgmlType::F32: std::memmove(dst, src, static_cast<size_t>(n) * sizeof(float)); break;
    case GgmlType::F16: quantize_row_f16(src, static_cast<uint16_t*>(dst), n); break;
    case GgmlType::BF16: quantize_row_bf16(src, static_cast<uint16_t*>(dst), n); break;
    case GgmlType::Q4_0: quantize_row_q4_0(src, static_cast<block_q4_0*>(dst), n); break;
    case GgmlType::Q4_1: quantize_row_q4_1(src, static_cast<block_q4_1*>(dst), n); break;
    case GgmlType::Q5_0: quantize_row_q5_0(src, static_cast<block_q5_0*>(dst), n); break;
    case GgmlType::Q5_1: quantize_row_q5_1(src, static_cast<block_q5_1*>(dst), n); break;
    case GgmlType::Q8_0: quantize_row_q8_0(src, static_cast<block_q8_0*>(dst), n); break;
    case GgmlType::Q2_K: quantize_row_q2_K(src, static_cast<block_q2_K*>(dst), n); break;
    case GgmlType::Q3_K: quantize_row_q3_K(src, static_cast<block_q3_K*>(dst), n); break;
    case GgmlType::Q4_K: quantize_row_q4_K(src, static_cast<block_q4_K*>(dst), n); break;
    case GgmlType::Q5_K: quantize_row_q5_K(src, static_cast<block_q5_K*>(dst), n); break;
    case GgmlType::Q6_K: quantize_row_q6_K(src, static_cast<block_q6_K*>(dst), n); break;
    case GgmlType::Q8_K: quantize_row_q8_K(src, static_cast<block_q8_K*>(dst), n); break;
    default: break;  // rejected by check_args
  }
  return {};
}

}  // namespace velo::quant
