// Loads and stores between typed [rows, head_dim] slices of a framework
// tensor and the fp32 tile buffers of the CPU kernel.
#pragma once

#include <cstdint>

#include "core/flashmask_params.h"
#include "core/numeric.h"

namespace flashmask {
namespace cpu {

inline float load_scalar(const void* base, DType dtype, int64_t idx) {
  switch (dtype) {
    case DType::kFloat32: return static_cast<const float*>(base)[idx];
    case DType::kFloat16: return fp16_to_float(static_cast<const uint16_t*>(base)[idx]);
    default: return bf16_to_float(static_cast<const uint16_t*>(base)[idx]);
  }
}

inline void store_scalar(void* base, DType dtype, int64_t idx, float v) {
  switch (dtype) {
    case DType::kFloat32: static_cast<float*>(base)[idx] = v; break;
    case DType::kFloat16: static_cast<uint16_t*>(base)[idx] = float_to_fp16(v); break;
    default: static_cast<uint16_t*>(base)[idx] = float_to_bf16(v); break;
  }
}

// dst[r * ld + d] = scale * src[first + r * row_stride + d] for r < rows, d < dim;
// the padding (rows .. rows_pad, dim .. ld) is zeroed.
inline void load_rows(const void* src, DType dtype, int64_t first, int64_t row_stride, int rows,
                      int rows_pad, int dim, float scale, float* dst, int ld) {
  for (int r = 0; r < rows_pad; ++r) {
    float* out = dst + static_cast<int64_t>(r) * ld;
    int d = 0;
    if (r < rows) {
      const int64_t base = first + r * row_stride;
      for (; d < dim; ++d) out[d] = scale * load_scalar(src, dtype, base + d);
    }
    for (; d < ld; ++d) out[d] = 0.f;
  }
}

// Transposed load: dst[d * ld + r] = src row r, element d (zero padded to cols_pad).
inline void load_rows_transposed(const void* src, DType dtype, int64_t first, int64_t row_stride,
                                 int rows, int cols_pad, int dim, float* dst, int ld) {
  for (int d = 0; d < dim; ++d)
    for (int r = rows; r < cols_pad; ++r) dst[static_cast<int64_t>(d) * ld + r] = 0.f;
  for (int r = 0; r < rows; ++r) {
    const int64_t base = first + r * row_stride;
    for (int d = 0; d < dim; ++d)
      dst[static_cast<int64_t>(d) * ld + r] = load_scalar(src, dtype, base + d);
  }
}

inline void store_rows(void* dst, DType dtype, int64_t first, int64_t row_stride, int rows, int dim,
                       const float* src, int ld, float scale) {
  for (int r = 0; r < rows; ++r) {
    const int64_t base = first + r * row_stride;
    for (int d = 0; d < dim; ++d)
      store_scalar(dst, dtype, base + d, scale * src[static_cast<int64_t>(r) * ld + d]);
  }
}

}  // namespace cpu
}  // namespace flashmask
