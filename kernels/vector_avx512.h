// AVX-512 vector helpers for the CPU kernels (attention's inner loops), compiled in their own
// file with AVX-512 flags and called only after cpu_has_avx512(). Plain pointers only.
#pragma once
#include <cstdint>

namespace tessera {

float dot_avx512(const float* a, const float* b, int64_t n);
// y += a * x
void axpy_avx512(float a, const float* x, float* y, int64_t n);
// x[i] = exp(x[i] - shift); returns the sum. Relative error ~1e-7 (degree-7 Taylor on
// [-ln2/2, ln2/2] after range reduction).
float exp_shift_sum_avx512(float* x, int64_t n, float shift);
// out[i] = silu(gate[i]) * up[i]
void silu_mul_avx512(const float* gate, const float* up, int64_t n, float* out);
// Attention over one KV block of `keys` rows [keys, d] (contiguous):
// scores[j] = scale * q . k[j]
void block_scores_avx512(const float* q, const float* k, int64_t keys, int64_t d, float scale,
                         float* scores);
// acc[0:d] += sum_j p[j] * v[j, 0:d]
void block_accumulate_avx512(const float* p, const float* v, int64_t keys, int64_t d, float* acc);
// out[j, 0:d] = q[j, 0:d] * scales[j] for `rows` rows of int8 codes (an int8 KV cache block).
void dequantize_rows_avx512(const int8_t* q, const float* scales, int64_t rows, int64_t d,
                            float* out);

}  // namespace tessera
