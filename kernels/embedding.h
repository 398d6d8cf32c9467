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

}  // namespace tessera
