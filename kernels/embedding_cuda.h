// CUDA launchers for the gather ops: embedding lookup, row and column gathers, and dtype
// conversion (used when weights are uploaded). All run on `stream`; pointers are device
// pointers.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/dtype.h"

namespace tessera {

// out F32 [n, hidden] = table[ids - vocab_begin] (zeros outside [vocab_begin, +vocab_local)).
void embedding_cuda(const void* table, DType dtype, int64_t vocab_local, int64_t hidden,
                    int64_t vocab_begin, const int32_t* ids, int64_t n, float* out,
                    cudaStream_t stream);

// out[i, :] = x[idx[i], :] for rows of row_bytes bytes (row_bytes a multiple of 2).
void gather_rows_cuda(const void* x, int64_t row_bytes, const int32_t* idx, int64_t n, void* out,
                      cudaStream_t stream);

// out[m, j] = x[m, idx[j]], or 0 where idx[j] == -1, for elements of elem_bytes bytes (2 or
// 4, copied bit for bit). x: [M, K]; idx: [J], each -1 or in [0, K); out: [M, J].
void gather_columns_cuda(const void* x, int64_t elem_bytes, int64_t M, int64_t K,
                         const int32_t* idx, int64_t J, void* out, cudaStream_t stream);

// dst[i] = src[i] converted between F32, F16 and BF16 (round to nearest even).
void convert_cuda(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n,
                  cudaStream_t stream);

}  // namespace tessera
