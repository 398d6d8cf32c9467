#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/embedding.h"

namespace tessera {

void convert_to_f32(const void* src, DType dtype, int64_t n, float* dst) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case DType::BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    default:
      throw std::invalid_argument(std::string("cannot convert ") + dtype_name(dtype) +
                                  " to F32");
  }
}

void convert_cpu(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n) {
  if (dst_dtype == DType::F32) return convert_to_f32(src, src_dtype, n, static_cast<float*>(dst));
  if (dst_dtype != DType::F16 && dst_dtype != DType::BF16)
    throw std::invalid_argument(std::string("cannot convert to ") + dtype_name(dst_dtype));
  uint16_t* d = static_cast<uint16_t*>(dst);
  const size_t in_bytes = dtype_size(src_dtype);
  constexpr int64_t kChunk = 4096;  // through a small F32 buffer: no n-sized temporary
  float f[kChunk];
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = std::min(kChunk, n - i);
    convert_to_f32(static_cast<const char*>(src) + size_t(i) * in_bytes, src_dtype, m, f);
    for (int64_t j = 0; j < m; ++j)
      d[i + j] = dst_dtype == DType::F16 ? f32_to_f16(f[j]) : f32_to_bf16(f[j]);
  }
}

void embedding_cpu(const void* table, DType dtype, int64_t vocab_local, int64_t hidden,
                   int64_t vocab_begin, const int32_t* ids, int64_t n, float* out) {
  const size_t row_bytes = size_t(hidden) * dtype_size(dtype);
  for (int64_t i = 0; i < n; ++i) {
    int64_t r = int64_t(ids[i]) - vocab_begin;
    float* dst = out + i * hidden;
    if (r < 0 || r >= vocab_local) {
      std::memset(dst, 0, size_t(hidden) * sizeof(float));
      continue;
    }
    convert_to_f32(static_cast<const char*>(table) + size_t(r) * row_bytes, dtype, hidden, dst);
  }
}

namespace {

template <class T>
void gather_columns_typed(const T* x, int64_t M, int64_t K, const int32_t* idx, int64_t J,
                          T* out) {
#pragma omp parallel for schedule(static) if (M * J > 65536)
  for (int64_t m = 0; m < M; ++m) {
    const T* row = x + m * K;
    T* dst = out + m * J;
    for (int64_t j = 0; j < J; ++j) dst[j] = idx[j] < 0 ? T(0) : row[idx[j]];
  }
}

}  // namespace

void gather_columns_cpu(const void* x, int64_t elem_bytes, int64_t M, int64_t K,
                        const int32_t* idx, int64_t J, void* out) {
  if (elem_bytes == 4)  // +0.0f and F16/BF16 +0 are all-zero bits: copying words is exact
    return gather_columns_typed(static_cast<const uint32_t*>(x), M, K, idx, J,
                                static_cast<uint32_t*>(out));
  if (elem_bytes == 2)
    return gather_columns_typed(static_cast<const uint16_t*>(x), M, K, idx, J,
                                static_cast<uint16_t*>(out));
  throw std::invalid_argument("gather_columns: element size must be 2 or 4 bytes, not " +
                              std::to_string(elem_bytes));
}

}  // namespace tessera
