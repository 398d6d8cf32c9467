// Dense matmul for linear layers: y[M, N] = x[M, K] @ W[N, K]^T (+ bias[N]).
// x and y are F32; W is F32, F16 or BF16 (the checkpoint's dtype, read in place).
#pragma once
#include <cstdint>

#include "runtime/dtype.h"

namespace tessera {

// CPU reference and CPU backend implementation. Multithreaded over N (OpenMP); uses
// AVX-512 when the processor has it, a portable loop otherwise. Accumulates in F32.
void matmul_cpu(const float* x, int64_t M, int64_t K, const void* w, DType w_dtype,
                int64_t N, const float* bias, float* y);

// The portable path alone, for tests that compare it with the vectorised one.
void matmul_cpu_portable(const float* x, int64_t M, int64_t K, const void* w, DType w_dtype,
                         int64_t N, const float* bias, float* y);

// The named fast mode: x is rounded to bf16 and, for BF16 weights on a CPU with
// AVX512-BF16, multiplied with bf16 dot products (F32 accumulation), as llama.cpp does.
// Other weight dtypes use matmul_cpu on the rounded x. Not golden-exact: ~1e-3 relative.
void matmul_cpu_bf16_activations(const float* x, int64_t M, int64_t K, const void* w,
                                 DType w_dtype, int64_t N, const float* bias, float* y);

// What this CPU runs, capped by TESSERA_CPU_ISA=portable|avx2 (kernels/matmul_cpu.cpp).
bool cpu_has_avx512();
bool cpu_has_avx2();  // AVX2 + FMA + F16C: the AVX2 builds of the SIMD kernels
bool cpu_has_avx512_bf16();
bool cpu_has_avx512_vnni();

// The build of a SIMD kernel file (kernels/simd_target.h) this CPU runs: the AVX-512 one, else
// the AVX2 one, else nullptr (the portable loops).
template <class T> const T* simd_kernels(const T& avx512, const T& avx2) {
  return cpu_has_avx512() ? &avx512 : cpu_has_avx2() ? &avx2 : nullptr;
}

}  // namespace tessera
