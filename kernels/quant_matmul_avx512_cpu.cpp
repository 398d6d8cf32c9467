// AVX-512 quantized matmul (see quant_matmul.h). Each tile computes MR tokens x NR weight
// rows, 16 lanes at a time, turning the packed codes into F32 weights in registers.
// int8: acc += x * q over K; y = s * sum(acc).
// int4: per group, a 16-entry table of the weights its codes stand for ((c - z) * s) is
// indexed by the codes (vpermps); a 16-byte load holds 32 codes: its low nibbles are the
// chunk's even inputs, its high nibbles the odd ones, matched against xp's [even 16 | odd 16]
// order. With many tokens, 4 rows at a time are dequantized to F32 (in xp's order) and F32
// tiles run over all tokens, so the unpacking is paid once per row, not once per 4 tokens.
#include <omp.h>

#include "kernels/simd_target.h"
#include "kernels/matmul_avx512.h"
#include "kernels/quant_matmul.h"
#include "kernels/token_tiles.h"

namespace tessera {
namespace {

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

template <int MR, int NR>
void int8_tile(const float* x, int64_t K, const QuantMatrix& w, int64_t n0, const float* bias,
               float* y) {
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  const int8_t* wr[NR];
  for (int j = 0; j < NR; ++j) wr[j] = static_cast<const int8_t*>(w.q) + (n0 + j) * K;
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j)
      wv[j] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(wr[j] + k))));
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_loadu_ps(x + i * K + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (k < K) {  // the tail, masked
    const __mmask16 m = __mmask16((1u << (K - k)) - 1u);
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j)
      wv[j] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, wr[j] + k)));
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + i * K + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      y[i * w.N + n0 + j] = _mm512_reduce_add_ps(acc[i][j]) * w.scales[n0 + j] +
                            (bias ? bias[n0 + j] : 0.0f);
}

// The 16 values a group's codes stand for: lut[c] = (c - z) * s, as dequantize_weight.
inline __m512 group_lut(const QuantMatrix& w, int64_t row, int64_t g, int64_t G) {
  const __m512 codes =
      _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm512_mul_ps(_mm512_sub_ps(codes, _mm512_set1_ps(float(w.zeros[row * G + g]))),
                       _mm512_set1_ps(w.scales[row * G + g]));
}

// 16 bytes of row at code offset k (2 codes per byte), widened to one byte per 32-bit lane.
// Only the last, partial chunk of a row uses a masked load (slow on some CPUs).
inline __m512i load_codes(const uint8_t* row, int64_t k, int64_t k1) {
  const __m128i b = k + 32 <= k1
                        ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k / 2))
                        : _mm_maskz_loadu_epi8(__mmask16((1u << ((k1 - k) / 2)) - 1u), row + k / 2);
  return _mm512_cvtepu8_epi32(b);
}

// A lane's low nibble picks the even input's weight from the group's table, its high nibble
// the odd input's (vpermps reads only an index's low 4 bits: no masking needed).
template <int MR, int NR>
void int4_tile(const float* xp, int64_t Kp, const QuantMatrix& w, int64_t n0, const float* bias,
               float* y) {
  const int64_t K = w.K, G = w.groups(), gs = w.group_size;
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  const uint8_t* wr[NR];
  for (int j = 0; j < NR; ++j) wr[j] = static_cast<const uint8_t*>(w.q) + (n0 + j) * (K / 2);
  for (int64_t g = 0; g < G; ++g) {
    const int64_t k1 = min64(K, (g + 1) * gs);  // k1 - k stays even: K even, gs % 32 == 0
    __m512 lut[NR];
    for (int j = 0; j < NR; ++j) lut[j] = group_lut(w, n0 + j, g, G);
    for (int64_t k = g * gs; k < k1; k += 32) {
      __m512 lo[NR], hi[NR];
      for (int j = 0; j < NR; ++j) {
        const __m512i c = load_codes(wr[j], k, k1);
        lo[j] = _mm512_permutexvar_ps(c, lut[j]);
        hi[j] = _mm512_permutexvar_ps(_mm512_srli_epi32(c, 4), lut[j]);
      }
      for (int i = 0; i < MR; ++i) {
        const __m512 xe = _mm512_loadu_ps(xp + i * Kp + k);
        const __m512 xo = _mm512_loadu_ps(xp + i * Kp + k + 16);
        for (int j = 0; j < NR; ++j)
          acc[i][j] = _mm512_fmadd_ps(xo, hi[j], _mm512_fmadd_ps(xe, lo[j], acc[i][j]));
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      y[i * w.N + n0 + j] = _mm512_reduce_add_ps(acc[i][j]) + (bias ? bias[n0 + j] : 0.0f);
}

// int8 decode (1 token, or a batch of 2-4 together: walk_rows) with an x of up to
// kRowWiseMaxXBytes walks the rows one after the other, so the matrix is one sequential
// stream (as the bf16 and fast-mode kernels; why: kernels/matmul_avx512.h). Four
// independent sums hide the FMA latency of a single row.
// bench/quant_matmul_bench (2 threads, from DRAM): stories110m shapes 12-18 -> 23-27 GB/s;
// the 7B's K = 3584 (14 KiB of x) measured no better row-wise and keeps the tiles. int4
// (exact) was slower row-wise (7-8 vs 9-11 GB/s: its table lookups, not the reads, bound
// it) and keeps its tiles.
template <int MR>
void int8_dot_rows(const float* x, int64_t K, const int8_t* row, float* out) {
  __m512 acc[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int u = 0; u < 4; ++u) acc[i][u] = _mm512_setzero_ps();
  auto w16 = [](const int8_t* p) {  // 16 codes as F32
    return _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  };
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(row + k) + kRowWisePrefetchBytes, _MM_HINT_T0);
    for (int u = 0; u < 4; ++u) {
      const __m512 wv = w16(row + k + 16 * u);
      for (int i = 0; i < MR; ++i)
        acc[i][u] = _mm512_fmadd_ps(_mm512_loadu_ps(x + i * K + k + 16 * u), wv, acc[i][u]);
    }
  }
  for (; k < K; k += 16) {
    const __mmask16 m = K - k >= 16 ? __mmask16(0xffff) : __mmask16((1u << (K - k)) - 1u);
    const __m512 wv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, row + k)));
    for (int i = 0; i < MR; ++i)
      acc[i][0] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i * K + k), wv, acc[i][0]);
  }
  for (int i = 0; i < MR; ++i)
    out[i] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]),
                                                _mm512_add_ps(acc[i][2], acc[i][3])));
}

// W' rows [n0, n0 + NR) into wt ([NR, Kp], in xp's order: each 32-input chunk as its 16
// even then 16 odd inputs). The tail of a partial last chunk meets xp's zero padding.
template <int NR>
void dequantize_int4_rows(const QuantMatrix& w, int64_t n0, int64_t Kp, float* wt) {
  const int64_t K = w.K, G = w.groups(), gs = w.group_size;
  for (int j = 0; j < NR; ++j) {
    const uint8_t* row = static_cast<const uint8_t*>(w.q) + (n0 + j) * (K / 2);
    float* out = wt + j * Kp;
    for (int64_t g = 0; g < G; ++g) {
      const __m512 lut = group_lut(w, n0 + j, g, G);
      const int64_t k1 = min64(K, (g + 1) * gs);
      for (int64_t k = g * gs; k < k1; k += 32) {
        const __m512i c = load_codes(row, k, k1);
        _mm512_storeu_ps(out + k, _mm512_permutexvar_ps(c, lut));
        _mm512_storeu_ps(out + k + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(c, 4), lut));
      }
    }
  }
}

// y[i, n0 + j] = x[i] . wt[j] (+ bias) for i < MR, j < NR; rows of Kp (a multiple of 16).
template <int MR, int NR>
void f32_tile(const float* x, int64_t Kp, const float* wt, int64_t n0, int64_t N,
              const float* bias, float* y) {
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < Kp; k += 16) {
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = _mm512_loadu_ps(wt + j * Kp + k);
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_loadu_ps(x + i * Kp + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      y[i * N + n0 + j] = _mm512_reduce_add_ps(acc[i][j]) + (bias ? bias[n0 + j] : 0.0f);
}

// int4 with many tokens: rows [n0, n0 + NR) dequantized once, then F32 tiles over all tokens.
template <int NR>
void int4_rows_dequantized(const float* xp, int64_t Kp, int64_t M, const QuantMatrix& w,
                           int64_t n0, const float* bias, float* y, float* wt) {
  dequantize_int4_rows<NR>(w, n0, Kp, wt);
  over_token_tiles(M, [&](int64_t m, auto mr) {
    f32_tile<decltype(mr)::value, NR>(xp + m * Kp, Kp, wt, n0, w.N, bias, y + m * w.N);
  });
}

// Rows [n0, n0 + NR) for every token, up to 4 tokens at a time.
template <int NR, class Tile>
void rows_block(int64_t M, int64_t n0, const Tile& tile) {
  over_token_tiles(M, [&](int64_t m, auto mr) {
    tile.template run<decltype(mr)::value, NR>(m, n0);
  });
}

template <int NR, class Tile>
void run_tiles(int64_t M, int64_t N, const Tile& tile) {
  const int64_t full_blocks = N / NR;
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t b = 0; b < full_blocks; ++b) rows_block<NR>(M, b * NR, tile);
#pragma omp for schedule(static)
    for (int64_t n = full_blocks * NR; n < N; ++n) rows_block<1>(M, n, tile);
  }
}

struct Int8Tiles {
  const float* x;
  const QuantMatrix& w;
  const float* bias;
  float* y;
  template <int MR, int NR> void run(int64_t m, int64_t n0) const {
    int8_tile<MR, NR>(x + m * w.K, w.K, w, n0, bias, y + m * w.N);
  }
};

struct Int4Tiles {
  const float* xp;
  int64_t Kp;
  const QuantMatrix& w;
  const float* bias;
  float* y;
  template <int MR, int NR> void run(int64_t m, int64_t n0) const {
    int4_tile<MR, NR>(xp + m * Kp, Kp, w, n0, bias, y + m * w.N);
  }
};


void quant_matmul_int8_avx512(const float* x, int64_t M, const QuantMatrix& w,
                              const float* bias, float* y) {
  if (walk_rows(M, w.K * 4)) {
    return gemv_rows(M, w.N, w.scales, bias, y, [&](int64_t n, auto mr, float* out) {
      int8_dot_rows<decltype(mr)::value>(x, w.K, static_cast<const int8_t*>(w.q) + n * w.K, out);
    });
  }
  const Int8Tiles t{x, w, bias, y};
  // Decode (M = 1) with a larger x: 8 weight rows at once keep more loads in flight;
  // prefill: 4 x 4 tiles.
  if (M == 1) run_tiles<8>(M, w.N, t);
  else run_tiles<4>(M, w.N, t);
}

void quant_matmul_int4_avx512(const float* xp, int64_t Kp, int64_t M, const QuantMatrix& w,
                              const float* bias, float* y, float* wbuf) {
  if (M < kInt4DequantizeTokens) {
    const Int4Tiles t{xp, Kp, w, bias, y};
    if (M == 1) run_tiles<4>(M, w.N, t);
    else run_tiles<2>(M, w.N, t);
    return;
  }
  constexpr int NR = 4;
  const int64_t full_blocks = w.N / NR;
#pragma omp parallel
  {
    float* wt = wbuf + int64_t(omp_get_thread_num()) * NR * Kp;
#pragma omp for schedule(static)
    for (int64_t b = 0; b < full_blocks; ++b)
      int4_rows_dequantized<NR>(xp, Kp, M, w, b * NR, bias, y, wt);
#pragma omp for schedule(static)
    for (int64_t n = full_blocks * NR; n < w.N; ++n)
      int4_rows_dequantized<1>(xp, Kp, M, w, n, bias, y, wt);
  }
}

}  // namespace

extern const QuantSimd TESSERA_SIMD_TABLE(kQuant) = {quant_matmul_int8_avx512,
                                                     quant_matmul_int4_avx512};

}  // namespace tessera
