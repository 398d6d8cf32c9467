// CUDA linear layer: y[M, N] = x[M, K] @ W[N, K]^T (+ bias[N]) through cuBLAS on tensor cores
// with fp32 accumulation (twin of matmul_cpu).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/dtype.h"

namespace tessera {

// x and W share a dtype (F16, BF16 or F32); y is F32 or that dtype; bias is F32 or null.
// The handle must already be bound to `stream`.
void linear_cuda(cublasHandle_t handle, const void* x, DType x_dtype, int64_t M, int64_t K,
                 const void* w, DType w_dtype, int64_t N, const float* bias, void* y,
                 DType y_dtype, cudaStream_t stream);

// Throws std::runtime_error naming `what` when a cuBLAS call failed.
void check_cublas(cublasStatus_t s, const char* what);

}  // namespace tessera
