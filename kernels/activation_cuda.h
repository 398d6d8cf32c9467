// CUDA launcher for the SiLU-gated activation (twin of activation_cpu.cpp).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/dtype.h"

namespace tessera {

// out[i] = silu(gate[i]) * up[i], all n elements of `dtype`.
void silu_mul_cuda(const void* gate, const void* up, int64_t n, void* out, DType dtype,
                   cudaStream_t stream);

}  // namespace tessera
