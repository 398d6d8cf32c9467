// Quantized linear layers: y[M, N] = x[M, K] @ W'[N, K]^T (+ bias[N]), W' the dequantized
// int8 / int4 weight (layouts: WeightFormat in runtime/backend.h), F32 accumulation. The
// packed weights are read in place, once per call; no dequantized copy of the matrix is made.
// Plain pointers only (the AVX-512 file includes this header).
#pragma once
#include <cstddef>
#include <cstdint>

namespace tessera {

struct QuantMatrix {
  const void* q = nullptr;         // int8: int8_t [N, K]; int4: uint8_t [N, K / 2], element
                                   // 2j in the low nibble of byte j, 2j + 1 in the high one
  const float* scales = nullptr;   // int8: [N]; int4: [N, groups]
  const int8_t* zeros = nullptr;   // int4: [N, groups], groups = ceil(K / group_size)
  int64_t N = 0, K = 0;
  int64_t group_size = 0;          // int4 only
  bool int4 = false;
  int64_t groups() const { return int4 ? (K + group_size - 1) / group_size : 1; }
};

// CUDA prefill dequantizes blocks of W' rows into a scratch of at most this many bytes.
constexpr size_t kQuantScratchMaxBytes = size_t(32) << 20;

// Rows per dequantized block (rows of K elements of elem bytes): as many as fit `bytes`,
// whole multiples of 64 when more than 64 (tensor-core friendly), at least one, at most N.
// Shared by the CUDA launcher and the memory plan, which reserves the scratch.
inline int64_t quant_scratch_rows(int64_t N, int64_t K, size_t elem, size_t bytes) {
  int64_t rows = N < int64_t(bytes / (size_t(K) * elem)) ? N : int64_t(bytes / (size_t(K) * elem));
  if (rows > 64) rows = rows / 64 * 64;
  return rows > 1 ? rows : 1;
}

// CPU reference and CPU backend path. x, y F32; OpenMP over output rows; AVX-512 when the
// processor has it (and, for int4, group_size % 32 == 0), else quant_matmul_cpu_portable.
void quant_matmul_cpu(const float* x, int64_t M, const QuantMatrix& w, const float* bias,
                      float* y);

// The portable path alone: each thread dequantizes one weight row at a time into a K-float
// buffer and takes its dot products with every token.
void quant_matmul_cpu_portable(const float* x, int64_t M, const QuantMatrix& w,
                               const float* bias, float* y);

// The AVX-512 kernels (kernels/quant_matmul_avx512_cpu.cpp) in their AVX-512 and AVX2 builds
// (kernels/simd_target.h), called after a run-time CPU check.
// int4: xp is x with each 32-input chunk reordered to its 16 even then 16 odd inputs, rows
// of Kp = K rounded up to 32 (zero padded); with M >= kInt4DequantizeTokens, wbuf holds
// 4 * Kp floats per OpenMP thread (rows of W' dequantized there once serve every token).
constexpr int64_t kInt4DequantizeTokens = 4;
struct QuantSimd {
  void (*int8)(const float* x, int64_t M, const QuantMatrix& w, const float* bias, float* y);
  void (*int4)(const float* xp, int64_t Kp, int64_t M, const QuantMatrix& w, const float* bias,
               float* y, float* wbuf);
};
extern const QuantSimd kQuantAvx512, kQuantAvx2;

// Fast mode (CpuPrecision::Fast) for int8 weights and int4 weights in groups of kQ8Block:
// each token's x is quantized to int8 per block of kQ8Block inputs (scale = amax / 127,
// q = round-to-nearest-even(x * 127 / amax), as llama.cpp's Q8 activations) and multiplied
// with AVX512-VNNI integer dot products (or their AVX2 equivalent): exact within a block, F32
// across blocks. The result is x' @ W'^T for that quantized x' (|x' - x| <= amax / 254 per
// element). Other weights, or a CPU with neither: quant_matmul_cpu (F32 x).
constexpr int64_t kQ8Block = 128;
bool quant_matmul_q8_supported(const QuantMatrix& w);
void quant_matmul_cpu_q8(const float* x, int64_t M, const QuantMatrix& w, const float* bias,
                         float* y);
// The VNNI kernel (kernels/quant_matmul_vnni_avx512_cpu.cpp), called once supported; its AVX2
// build computes vpdpbusd exactly with vpmaddwd (kernels/simd_avx2.h), for CPUs without VNNI.
struct QuantQ8Simd {
  void (*q8)(const float* x, int64_t M, const QuantMatrix& w, const float* bias, float* y);
};
extern const QuantQ8Simd kQuantQ8Avx512, kQuantQ8Avx2;

}  // namespace tessera
