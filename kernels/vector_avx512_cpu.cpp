#include "kernels/simd_target.h"
#include "kernels/vector_avx512.h"

namespace tessera {
namespace {

inline __mmask16 tail_mask(int64_t left) { return __mmask16((1u << left) - 1u); }

// exp(x) = 2^k * e^r with k = round(x / ln2), r = x - k ln2 (ln2 split in two for accuracy).
inline __m512 exp_ps(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));  // below: exp underflows to 0 anyway
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, k);
}

float exp_shift_sum_avx512(float* x, int64_t n, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  __m512 sum = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
    _mm512_storeu_ps(x + i, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 e = _mm512_maskz_mov_ps(m, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s)));
    _mm512_mask_storeu_ps(x + i, m, e);
    sum = _mm512_add_ps(sum, e);
  }
  return _mm512_reduce_add_ps(sum);
}

#if defined(TESSERA_SIMD_AVX2)
extern "C" __m256d _ZGVdN4v_exp(__m256d);  // glibc libmvec: exp on 4 doubles (AVX2)
inline __m512d vector_exp(__m512d x) { return {_ZGVdN4v_exp(x.lo), _ZGVdN4v_exp(x.hi)}; }
#else
extern "C" __m512d _ZGVeN8v_exp(__m512d);  // glibc libmvec: exp on 8 doubles (AVX-512)
inline __m512d vector_exp(__m512d x) { return _ZGVeN8v_exp(x); }
#endif

double softmax_weights_avx512(const float* l, int64_t n, double mx, double T, double* w) {
  const __m512d m = _mm512_set1_pd(mx), t = _mm512_set1_pd(T);
  __m512d sum = _mm512_setzero_pd();
  for (int64_t i = 0; i < n; i += 8) {
    const __mmask8 k = n - i >= 8 ? __mmask8(0xff) : __mmask8((1u << (n - i)) - 1u);
    const __m512d x = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, l + i));
    // (l - mx) / T as the scalar code computes it; masked-off lanes stay 0 in the sum.
    const __m512d e = _mm512_maskz_mov_pd(k, vector_exp(_mm512_div_pd(_mm512_sub_pd(x, m), t)));
    _mm512_mask_storeu_pd(w + i, k, e);
    sum = _mm512_add_pd(sum, e);
  }
  return _mm512_reduce_add_pd(sum);
}

void silu_mul_avx512(const float* gate, const float* up, int64_t n, float* out) {
  const __m512 one = _mm512_set1_ps(1.0f);
  int64_t i = 0;
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : tail_mask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g));
    const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

}  // namespace

extern const VectorSimd TESSERA_SIMD_TABLE(kVector) = {exp_shift_sum_avx512,
                                                       softmax_weights_avx512, silu_mul_avx512};

}  // namespace tessera
