// Embedding lookup: out[i, :] = table[ids[i] - vocab_begin, :] (as F32) for ids inside this
// rank's vocab range [vocab_begin, vocab_begin + vocab_local), zeros otherwise (the
// vocab-parallel convention: the all-reduce over ranks fills in the rest).
#pragma once
#include <cstdint>

#include "runtime/dtype.h"

namespace tessera {

// table: [vocab_local, hidden] in F32/F16/BF16; out: F32 [n, hidden].
void embedding_cpu(const void* table, DType dtype, int64_t vocab_local, int64_t hidden,
                   int64_t vocab_begin, const int32_t* ids, int64_t n, float* out);

// out[m, j] = x[m, idx[j]], or 0 where idx[j] == -1, for elements of elem_bytes bytes (2 or
// 4: F16/BF16 or F32, copied bit for bit). x: [M, K]; idx: [J], each -1 or in [0, K) (the
// caller checks); out: [M, J].
void gather_columns_cpu(const void* x, int64_t elem_bytes, int64_t M, int64_t K,
                        const int32_t* idx, int64_t J, void* out);

// Converts n elements of F32/F16/BF16 to F32.
void convert_to_f32(const void* src, DType dtype, int64_t n, float* dst);

// dst[i] = src[i] converted between F32, F16 and BF16 through F32, rounding to nearest even:
// the CPU twin of convert_cuda (the CUDA backend converts a table it keeps in host memory
// with it). Throws std::invalid_argument for other dtypes.
void convert_cpu(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n);

}  // namespace tessera
