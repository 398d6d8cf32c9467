// CUDA launchers for RMSNorm and the fused residual-add + RMSNorm (twins of rmsnorm_cpu.cpp).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/dtype.h"

namespace tessera {

// out [n, h] (out_dtype) = rmsnorm(x) * weight; x F32 [n, h], weight F32 [h].
void rmsnorm_cuda(const float* x, const float* weight, float eps, int64_t n, int64_t h, void* out,
                  DType out_dtype, cudaStream_t stream);

// residual F32 [n, h] += delta (delta_dtype); out (out_dtype) = rmsnorm(residual) * weight.
void add_rmsnorm_cuda(float* residual, const void* delta, DType delta_dtype, const float* weight,
                      float eps, int64_t n, int64_t h, void* out, DType out_dtype,
                      cudaStream_t stream);

}  // namespace tessera
