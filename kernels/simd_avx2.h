// The AVX-512 intrinsics the SIMD kernel files use, for their AVX2 builds
// (kernels/simd_target.h): a 512-bit value is a pair of 256-bit ones, each operation done on
// both halves, with the AVX-512 semantics (masks, index bits, saturation, exact integer dot
// products). Why not SIMDe (Debian's libsimde-dev, which does this in general): with GCC 12
// its 512-bit values went through the stack after every operation (the stories110m prefill
// ran 70 tok/s against 550-765 with AVX-512); a struct of two __m256 stays in registers.
// Included after <immintrin.h>; the macros at the end take the intrinsics' names (GCC
// defines some as macros itself: each is undefined first).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace tessera::avx2 {

struct m512 {
  __m256 lo, hi;
};
struct m512i {
  __m256i lo, hi;
};
struct m512d {
  __m256d lo, hi;
};

inline m512 setzero_ps() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline m512i setzero_si512() { return {_mm256_setzero_si256(), _mm256_setzero_si256()}; }
inline m512 set1_ps(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
inline m512i set1_epi32(int x) { return {_mm256_set1_epi32(x), _mm256_set1_epi32(x)}; }
inline m512i set1_epi8(char x) { return {_mm256_set1_epi8(x), _mm256_set1_epi8(x)}; }
inline m512 setr_ps(float a, float b, float c, float d, float e, float f, float g, float h,
                    float i, float j, float k, float l, float m, float n, float o, float p) {
  return {_mm256_setr_ps(a, b, c, d, e, f, g, h), _mm256_setr_ps(i, j, k, l, m, n, o, p)};
}
inline m512i setr_epi32(int a, int b, int c, int d, int e, int f, int g, int h, int i, int j,
                        int k, int l, int m, int n, int o, int p) {
  return {_mm256_setr_epi32(a, b, c, d, e, f, g, h), _mm256_setr_epi32(i, j, k, l, m, n, o, p)};
}

inline m512 loadu_ps(const void* p) {
  const float* f = static_cast<const float*>(p);
  return {_mm256_loadu_ps(f), _mm256_loadu_ps(f + 8)};
}
inline m512i loadu_si512(const void* p) {
  const __m256i* v = static_cast<const __m256i*>(p);
  return {_mm256_loadu_si256(v), _mm256_loadu_si256(v + 1)};
}
inline void storeu_ps(void* p, m512 a) {
  float* f = static_cast<float*>(p);
  _mm256_storeu_ps(f, a.lo);
  _mm256_storeu_ps(f + 8, a.hi);
}

// Lane i all ones when bit i of k is set (8 lanes).
inline __m256i mask8(unsigned k) {
  const __m256i bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(int(k)), bits), bits);
}
// Masked float loads and stores never touch a masked-off element (vmaskmov).
inline m512 maskz_loadu_ps(__mmask16 k, const void* p) {
  const float* f = static_cast<const float*>(p);
  return {_mm256_maskload_ps(f, mask8(k & 0xffu)), _mm256_maskload_ps(f + 8, mask8(k >> 8))};
}
inline void mask_storeu_ps(void* p, __mmask16 k, m512 a) {
  float* f = static_cast<float*>(p);
  _mm256_maskstore_ps(f, mask8(k & 0xffu), a.lo);
  _mm256_maskstore_ps(f + 8, mask8(k >> 8), a.hi);
}
// Masked loads of bytes and 16-bit words: the whole vector when every bit is set, else the
// selected elements into zeros (the kernels mask only the tail of a row).
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

// name(a, b) = op on each half.
#define TESSERA_AVX2_BINARY(V, name, op) \
  inline V name(V a, V b) { return {op(a.lo, b.lo), op(a.hi, b.hi)}; }
TESSERA_AVX2_BINARY(m512, add_ps, _mm256_add_ps)
TESSERA_AVX2_BINARY(m512, sub_ps, _mm256_sub_ps)
TESSERA_AVX2_BINARY(m512, mul_ps, _mm256_mul_ps)
TESSERA_AVX2_BINARY(m512, max_ps, _mm256_max_ps)
TESSERA_AVX2_BINARY(m512, div_ps, _mm256_div_ps)
inline m512 fmadd_ps(m512 a, m512 b, m512 c) {
  return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
inline m512 fnmadd_ps(m512 a, m512 b, m512 c) {
  return {_mm256_fnmadd_ps(a.lo, b.lo, c.lo), _mm256_fnmadd_ps(a.hi, b.hi, c.hi)};
}
inline m512 maskz_mov_ps(__mmask16 k, m512 a) {
  return {_mm256_and_ps(a.lo, _mm256_castsi256_ps(mask8(k & 0xffu))),
          _mm256_and_ps(a.hi, _mm256_castsi256_ps(mask8(k >> 8)))};
}
// Round to the nearest integer (the only mode the kernels ask of vrndscaleps: imm 8).
inline m512 roundscale_ps(m512 a, int) {
  return {_mm256_round_ps(a.lo, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
          _mm256_round_ps(a.hi, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
}
// a * 2^k for integral k (clamped to [-252, 254]: beyond, the result is 0 or infinite
// anyway), in two factors 2^(k/2) 2^(k - k/2) so each is a normal float.
inline __m256 scalef256(__m256 a, __m256 k) {
  const __m256i ki = _mm256_cvtps_epi32(
      _mm256_min_ps(_mm256_max_ps(k, _mm256_set1_ps(-252.0f)), _mm256_set1_ps(254.0f)));
  const __m256i h = _mm256_srai_epi32(ki, 1), r = _mm256_sub_epi32(ki, h);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, bias), 23));
  const __m256 f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(r, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(a, f1), f2);
}
inline m512 scalef_ps(m512 a, m512 k) { return {scalef256(a.lo, k.lo), scalef256(a.hi, k.hi)}; }

// Doubles: 8 in a pair of __m256d (the sampler's softmax weights).
inline m512d set1_pd(double x) { return {_mm256_set1_pd(x), _mm256_set1_pd(x)}; }
inline m512d setzero_pd() { return {_mm256_setzero_pd(), _mm256_setzero_pd()}; }
TESSERA_AVX2_BINARY(m512d, add_pd, _mm256_add_pd)
TESSERA_AVX2_BINARY(m512d, sub_pd, _mm256_sub_pd)
TESSERA_AVX2_BINARY(m512d, div_pd, _mm256_div_pd)
inline m512d cvtps_pd(__m256 a) {
  return {_mm256_cvtps_pd(_mm256_castps256_ps128(a)), _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1))};
}
// Lane i of 4 all ones when bit i of k is set.
inline __m256i mask4(unsigned k) {
  const __m256i bits = _mm256_setr_epi64x(1, 2, 4, 8);
  return _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x(k), bits), bits);
}
inline m512d maskz_mov_pd(__mmask8 k, m512d a) {
  return {_mm256_and_pd(a.lo, _mm256_castsi256_pd(mask4(k & 0xfu))),
          _mm256_and_pd(a.hi, _mm256_castsi256_pd(mask4(unsigned(k) >> 4)))};
}
inline void mask_storeu_pd(void* p, __mmask8 k, m512d a) {
  double* d = static_cast<double*>(p);
  _mm256_maskstore_pd(d, mask4(k & 0xfu), a.lo);
  _mm256_maskstore_pd(d + 4, mask4(unsigned(k) >> 4), a.hi);
}
inline __m256 maskz_loadu_ps256(__mmask8 k, const void* p) {
  return _mm256_maskload_ps(static_cast<const float*>(p), mask8(k));
}
inline double reduce_add_pd(m512d a) {
  const __m256d s = _mm256_add_pd(a.lo, a.hi);
  const __m128d x = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
  return _mm_cvtsd_f64(_mm_add_sd(x, _mm_unpackhi_pd(x, x)));
}
inline m512 abs_ps(m512 a) {
  const __m256 m = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  return {_mm256_and_ps(a.lo, m), _mm256_and_ps(a.hi, m)};
}
TESSERA_AVX2_BINARY(m512i, add_epi32, _mm256_add_epi32)
TESSERA_AVX2_BINARY(m512i, and_si512, _mm256_and_si256)
TESSERA_AVX2_BINARY(m512i, xor_si512, _mm256_xor_si256)
// Shifts by a count register: n need not be a compile-time constant (unoptimised builds).
inline m512i slli_epi32(m512i a, int n) {
  const __m128i c = _mm_cvtsi32_si128(n);
  return {_mm256_sll_epi32(a.lo, c), _mm256_sll_epi32(a.hi, c)};
}
inline m512i srli_epi32(m512i a, int n) {
  const __m128i c = _mm_cvtsi32_si128(n);
  return {_mm256_srl_epi32(a.lo, c), _mm256_srl_epi32(a.hi, c)};
}
inline m512i srli_epi16(m512i a, int n) {
  const __m128i c = _mm_cvtsi32_si128(n);
  return {_mm256_srl_epi16(a.lo, c), _mm256_srl_epi16(a.hi, c)};
}
inline m512 castsi512_ps(m512i a) { return {_mm256_castsi256_ps(a.lo), _mm256_castsi256_ps(a.hi)}; }

inline m512 cvtepi32_ps(m512i a) { return {_mm256_cvtepi32_ps(a.lo), _mm256_cvtepi32_ps(a.hi)}; }
inline m512i cvtps_epi32(m512 a) { return {_mm256_cvtps_epi32(a.lo), _mm256_cvtps_epi32(a.hi)}; }
inline m512i cvtepi8_epi32(__m128i a) {
  return {_mm256_cvtepi8_epi32(a), _mm256_cvtepi8_epi32(_mm_unpackhi_epi64(a, a))};
}
inline m512i cvtepu8_epi32(__m128i a) {
  return {_mm256_cvtepu8_epi32(a), _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(a, a))};
}
inline m512i cvtepu16_epi32(__m256i a) {
  return {_mm256_cvtepu16_epi32(_mm256_castsi256_si128(a)),
          _mm256_cvtepu16_epi32(_mm256_extracti128_si256(a, 1))};
}
inline m512 cvtph_ps(__m256i a) {
  return {_mm256_cvtph_ps(_mm256_castsi256_si128(a)),
          _mm256_cvtph_ps(_mm256_extracti128_si256(a, 1))};
}
// 16 int32 -> 16 int8, saturated (through int16: the same saturation).
inline __m128i cvtsepi32_epi8(m512i a) {
  const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(a.lo, a.hi), 0xd8);
  return _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
}

// table[idx & 15] per lane: bit 3 of the index (moved to the sign) picks the half.
inline __m256 lookup16(__m256i idx, m512 table) {
  const __m256 lo = _mm256_permutevar8x32_ps(table.lo, idx);
  const __m256 hi = _mm256_permutevar8x32_ps(table.hi, idx);
  return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}
inline m512 permutexvar_ps(m512i idx, m512 table) {
  return {lookup16(idx.lo, table), lookup16(idx.hi, table)};
}
// (a, b)[idx & 31] per lane: bit 4 picks a or b.
inline __m256 lookup32(__m256i idx, m512 a, m512 b) {
  return _mm256_blendv_ps(lookup16(idx, a), lookup16(idx, b),
                          _mm256_castsi256_ps(_mm256_slli_epi32(idx, 27)));
}
inline m512 permutex2var_ps(m512 a, m512i idx, m512 b) {
  return {lookup32(idx.lo, a, b), lookup32(idx.hi, a, b)};
}

// src + the sums of 4 products of unsigned bytes of a and signed bytes of b per int32 lane,
// exactly (vpdpbusd): even and odd bytes widened to int16, then pairs summed by vpmaddwd.
inline __m256i dpbusd256(__m256i src, __m256i a, __m256i b) {
  const __m256i low = _mm256_set1_epi16(0x00ff);
  const __m256i a_even = _mm256_and_si256(a, low), a_odd = _mm256_srli_epi16(a, 8);
  const __m256i b_even = _mm256_srai_epi16(_mm256_slli_epi16(b, 8), 8);
  const __m256i b_odd = _mm256_srai_epi16(b, 8);
  return _mm256_add_epi32(src, _mm256_add_epi32(_mm256_madd_epi16(a_even, b_even),
                                                _mm256_madd_epi16(a_odd, b_odd)));
}
inline m512i dpbusd_epi32(m512i src, m512i a, m512i b) {
  return {dpbusd256(src.lo, a.lo, b.lo), dpbusd256(src.hi, a.hi, b.hi)};
}

// op over the 16 lanes: the halves, then 4, 2 and 1 lanes of 128 bits.
template <class Op256, class Op128> inline float reduce_ps(m512 a, Op256 op256, Op128 op) {
  const __m256 s = op256(a.lo, a.hi);
  __m128 x = op(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  x = op(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(op(x, _mm_shuffle_ps(x, x, 1)));
}
inline float reduce_add_ps(m512 a) {
  return reduce_ps(a, [](__m256 x, __m256 y) { return _mm256_add_ps(x, y); },
                   [](__m128 x, __m128 y) { return _mm_add_ps(x, y); });
}
inline float reduce_max_ps(m512 a) {
  return reduce_ps(a, [](__m256 x, __m256 y) { return _mm256_max_ps(x, y); },
                   [](__m128 x, __m128 y) { return _mm_max_ps(x, y); });
}
inline int reduce_add_epi32(m512i a) {
  const __m256i s = _mm256_add_epi32(a.lo, a.hi);
  __m128i x = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  x = _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 1));
  return _mm_cvtsi128_si32(x);
}

}  // namespace tessera::avx2

#undef TESSERA_AVX2_BINARY

#undef __m512
#define __m512 tessera::avx2::m512
#undef __m512d
#define __m512d tessera::avx2::m512d
#undef __m512i
#define __m512i tessera::avx2::m512i
#undef _mm512_setzero_ps
#define _mm512_setzero_ps tessera::avx2::setzero_ps
#undef _mm512_setzero_si512
#define _mm512_setzero_si512 tessera::avx2::setzero_si512
#undef _mm512_set1_ps
#define _mm512_set1_ps tessera::avx2::set1_ps
#undef _mm512_set1_epi32
#define _mm512_set1_epi32 tessera::avx2::set1_epi32
#undef _mm512_set1_epi8
#define _mm512_set1_epi8 tessera::avx2::set1_epi8
#undef _mm512_setr_ps
#define _mm512_setr_ps tessera::avx2::setr_ps
#undef _mm512_setr_epi32
#define _mm512_setr_epi32 tessera::avx2::setr_epi32
#undef _mm512_loadu_ps
#define _mm512_loadu_ps tessera::avx2::loadu_ps
#undef _mm512_loadu_si512
#define _mm512_loadu_si512 tessera::avx2::loadu_si512
#undef _mm512_storeu_ps
#define _mm512_storeu_ps tessera::avx2::storeu_ps
#undef _mm512_maskz_loadu_ps
#define _mm512_maskz_loadu_ps tessera::avx2::maskz_loadu_ps
#undef _mm512_mask_storeu_ps
#define _mm512_mask_storeu_ps tessera::avx2::mask_storeu_ps
#undef _mm512_maskz_loadu_epi8
#define _mm512_maskz_loadu_epi8 tessera::avx2::masked_load<tessera::avx2::m512i, uint8_t>
#undef _mm_maskz_loadu_epi8
#define _mm_maskz_loadu_epi8 tessera::avx2::masked_load<__m128i, uint8_t>
#undef _mm256_maskz_loadu_epi16
#define _mm256_maskz_loadu_epi16 tessera::avx2::masked_load<__m256i, uint16_t>
#undef _mm512_add_ps
#define _mm512_add_ps tessera::avx2::add_ps
#undef _mm512_sub_ps
#define _mm512_sub_ps tessera::avx2::sub_ps
#undef _mm512_mul_ps
#define _mm512_mul_ps tessera::avx2::mul_ps
#undef _mm512_max_ps
#define _mm512_max_ps tessera::avx2::max_ps
#undef _mm512_fmadd_ps
#define _mm512_fmadd_ps tessera::avx2::fmadd_ps
#undef _mm512_abs_ps
#define _mm512_abs_ps tessera::avx2::abs_ps
#undef _mm512_add_epi32
#define _mm512_add_epi32 tessera::avx2::add_epi32
#undef _mm512_and_si512
#define _mm512_and_si512 tessera::avx2::and_si512
#undef _mm512_xor_si512
#define _mm512_xor_si512 tessera::avx2::xor_si512
#undef _mm512_slli_epi32
#define _mm512_slli_epi32 tessera::avx2::slli_epi32
#undef _mm512_srli_epi32
#define _mm512_srli_epi32 tessera::avx2::srli_epi32
#undef _mm512_srli_epi16
#define _mm512_srli_epi16 tessera::avx2::srli_epi16
#undef _mm512_castsi512_ps
#define _mm512_castsi512_ps tessera::avx2::castsi512_ps
#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps tessera::avx2::cvtepi32_ps
#undef _mm512_cvtps_epi32
#define _mm512_cvtps_epi32 tessera::avx2::cvtps_epi32
#undef _mm512_cvtepi8_epi32
#define _mm512_cvtepi8_epi32 tessera::avx2::cvtepi8_epi32
#undef _mm512_cvtepu8_epi32
#define _mm512_cvtepu8_epi32 tessera::avx2::cvtepu8_epi32
#undef _mm512_cvtepu16_epi32
#define _mm512_cvtepu16_epi32 tessera::avx2::cvtepu16_epi32
#undef _mm512_cvtph_ps
#define _mm512_cvtph_ps tessera::avx2::cvtph_ps
#undef _mm512_cvtsepi32_epi8
#define _mm512_cvtsepi32_epi8 tessera::avx2::cvtsepi32_epi8
#undef _mm512_permutexvar_ps
#define _mm512_permutexvar_ps tessera::avx2::permutexvar_ps
#undef _mm512_permutex2var_ps
#define _mm512_permutex2var_ps tessera::avx2::permutex2var_ps
#undef _mm512_dpbusd_epi32
#define _mm512_dpbusd_epi32 tessera::avx2::dpbusd_epi32
#undef _mm512_reduce_add_ps
#define _mm512_reduce_add_ps tessera::avx2::reduce_add_ps
#undef _mm512_reduce_max_ps
#define _mm512_reduce_max_ps tessera::avx2::reduce_max_ps
#undef _mm512_reduce_add_epi32
#define _mm512_reduce_add_epi32 tessera::avx2::reduce_add_epi32
#undef _mm512_div_ps
#define _mm512_div_ps tessera::avx2::div_ps
#undef _mm512_fnmadd_ps
#define _mm512_fnmadd_ps tessera::avx2::fnmadd_ps
#undef _mm512_maskz_mov_ps
#define _mm512_maskz_mov_ps tessera::avx2::maskz_mov_ps
#undef _mm512_roundscale_ps
#define _mm512_roundscale_ps tessera::avx2::roundscale_ps
#undef _mm512_scalef_ps
#define _mm512_scalef_ps tessera::avx2::scalef_ps
#undef _mm512_set1_pd
#define _mm512_set1_pd tessera::avx2::set1_pd
#undef _mm512_setzero_pd
#define _mm512_setzero_pd tessera::avx2::setzero_pd
#undef _mm512_add_pd
#define _mm512_add_pd tessera::avx2::add_pd
#undef _mm512_sub_pd
#define _mm512_sub_pd tessera::avx2::sub_pd
#undef _mm512_div_pd
#define _mm512_div_pd tessera::avx2::div_pd
#undef _mm512_cvtps_pd
#define _mm512_cvtps_pd tessera::avx2::cvtps_pd
#undef _mm512_maskz_mov_pd
#define _mm512_maskz_mov_pd tessera::avx2::maskz_mov_pd
#undef _mm512_mask_storeu_pd
#define _mm512_mask_storeu_pd tessera::avx2::mask_storeu_pd
#undef _mm256_maskz_loadu_ps
#define _mm256_maskz_loadu_ps tessera::avx2::maskz_loadu_ps256
#undef _mm512_reduce_add_pd
#define _mm512_reduce_add_pd tessera::avx2::reduce_add_pd
