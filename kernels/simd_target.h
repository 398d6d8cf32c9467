// The instruction set of a kernels/*_avx512_cpu.cpp build. Each of those files is compiled
// twice (CMakeLists.txt): with AVX-512 flags, and with AVX2 + FMA + F16C flags and
// TESSERA_SIMD_AVX2 defined, where SIMDe (Debian's libsimde-dev) provides the _mm512
// intrinsics as pairs of 256-bit operations, so CPUs without AVX-512 (most desktop processors
// before AMD's Zen 4 and Intel's client parts since Alder Lake) run the same kernels at half
// the width instead of the scalar portable loops. SIMDe 0.7.4 lacks some intrinsics the
// kernels use: they are defined here for AVX2. Each build's kernels have internal linkage
// and are exported as a table (TESSERA_SIMD_TABLE(kMatmul) -> kMatmulAvx512 / kMatmulAvx2).
#pragma once

#if defined(TESSERA_SIMD_AVX2)
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>

#include <cstdint>
#include <cstring>

#define TESSERA_SIMD_TABLE(name) name##Avx2

namespace tessera::simd_avx2 {

// Lane i of the result is all ones when bit i of k is set.
inline simde__m256i mask8(unsigned k) {
  const simde__m256i bits = simde_mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return simde_mm256_cmpeq_epi32(simde_mm256_and_si256(simde_mm256_set1_epi32(int(k)), bits),
                                 bits);
}

// Masked loads of narrow elements: whole vectors when every bit is set, else element by
// element into zeros (the kernels mask only the tail of a row).
template <class V, class E> inline V masked_load(uint64_t k, const void* p) {
  constexpr int n = int(sizeof(V) / sizeof(E));
  V v;
  if (n == 64 ? k == ~uint64_t(0) : k == (uint64_t(1) << n) - 1) {
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  E e[n] = {};
  for (int i = 0; i < n; ++i)
    if ((k >> i) & 1) std::memcpy(&e[i], static_cast<const E*>(p) + i, sizeof(E));
  std::memcpy(&v, e, sizeof v);
  return v;
}

inline simde__m512 mm512_maskz_loadu_ps(simde__mmask16 k, const void* p) {
  const float* f = static_cast<const float*>(p);
  simde__m512_private r;
  r.m256[0] = simde_mm256_maskload_ps(f, mask8(k & 0xffu));
  r.m256[1] = simde_mm256_maskload_ps(f + 8, mask8(unsigned(k) >> 8));
  return simde__m512_from_private(r);
}
inline void mm512_mask_storeu_ps(void* p, simde__mmask16 k, simde__m512 a) {
  float* f = static_cast<float*>(p);
  const simde__m512_private v = simde__m512_to_private(a);
  simde_mm256_maskstore_ps(f, mask8(k & 0xffu), v.m256[0]);
  simde_mm256_maskstore_ps(f + 8, mask8(unsigned(k) >> 8), v.m256[1]);
}
inline void mm256_mask_storeu_epi16(void* p, simde__mmask16 k, simde__m256i a) {
  uint16_t e[16];
  std::memcpy(e, &a, sizeof e);
  for (int i = 0; i < 16; ++i)
    if ((k >> i) & 1) std::memcpy(static_cast<uint16_t*>(p) + i, &e[i], 2);
}

// Element conversions, one 256-bit half at a time.
inline simde__m512 pair_ps(simde__m256 lo, simde__m256 hi) {
  simde__m512_private r;
  r.m256[0] = lo;
  r.m256[1] = hi;
  return simde__m512_from_private(r);
}
inline simde__m512i pair_si(simde__m256i lo, simde__m256i hi) {
  simde__m512i_private r;
  r.m256i[0] = lo;
  r.m256i[1] = hi;
  return simde__m512i_from_private(r);
}
inline simde__m512 mm512_cvtepi32_ps(simde__m512i a) {
  const simde__m512i_private v = simde__m512i_to_private(a);
  return pair_ps(simde_mm256_cvtepi32_ps(v.m256i[0]), simde_mm256_cvtepi32_ps(v.m256i[1]));
}
inline simde__m512i mm512_cvtps_epi32(simde__m512 a) {
  const simde__m512_private v = simde__m512_to_private(a);
  return pair_si(simde_mm256_cvtps_epi32(v.m256[0]), simde_mm256_cvtps_epi32(v.m256[1]));
}
inline simde__m512i mm512_cvtepi8_epi32(simde__m128i a) {
  return pair_si(simde_mm256_cvtepi8_epi32(a),
                 simde_mm256_cvtepi8_epi32(simde_mm_unpackhi_epi64(a, a)));
}
inline simde__m512i mm512_cvtepu8_epi32(simde__m128i a) {
  return pair_si(simde_mm256_cvtepu8_epi32(a),
                 simde_mm256_cvtepu8_epi32(simde_mm_unpackhi_epi64(a, a)));
}
inline simde__m512i mm512_cvtepu16_epi32(simde__m256i a) {
  return pair_si(simde_mm256_cvtepu16_epi32(simde_mm256_castsi256_si128(a)),
                 simde_mm256_cvtepu16_epi32(simde_mm256_extracti128_si256(a, 1)));
}
inline simde__m512 mm512_cvtph_ps(simde__m256i a) {
  return pair_ps(simde_mm256_cvtph_ps(simde_mm256_castsi256_si128(a)),
                 simde_mm256_cvtph_ps(simde_mm256_extracti128_si256(a, 1)));
}

// Horizontal reductions: the two halves first, then within 128 bits.
inline float reduce8(simde__m256 s) {
  simde__m128 x = simde_mm_add_ps(simde_mm256_castps256_ps128(s),
                                  simde_mm256_extractf128_ps(s, 1));
  x = simde_mm_add_ps(x, simde_mm_movehl_ps(x, x));
  x = simde_mm_add_ss(x, simde_mm_shuffle_ps(x, x, 1));
  return simde_mm_cvtss_f32(x);
}
inline float mm512_reduce_add_ps(simde__m512 a) {
  const simde__m512_private v = simde__m512_to_private(a);
  return reduce8(simde_mm256_add_ps(v.m256[0], v.m256[1]));
}
inline float mm512_reduce_max_ps(simde__m512 a) {
  const simde__m512_private v = simde__m512_to_private(a);
  float e[8];
  simde_mm256_storeu_ps(e, simde_mm256_max_ps(v.m256[0], v.m256[1]));
  float m = e[0];
  for (int i = 1; i < 8; ++i) m = e[i] > m ? e[i] : m;
  return m;
}
inline int mm512_reduce_add_epi32(simde__m512i a) {
  const simde__m512i_private v = simde__m512i_to_private(a);
  int32_t e[8];
  simde_mm256_storeu_si256(e, simde_mm256_add_epi32(v.m256i[0], v.m256i[1]));
  int s = 0;
  for (int i = 0; i < 8; ++i) s += e[i];
  return s;
}

}  // namespace tessera::simd_avx2

#undef _mm512_maskz_loadu_ps
#undef _mm512_mask_storeu_ps
#undef _mm512_maskz_loadu_epi16
#undef _mm256_maskz_loadu_epi16
#undef _mm256_mask_storeu_epi16
#undef _mm512_maskz_loadu_epi8
#undef _mm_maskz_loadu_epi8
#undef _mm512_cvtepi32_ps
#undef _mm512_cvtps_epi32
#undef _mm512_cvtepi8_epi32
#undef _mm512_cvtepu8_epi32
#undef _mm512_cvtepu16_epi32
#undef _mm512_cvtph_ps
#undef _mm512_reduce_add_ps
#undef _mm512_reduce_max_ps
#undef _mm512_reduce_add_epi32
#define _mm512_maskz_loadu_ps tessera::simd_avx2::mm512_maskz_loadu_ps
#define _mm512_mask_storeu_ps tessera::simd_avx2::mm512_mask_storeu_ps
#define _mm512_maskz_loadu_epi16 tessera::simd_avx2::masked_load<simde__m512i, uint16_t>
#define _mm256_maskz_loadu_epi16 tessera::simd_avx2::masked_load<simde__m256i, uint16_t>
#define _mm256_mask_storeu_epi16 tessera::simd_avx2::mm256_mask_storeu_epi16
#define _mm512_maskz_loadu_epi8 tessera::simd_avx2::masked_load<simde__m512i, uint8_t>
#define _mm_maskz_loadu_epi8 tessera::simd_avx2::masked_load<simde__m128i, uint8_t>
#define _mm512_cvtepi32_ps tessera::simd_avx2::mm512_cvtepi32_ps
#define _mm512_cvtps_epi32 tessera::simd_avx2::mm512_cvtps_epi32
#define _mm512_cvtepi8_epi32 tessera::simd_avx2::mm512_cvtepi8_epi32
#define _mm512_cvtepu8_epi32 tessera::simd_avx2::mm512_cvtepu8_epi32
#define _mm512_cvtepu16_epi32 tessera::simd_avx2::mm512_cvtepu16_epi32
#define _mm512_cvtph_ps tessera::simd_avx2::mm512_cvtph_ps
#define _mm512_reduce_add_ps tessera::simd_avx2::mm512_reduce_add_ps
#define _mm512_reduce_max_ps tessera::simd_avx2::mm512_reduce_max_ps
#define _mm512_reduce_add_epi32 tessera::simd_avx2::mm512_reduce_add_epi32

#else
#include <immintrin.h>

#define TESSERA_SIMD_TABLE(name) name##Avx512

#endif
