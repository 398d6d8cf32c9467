// Dense linear layers on the GPU: cublasGemmEx with CUBLAS_COMPUTE_32F, then a bias kernel.
// Row-major y[M, N] = x[M, K] W[N, K]^T is, column-major, C[N, M] = op_T(W) * x with
// W seen as a K x N and x as a K x M column-major matrix: C (N x M, ld N) is y.
#include <string>

#include "kernels/cuda_util.cuh"
#include "kernels/matmul_cuda.h"

namespace tessera {
namespace {

using namespace tessera::cuda;

template <class T>
__global__ void add_bias_kernel(T* __restrict__ y, const float* __restrict__ bias, int64_t M,
                                int64_t N) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < M * N;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = from_f32<T>(to_f32(y[i]) + bias[i % N]);
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: throw std::invalid_argument(std::string("linear: unsupported dtype ") + dtype_name(t));
  }
}

}  // namespace

void check_cublas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error in ") + what + ": " +
                             cublasGetStatusString(s));
}

void linear_cuda(cublasHandle_t handle, const void* x, DType x_dtype, int64_t M, int64_t K,
                 const void* w, DType w_dtype, int64_t N, const float* bias, void* y,
                 DType y_dtype, cudaStream_t stream) {
  if (x_dtype != w_dtype)
    throw std::invalid_argument(std::string("linear: x is ") + dtype_name(x_dtype) +
                                " but the weight is " + dtype_name(w_dtype));
  if (y_dtype != DType::F32 && y_dtype != x_dtype)
    throw std::invalid_argument(std::string("linear: output dtype ") + dtype_name(y_dtype) +
                                " with inputs " + dtype_name(x_dtype));
  if (M == 0 || N == 0) return;
  const float alpha = 1.0f, beta = 0.0f;
  check_cublas(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K), &alpha, w,
                            cuda_type(w_dtype), int(K), x, cuda_type(x_dtype), int(K), &beta, y,
                            cuda_type(y_dtype), int(N), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
  if (bias == nullptr) return;
  dispatch_float(y_dtype, "linear bias", [&](auto tag) {
    using T = decltype(tag);
    add_bias_kernel<T><<<grid_for(M * N, 256), 256, 0, stream>>>(static_cast<T*>(y), bias, M, N);
  });
  check_launch("add_bias_kernel");
}

}  // namespace tessera
