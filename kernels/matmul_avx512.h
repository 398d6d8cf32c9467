// The AVX-512 matmul kernel, compiled in its own file with AVX-512 flags (and again for
// AVX2: kernels/simd_target.h) and called only after a run-time CPU check. Plain pointers
// only, so no inline library code built with AVX-512 can leak into the rest of the program.
#pragma once
#include <cstdint>

namespace tessera {

// Decode (M = 1) GEMVs, dense and quantized, walk the weight rows one after the other (the
// matrix is then one sequential stream, prefetched kRowWisePrefetchBytes ahead) while x, as
// the kernel reads it (F32, bf16 or int8), takes at most kRowWiseMaxXBytes; with a larger x
// they take 8 (4) rows at a time, loading each piece of x once for all of them. Why and the
// measurements: kernels/matmul_avx512_cpu.cpp.
constexpr int64_t kRowWiseMaxXBytes = 8192;
constexpr int64_t kRowWisePrefetchBytes = 2048;
// A decode batch of 2-4 tokens walks the rows too (each weight vector loaded once for all of
// them) while their x, all together, take at most max_batch_x_bytes: kRowWiseMaxXBytes, or
// kRowWiseMaxInt4BatchXBytes for fast-mode int4, whose rows are half as long. Measured with
// bench/quant_matmul_bench and bench/matmul_bench (2 threads, from DRAM, interleaved rounds):
// Qwen2.5-7B gate+up, fast int4, 4 tokens (14 KiB of int8 x): tiles 5.5-8.3 ms, row walk
// 3.9-5.9; with the same 14 KiB of x fast int8 (4 tokens: 6.2-6.9 -> 7.6-8.2 ms) and bf16
// (2 tokens: 9.6-10.6 -> 11.0-12.0 ms) ran slower row-wise and keep tiles.
constexpr int64_t kRowWiseMaxInt4BatchXBytes = 16384;
constexpr int64_t kRowWiseMaxBatchTokens = 4;

// Whether M tokens whose x rows take x_row_bytes each (as the kernel reads them) walk the
// weight rows one after the other rather than in tiles of rows.
inline bool walk_rows(int64_t M, int64_t x_row_bytes,
                      int64_t max_batch_x_bytes = kRowWiseMaxXBytes) {
  if (M == 1) return x_row_bytes <= kRowWiseMaxXBytes;
  return M <= kRowWiseMaxBatchTokens && M * x_row_bytes <= max_batch_x_bytes;
}

// The kernels of kernels/matmul_avx512_cpu.cpp in its AVX-512 build and its AVX2 build
// (kernels/simd_target.h; the bf16 ones are AVX-512 only: nullptr in the AVX2 table).
struct MatmulSimd {
  // w_dtype: the integer value of tessera::DType (F32, F16 or BF16).
  void (*matmul)(const float* x, int64_t M, int64_t K, const void* w, int w_dtype, int64_t N,
                 const float* bias, float* y);
  // Rounds n floats to bf16 (nearest even), 16 at a time.
  void (*f32_to_bf16)(const float* x, int64_t n, uint16_t* out);
  // y[M, N] = x[M, K] @ W[N, K]^T (+ bias) with x and W in bf16 and F32 accumulation
  // (AVX512-BF16 dot products: 32 products per instruction).
  void (*matmul_bf16dot)(const uint16_t* x, int64_t M, int64_t K, const uint16_t* w,
                         int64_t N, const float* bias, float* y);
};
extern const MatmulSimd kMatmulAvx512, kMatmulAvx2;

}  // namespace tessera
