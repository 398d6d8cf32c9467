// CUDA quantized linear layer (twin of quant_matmul_cpu): y[M, N] = x[M, K] @ W'[N, K]^T
// (+ bias[N]), W' the dequantized int8 / int4 weight, fp32 accumulation.
// M <= kQuantGemvMaxTokens (decode): a fused dequantize GEMV that reads the packed weights
// once, with 16-byte loads when x, the weights and the row length allow (else 4-byte words, or
// bytes). F16 x (BF16 from sm_80) with rows of 64k bytes and int4 groups of 128k: 16 rows per
// block, codes and x multiplied by mma.sync; otherwise one warp per row, F32 FMAs. Decode
// batches up to kQuantGemvChunkedMaxTokens run that GEMV per 8 tokens (ceil(M / 8) reads of
// the packed weights: for M <= 32 at most 4 x 0.5 bytes a weight with int4, where the path
// below writes and reads a 16-bit copy, ~4.5). Larger M (prefill): blocks of rows of W' are
// dequantized into `scratch` (x's dtype) and multiplied on tensor cores by cuBLAS.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/quant_matmul.h"
#include "runtime/dtype.h"

namespace tessera {

constexpr int64_t kQuantGemvMaxTokens = 8;
constexpr int64_t kQuantGemvChunkedMaxTokens = 32;

// The fused GEMV alone (kernels/quant_matmul.cu): 1 <= M <= kQuantGemvMaxTokens, else
// std::invalid_argument; arguments as quant_linear_cuda's.
void quant_gemv_cuda(const void* x, DType x_dtype, int64_t M, const QuantMatrix& w,
                     const float* bias, void* y, DType y_dtype, cudaStream_t stream);

// Scratch bytes quant_linear_cuda uses for w with activations of `dtype`:
// min(kQuantScratchMaxBytes, N * K * size) rounded down to whole rows, at least one row.
size_t quant_scratch_bytes(const QuantMatrix& w, DType dtype);

// w's pointers are device pointers. x: F16, BF16 or F32 [M, K]; y: F32 or x's dtype [M, N];
// bias: F32 [N] or null; scratch: quant_scratch_bytes(w, x_dtype) bytes (unused for small
// M). The handle must already be bound to `stream`.
void quant_linear_cuda(cublasHandle_t handle, const void* x, DType x_dtype, int64_t M,
                       const QuantMatrix& w, const float* bias, void* y, DType y_dtype,
                       void* scratch, size_t scratch_bytes, cudaStream_t stream);

}  // namespace tessera
