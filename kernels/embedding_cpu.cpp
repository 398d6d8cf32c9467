#include <cstring>
#include <stdexcept>

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

}  // namespace tessera
