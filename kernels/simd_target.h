// The instruction set of a kernels/*_avx512_cpu.cpp build. Each of those files (but the
// sampler's vector_avx512_cpu.cpp) is compiled twice (CMakeLists.txt): with AVX-512 flags,
// and with AVX2 + FMA + F16C flags and TESSERA_SIMD_AVX2 defined, where kernels/simd_avx2.h
// provides the _mm512 intrinsics as pairs of 256-bit operations. So CPUs without AVX-512
// (most desktop processors before AMD's Zen 4 and Intel's client parts since Alder Lake) run
// the same kernels at half the width instead of the scalar portable loops. Each build's
// kernels have internal linkage and are exported as a table (TESSERA_SIMD_TABLE(kMatmul) ->
// kMatmulAvx512 or kMatmulAvx2), which kernels/matmul.h's simd_kernels() picks at run time.
#pragma once

#if defined(TESSERA_SIMD_AVX2)
#include "kernels/simd_avx2.h"
#define TESSERA_SIMD_TABLE(name) name##Avx2
#else
#include <immintrin.h>
#define TESSERA_SIMD_TABLE(name) name##Avx512
#endif
