// Quantized linear layers on the GPU (see quant_matmul_cuda.h): decode batches through the
// fused GEMV (quant_matmul.cu), 8 tokens at a time; prefill dequantizes rows of W' into a
// scratch block and multiplies with cublasGemmEx.
#include <algorithm>
#include <string>

#include "kernels/cuda_util.cuh"
#include "kernels/matmul_cuda.h"
#include "kernels/quant_matmul_cuda.h"

namespace tessera {
namespace {

using namespace tessera::cuda;

// out[r, :] = W'[n0 + r, :] for r < rows; one thread per packed byte.
template <class T>
__global__ void dequantize_rows_kernel(QuantMatrix w, int64_t n0, int64_t rows,
                                       T* __restrict__ out) {
  const int64_t K = w.K, row_bytes = w.int4 ? K / 2 : K, total = rows * row_bytes;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / row_bytes, j = i - r * row_bytes, n = n0 + r;
    if (!w.int4) {
      const float q = float(static_cast<const int8_t*>(w.q)[n * K + j]);
      out[r * K + j] = from_f32<T>(q * w.scales[n]);
      continue;
    }
    const int64_t G = (K + w.group_size - 1) / w.group_size, g = n * G + 2 * j / w.group_size;
    const uint32_t b = static_cast<const uint8_t*>(w.q)[n * row_bytes + j];
    const float zf = float(w.zeros[g]), sc = w.scales[g];
    out[r * K + 2 * j] = from_f32<T>((float(b & 15u) - zf) * sc);
    out[r * K + 2 * j + 1] = from_f32<T>((float(b >> 4) - zf) * sc);
  }
}

template <class Y>
__global__ void add_bias_rows_kernel(Y* __restrict__ y, const float* __restrict__ bias,
                                     int64_t M, int64_t N) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < M * N;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = from_f32<Y>(to_f32(y[i]) + bias[i % N]);
}

cudaDataType_t cublas_type(DType t) {
  return t == DType::F32 ? CUDA_R_32F : t == DType::F16 ? CUDA_R_16F : CUDA_R_16BF;
}

}  // namespace

size_t quant_scratch_bytes(const QuantMatrix& w, DType dtype) {
  const size_t elem = dtype_size(dtype);
  return size_t(quant_scratch_rows(w.N, w.K, elem, kQuantScratchMaxBytes)) * size_t(w.K) * elem;
}

void quant_linear_cuda(cublasHandle_t handle, const void* x, DType x_dtype, int64_t M,
                       const QuantMatrix& w, const float* bias, void* y, DType y_dtype,
                       void* scratch, size_t scratch_bytes, cudaStream_t stream) {
  if (w.int4 && (w.K % 2 != 0 || w.group_size <= 0 || w.group_size % 2 != 0))
    throw std::invalid_argument("quant linear: int4 needs an even K and group size");
  if (y_dtype != DType::F32 && y_dtype != x_dtype)
    throw std::invalid_argument(std::string("quant linear: output dtype ") +
                                dtype_name(y_dtype) + " with x " + dtype_name(x_dtype));
  if (M == 0 || w.N == 0) return;
  const size_t elem = dtype_size(x_dtype), y_elem = dtype_size(y_dtype);
  if (M <= kQuantGemvChunkedMaxTokens) {  // 8 tokens a GEMV (x stays 16-byte aligned)
    for (int64_t m0 = 0; m0 < M; m0 += kQuantGemvMaxTokens)
      quant_gemv_cuda(static_cast<const char*>(x) + size_t(m0 * w.K) * elem, x_dtype,
                      std::min(kQuantGemvMaxTokens, M - m0), w, bias,
                      static_cast<char*>(y) + size_t(m0 * w.N) * y_elem, y_dtype, stream);
    return;
  }
  const int64_t rows = quant_scratch_rows(w.N, w.K, elem, scratch_bytes);  // a block
  if (scratch == nullptr || size_t(rows) * size_t(w.K) * elem > scratch_bytes)
    throw std::invalid_argument("quant linear: scratch of " + std::to_string(scratch_bytes) +
                                " bytes is smaller than one weight row");
  const float alpha = 1.0f, beta = 0.0f;
  for (int64_t n0 = 0; n0 < w.N; n0 += rows) {
    const int64_t nr = std::min(rows, w.N - n0);
    const int64_t bytes_per_row = w.int4 ? w.K / 2 : w.K;
    dispatch_float(x_dtype, "quant dequantize", [&](auto tag) {
      using T = decltype(tag);
      dequantize_rows_kernel<T><<<grid_for(nr * bytes_per_row, 256), 256, 0, stream>>>(
          w, n0, nr, static_cast<T*>(scratch));
    });
    check_launch("dequantize_rows_kernel");
    // Column-major: C[nr, M] (ld N, starting at column n0 of y's rows) = scratch^T x.
    check_cublas(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, int(nr), int(M), int(w.K),
                              &alpha, scratch, cublas_type(x_dtype), int(w.K), x,
                              cublas_type(x_dtype), int(w.K), &beta,
                              static_cast<char*>(y) + size_t(n0) * y_elem,
                              cublas_type(y_dtype), int(w.N), CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx (quantized weight)");
  }
  if (bias == nullptr) return;
  dispatch_float(y_dtype, "quant linear bias", [&](auto tag) {
    using Y = decltype(tag);
    add_bias_rows_kernel<Y><<<grid_for(M * w.N, 256), 256, 0, stream>>>(static_cast<Y*>(y),
                                                                       bias, M, w.N);
  });
  check_launch("add_bias_rows_kernel");
}

}  // namespace tessera
