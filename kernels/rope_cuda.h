// CUDA launcher for rotary position embedding, HF rotate-half (twin of rope_cpu.cpp).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/dtype.h"

namespace tessera {

// In place on x [n, heads, head_dim] (dtype); positions [n]; inv_freq F32 [2, head_dim / 2]:
// row 0 float(f), row 1 float(f - row 0), so the sum carries the double value f.
void rope_cuda(void* x, DType dtype, int64_t n, int64_t heads, int64_t head_dim,
               const int32_t* positions, const float* inv_freq, cudaStream_t stream);

}  // namespace tessera
