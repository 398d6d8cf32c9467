// AVX-512 matmul: y[M, N] = x[M, K] @ W[N, K]^T (+ bias). Each micro-kernel computes an
// MR x NR tile of dot products over K, 16 lanes at a time, converting W (F32/F16/BF16) to
// F32 in registers; W is read straight from the checkpoint mapping. Parallel over N.

#include <type_traits>

#include "kernels/simd_target.h"
#include "kernels/matmul_avx512.h"
#include "kernels/token_tiles.h"

namespace tessera {
namespace {

enum { kF32 = 0, kF16 = 1, kBF16 = 2 };  // must match tessera::DType's order

template <int WT>
inline __m512 load_w(const void* w, int64_t i) {
  if constexpr (WT == kF32) {
    return _mm512_loadu_ps(static_cast<const float*>(w) + i);
  } else if constexpr (WT == kF16) {
    return _mm512_cvtph_ps(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i)));
  } else {
    __m256i h = _mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

template <int WT>
inline __m512 load_w_masked(const void* w, int64_t i, __mmask16 m) {
  if constexpr (WT == kF32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(w) + i);
  } else if constexpr (WT == kF16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + i));
  } else {
    __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

template <int WT>
inline int64_t welem_bytes() { return WT == kF32 ? 4 : 2; }

// y[i * N + n0 + j] for i < MR, j < NR.
template <int WT, int MR, int NR>
void micro_kernel(const float* x, int64_t K, const char* w, int64_t n0, int64_t N,
                  const float* bias, float* y) {
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  const void* wr[NR];
  for (int j = 0; j < NR; ++j) wr[j] = w + (n0 + j) * K * welem_bytes<WT>();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load_w<WT>(wr[j], k);
    for (int i = 0; i < MR; ++i) {
      __m512 xv = _mm512_loadu_ps(x + i * K + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (k < K) {
    __mmask16 m = __mmask16((1u << (K - k)) - 1u);
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = load_w_masked<WT>(wr[j], k, m);
    for (int i = 0; i < MR; ++i) {
      __m512 xv = _mm512_maskz_loadu_ps(m, x + i * K + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      y[i * N + n0 + j] = _mm512_reduce_add_ps(acc[i][j]) + (bias ? bias[n0 + j] : 0.0f);
}

template <int WT, int NR>
void rows_block(const float* x, int64_t M, int64_t K, const char* w, int64_t n0, int64_t N,
                const float* bias, float* y) {
  over_token_tiles(M, [&](int64_t m, auto mr) {
    micro_kernel<WT, decltype(mr)::value, NR>(x + m * K, K, w, n0, N, bias, y + m * N);
  });
}

template <int WT, int NR>
void matmul_typed(const float* x, int64_t M, int64_t K, const char* w, int64_t N,
                  const float* bias, float* y) {
  const int64_t full_blocks = N / NR;
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t b = 0; b < full_blocks; ++b)
      rows_block<WT, NR>(x, M, K, w, b * NR, N, bias, y);
#pragma omp single
    for (int64_t n = full_blocks * NR; n < N; ++n) rows_block<WT, 1>(x, M, K, w, n, N, bias, y);
  }
}

#if !defined(TESSERA_SIMD_AVX2)
// The bf16 x bf16 tile: each step multiplies 32 bf16 pairs per lane group into F32 sums.
template <int MR, int NR>
void micro_kernel_bf16dot(const uint16_t* x, int64_t K, const uint16_t* w, int64_t n0,
                          int64_t N, const float* bias, float* y) {
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  const uint16_t* wr[NR];
  for (int j = 0; j < NR; ++j) wr[j] = w + (n0 + j) * K;
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    __m512bh wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = (__m512bh)_mm512_loadu_si512(wr[j] + k);
    for (int i = 0; i < MR; ++i) {
      __m512bh xv = (__m512bh)_mm512_loadu_si512(x + i * K + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv, wv[j]);
    }
  }
  if (k < K) {
    const __mmask32 m = __mmask32((uint64_t(1) << (K - k)) - 1u);
    __m512bh wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = (__m512bh)_mm512_maskz_loadu_epi16(m, wr[j] + k);
    for (int i = 0; i < MR; ++i) {
      __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, x + i * K + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv, wv[j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      y[i * N + n0 + j] = _mm512_reduce_add_ps(acc[i][j]) + (bias ? bias[n0 + j] : 0.0f);
}

template <int NR>
void rows_block_bf16dot(const uint16_t* x, int64_t M, int64_t K, const uint16_t* w, int64_t n0,
                        int64_t N, const float* bias, float* y) {
  over_token_tiles(M, [&](int64_t m, auto mr) {
    micro_kernel_bf16dot<decltype(mr)::value, NR>(x + m * K, K, w, n0, N, bias, y + m * N);
  });
}
#endif  // !TESSERA_SIMD_AVX2

// Decode (M = 1) with an x of up to kRowWiseMaxXBytes (matmul_avx512.h) walks the rows one
// after the other: the matrix is one sequential stream, and each step asks for the bytes
// kRowWisePrefetchBytes further on. Tiles of 8 (4) rows read as many short streams at once,
// which the hardware prefetcher of this project's AMD EPYC machine type follows poorly.
// Four accumulators hide the FMA / dot-product latency of a single row. Measured with
// bench/matmul_bench (2 threads, bf16 weights from DRAM, three interleaved rounds, GB/s):
// 768 x 32000 exact 16-17 -> 20-34, fast 16-20 -> 22-53; Qwen2.5-7B gate+up (3584 x 37888)
// and lm_head (3584 x 152064) fast: within the noise (25-28 -> 25-30), though the 7B's bf16
// decode end to end went 2.3 -> 3.5 tok/s. With a larger x (7B exact at K = 3584: 14 KiB of
// F32, 20-30% slower row-wise; down_proj's K = 18944) the streamed rows evict x from L1, and
// the tiles, which load each piece of x once for 8 rows, stay.

template <int Bytes>
inline void prefetch_lines_ahead(const void* p) {
  for (int l = 0; l < Bytes; l += 64)
    _mm_prefetch(static_cast<const char*>(p) + l + kRowWisePrefetchBytes, _MM_HINT_T0);
}

// Sums four accumulators per token into out[i].
template <int MR>
inline void reduce_rows(__m512 (&acc)[MR][4], float* out) {
  for (int i = 0; i < MR; ++i)
    out[i] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]),
                                                _mm512_add_ps(acc[i][2], acc[i][3])));
}

// out[i] = x[i] . w_row over K for the MR tokens of x (rows of K), 64 inputs per step in four
// independent sums per token; each weight vector is loaded once for all of them.
template <int WT, int MR>
void dot_rows(const float* x, int64_t K, const void* w_row, float* out) {
  __m512 acc[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int u = 0; u < 4; ++u) acc[i][u] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) {
    prefetch_lines_ahead<64 * (WT == kF32 ? 4 : 2)>(
        static_cast<const char*>(w_row) + k * welem_bytes<WT>());
    for (int u = 0; u < 4; ++u) {
      const __m512 wv = load_w<WT>(w_row, k + 16 * u);
      for (int i = 0; i < MR; ++i)
        acc[i][u] = _mm512_fmadd_ps(_mm512_loadu_ps(x + i * K + k + 16 * u), wv, acc[i][u]);
    }
  }
  for (; k + 16 <= K; k += 16) {
    const __m512 wv = load_w<WT>(w_row, k);
    for (int i = 0; i < MR; ++i)
      acc[i][0] = _mm512_fmadd_ps(_mm512_loadu_ps(x + i * K + k), wv, acc[i][0]);
  }
  if (k < K) {
    const __mmask16 m = __mmask16((1u << (K - k)) - 1u);
    const __m512 wv = load_w_masked<WT>(w_row, k, m);
    for (int i = 0; i < MR; ++i)
      acc[i][1] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i * K + k), wv, acc[i][1]);
  }
  reduce_rows<MR>(acc, out);
}

#if !defined(TESSERA_SIMD_AVX2)
// As dot_rows, in bf16: 128 inputs per step.
template <int MR>
void dot_rows_bf16(const uint16_t* x, int64_t K, const uint16_t* w_row, float* out) {
  __m512 acc[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int u = 0; u < 4; ++u) acc[i][u] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 128 <= K; k += 128) {
    prefetch_lines_ahead<256>(w_row + k);
    for (int u = 0; u < 4; ++u) {
      const __m512bh wv = (__m512bh)_mm512_loadu_si512(w_row + k + 32 * u);
      for (int i = 0; i < MR; ++i)
        acc[i][u] = _mm512_dpbf16_ps(
            acc[i][u], (__m512bh)_mm512_loadu_si512(x + i * K + k + 32 * u), wv);
    }
  }
  for (; k < K; k += 32) {
    const __mmask32 m = K - k >= 32 ? ~__mmask32(0) : __mmask32((uint64_t(1) << (K - k)) - 1u);
    const __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(m, w_row + k);
    for (int i = 0; i < MR; ++i)
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], (__m512bh)_mm512_maskz_loadu_epi16(m, x + i * K + k),
                                   wv);
  }
  reduce_rows<MR>(acc, out);
}
#endif  // !TESSERA_SIMD_AVX2


#if !defined(TESSERA_SIMD_AVX2)  // bf16 dot products: AVX512-BF16 only
void f32_to_bf16_avx512(const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1u);
    _mm256_mask_storeu_epi16(out + i, m,
                             (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

void matmul_bf16dot_avx512(const uint16_t* x, int64_t M, int64_t K, const uint16_t* w, int64_t N,
                           const float* bias, float* y) {
  if (walk_rows(M, K * 2))
    return gemv_rows(M, N, nullptr, bias, y, [&](int64_t n, auto mr, float* out) {
      dot_rows_bf16<decltype(mr)::value>(x, K, w + n * K, out);
    });
  constexpr int NR = 4;
  const int64_t full_blocks = N / NR;
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t b = 0; b < full_blocks; ++b)
      rows_block_bf16dot<NR>(x, M, K, w, b * NR, N, bias, y);
#pragma omp single
    for (int64_t n = full_blocks * NR; n < N; ++n)
      rows_block_bf16dot<1>(x, M, K, w, n, N, bias, y);
  }
}
#endif  // !TESSERA_SIMD_AVX2

void matmul_avx512(const float* x, int64_t M, int64_t K, const void* w, int w_dtype, int64_t N,
                   const float* bias, float* y) {
  const char* wb = static_cast<const char*>(w);
  if (walk_rows(M, K * 4)) {
    auto rows = [&](auto wt) {
      constexpr int WT = decltype(wt)::value;
      const int64_t row = K * welem_bytes<WT>();
      gemv_rows(M, N, nullptr, bias, y, [&](int64_t n, auto mr, float* out) {
        dot_rows<WT, decltype(mr)::value>(x, K, wb + n * row, out);
      });
    };
    switch (w_dtype) {
      case kF32: return rows(std::integral_constant<int, kF32>());
      case kF16: return rows(std::integral_constant<int, kF16>());
      case kBF16: return rows(std::integral_constant<int, kBF16>());
      default: return;
    }
  }
  switch (w_dtype) {
    // Decode (M = 1) with a larger x: 8 weight rows at once keep more loads in flight; prefill:
    // 4 x 4 tiles.
    case kF32: M == 1 ? matmul_typed<kF32, 8>(x, M, K, wb, N, bias, y)
                      : matmul_typed<kF32, 4>(x, M, K, wb, N, bias, y); break;
    case kF16: M == 1 ? matmul_typed<kF16, 8>(x, M, K, wb, N, bias, y)
                      : matmul_typed<kF16, 4>(x, M, K, wb, N, bias, y); break;
    case kBF16: M == 1 ? matmul_typed<kBF16, 8>(x, M, K, wb, N, bias, y)
                       : matmul_typed<kBF16, 4>(x, M, K, wb, N, bias, y); break;
    default: break;
  }
}

}  // namespace

#if defined(TESSERA_SIMD_AVX2)  // no bf16 dot products
extern const MatmulSimd TESSERA_SIMD_TABLE(kMatmul) = {matmul_avx512, nullptr, nullptr};
#else
extern const MatmulSimd TESSERA_SIMD_TABLE(kMatmul) = {matmul_avx512, f32_to_bf16_avx512,
                                                       matmul_bf16dot_avx512};
#endif

}  // namespace tessera
