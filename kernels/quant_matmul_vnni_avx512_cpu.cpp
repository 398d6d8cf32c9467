// Fast-mode quantized matmul (see quant_matmul.h): x quantized to int8 per block of 128
// inputs, weights kept packed, products summed exactly in int32 by AVX512-VNNI (vpdpbusd:
// unsigned bytes x signed bytes, 4 products per 32-bit lane), blocks scaled and summed in F32.
// vpdpbusd wants one operand unsigned: int4 codes already are (0..15), and int8 weights become
// w + 128 (a sign-bit flip); the terms this adds are taken off with each block's sum of q:
//   int4: y = sum_b s[g] xs[b] (sum_k c q - z sum_k q)         (block b = group g)
//   int8: y = s (sum_b xs[b] sum_k (w + 128) q - 128 sum_b xs[b] sum_k q)
#include <omp.h>

#include <type_traits>
#include <vector>

#include "kernels/simd_target.h"
#include "kernels/matmul_avx512.h"
#include "kernels/quant_matmul.h"
#include "kernels/token_tiles.h"

namespace tessera {
namespace {

constexpr int64_t B = kQ8Block;

// One call's activations: per token, Kp = blocks * 128 int8 values (zero past K) in the
// weight's order, and per block its scale and scale * sum(q).
struct Q8Activations {
  std::vector<int8_t> q;        // [M, Kp]
  std::vector<float> scale;     // [M, blocks]
  std::vector<float> ssum;      // [M, blocks]: scale * sum of the block's q
  int64_t Kp = 0, blocks = 0;
};

// x[0, n) (n <= 128; zeros past n) as 8 vectors of 16 lanes.
inline void load_block(const float* x, int64_t n, __m512 v[8]) {
  for (int c = 0; c < 8; ++c) {
    const int64_t left = n - c * 16;
    const __mmask16 m = left >= 16 ? __mmask16(0xffff)
                        : left <= 0 ? __mmask16(0)
                                    : __mmask16((1u << left) - 1u);
    v[c] = _mm512_maskz_loadu_ps(m, x + c * 16);
  }
}

// int4 order: a block's 64 even inputs, then its 64 odd ones (a code byte's low and high
// nibble). int8 order: as is.
void quantize_token(const float* x, int64_t K, bool even_odd, Q8Activations& a, int64_t m) {
  for (int64_t b = 0; b < a.blocks; ++b) {
    __m512 v[8];
    load_block(x + b * B, K - b * B < B ? K - b * B : B, v);
    if (even_odd) {
      const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
      const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
      __m512 s[8];
      for (int p = 0; p < 4; ++p) {
        s[p] = _mm512_permutex2var_ps(v[2 * p], ev, v[2 * p + 1]);
        s[4 + p] = _mm512_permutex2var_ps(v[2 * p], od, v[2 * p + 1]);
      }
      for (int c = 0; c < 8; ++c) v[c] = s[c];
    }
    __m512 amax = _mm512_setzero_ps();
    for (int c = 0; c < 8; ++c) amax = _mm512_max_ps(amax, _mm512_abs_ps(v[c]));
    const float mx = _mm512_reduce_max_ps(amax);
    const float scale = mx / 127.0f, inv = mx > 0.0f ? 127.0f / mx : 0.0f;
    __m512i sum = _mm512_setzero_si512();
    int8_t* q = a.q.data() + m * a.Kp + b * B;
    for (int c = 0; c < 8; ++c) {
      const __m512i qi = _mm512_cvtps_epi32(_mm512_mul_ps(v[c], _mm512_set1_ps(inv)));
      sum = _mm512_add_epi32(sum, qi);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + c * 16), _mm512_cvtsepi32_epi8(qi));
    }
    a.scale[size_t(m * a.blocks + b)] = scale;
    a.ssum[size_t(m * a.blocks + b)] = scale * float(_mm512_reduce_add_epi32(sum));
  }
}

// 64 bytes of a row from byte offset `at`; in a row's last, partial block (Tail), zeros past
// `end`. Full blocks take plain loads: no mask arithmetic in the hot loop.
template <bool Tail>
inline __m512i load_bytes(const uint8_t* row, int64_t at, int64_t end) {
  if constexpr (!Tail) {
    return _mm512_loadu_si512(row + at);
  } else {
    const int64_t n = end - at;
    const __mmask64 m = n >= 64 ? ~__mmask64(0) : n <= 0 ? __mmask64(0) : ~__mmask64(0) >> (64 - n);
    return _mm512_maskz_loadu_epi8(m, row + at);
  }
}

// Decode (one token) reads each weight byte once, so how the bytes are walked decides its
// speed. Rows of up to kRowWiseMaxXBytes inputs (x: one int8 per input; matmul_avx512.h)
// are walked one row after the other: the matrix is then one sequential stream, and each
// block asks for the bytes kRowWisePrefetchBytes (1 and 4 KiB measured no better) further
// on. Tiles of 8 rows read 8 streams of a few KiB at once, which the hardware prefetcher
// follows poorly: measured with bench/quant_matmul_bench (2 threads, 7B shapes from DRAM),
// K = 3584 rows went from ~15 to ~27-30 GB/s (int4) and ~20 to ~26-30 GB/s (int8), the
// host's read bandwidth. Longer rows (Qwen2.5-7B's down_proj, K = 18944) stay in 8-row
// tiles, which load each x block once for 8 rows (x no longer fits beside the stream in L1;
// row-wise measured 15-25% slower there). Batches of 2-4 tokens walk the rows as well while
// their x fits (walk_rows): tiles of 4 rows ran at a third to a half of the stream's speed.

template <int MR, int NR>
inline void prefetch_ahead(const QuantMatrix& w, int64_t n0, int64_t row_bytes, int64_t at) {
  if constexpr (NR == 1)  // past the matrix's end: a prefetch never faults
    _mm_prefetch(static_cast<const char*>(w.q) + n0 * row_bytes + at + kRowWisePrefetchBytes,
                 _MM_HINT_T0);
}

// In 8-row tiles, int8 decode helps the prefetcher: while a tile works on full block b, it
// asks for the same share of the next tile's bytes (tiles are contiguous: NR rows of
// `row_bytes`, and NR rows' full blocks span at most that); by the tile's last block the
// next one is on its way. Measured (2 threads, the int8 GEMVs of two Qwen2.5-7B layers, 444
// MiB, runs interleaved with the build before it): 1-5% more GB/s in most rounds, up to 18%
// in some; never a clear loss. Not for int4 (no gain measured) nor prefill
// (its tiles reuse their rows for every token).
template <int NR>
inline void prefetch_next_tile(const QuantMatrix& w, int64_t n0, int64_t row_bytes, int64_t b,
                               int64_t block_bytes) {
  if (NR == 1) return;           // a single row streams: prefetch_ahead asks ahead
  if (n0 + 2 * NR > w.N) return;  // no whole next tile: stay inside the matrix
  const char* next = static_cast<const char*>(w.q) + (n0 + NR) * row_bytes + b * NR * block_bytes;
  for (int64_t l = 0; l < NR * block_bytes; l += 64) _mm_prefetch(next + l, _MM_HINT_T0);
}

// Runs step(b, std::bool_constant<tail>) over the blocks: those within `bytes` of a row (each
// block taking `block_bytes`) without masks, the partial last one with.
template <class Step>
inline void over_blocks(int64_t blocks, int64_t block_bytes, int64_t bytes, const Step& step) {
  const int64_t full = bytes / block_bytes;
  for (int64_t b = 0; b < full; ++b) step(b, std::false_type());
  for (int64_t b = full; b < blocks; ++b) step(b, std::true_type());
}

template <int MR, int NR>
void int4_tile(const Q8Activations& a, int64_t m0, const QuantMatrix& w, int64_t n0,
               const float* bias, float* y) {
  const int64_t nb = a.blocks, rowb = w.K / 2;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  over_blocks(nb, B / 2, rowb, [&](int64_t b, auto tail) {
    __m512i lo[NR], hi[NR];
    prefetch_ahead<MR, NR>(w, n0, rowb, b * (B / 2));
    for (int j = 0; j < NR; ++j) {
      const __m512i c = load_bytes<decltype(tail)::value>(
          static_cast<const uint8_t*>(w.q) + (n0 + j) * rowb, b * (B / 2), rowb);
      lo[j] = _mm512_and_si512(c, low4);
      hi[j] = _mm512_and_si512(_mm512_srli_epi16(c, 4), low4);
    }
    for (int i = 0; i < MR; ++i) {
      const int8_t* xq = a.q.data() + (m0 + i) * a.Kp + b * B;
      const __m512i xe = _mm512_loadu_si512(xq), xo = _mm512_loadu_si512(xq + 64);
      const float xs = a.scale[size_t((m0 + i) * nb + b)];
      for (int j = 0; j < NR; ++j) {
        const __m512i d = _mm512_dpbusd_epi32(
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[j], xe), hi[j], xo);
        acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d),
                                    _mm512_set1_ps(w.scales[(n0 + j) * nb + b] * xs), acc[i][j]);
      }
    }
  });
  // The zero points: sum_b s z xs sum(q), 16 blocks at a time.
  for (int i = 0; i < MR; ++i) {
    const float* ss = a.ssum.data() + (m0 + i) * nb;
    for (int j = 0; j < NR; ++j) {
      const float* s = w.scales + (n0 + j) * nb;
      const int8_t* z = w.zeros + (n0 + j) * nb;
      __m512 corr = _mm512_setzero_ps();
      for (int64_t b = 0; b < nb; b += 16) {
        const __mmask16 m = nb - b >= 16 ? __mmask16(0xffff) : __mmask16((1u << (nb - b)) - 1u);
        const __m512 zf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, z + b)));
        corr = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + b), zf),
                               _mm512_maskz_loadu_ps(m, ss + b), corr);
      }
      y[(m0 + i) * w.N + n0 + j] = _mm512_reduce_add_ps(acc[i][j]) -
                                   _mm512_reduce_add_ps(corr) + (bias ? bias[n0 + j] : 0.0f);
    }
  }
}

template <int MR, int NR>
void int8_tile(const Q8Activations& a, int64_t m0, const QuantMatrix& w, int64_t n0,
               const float* bias, float* y) {
  const int64_t nb = a.blocks, K = w.K;
  const __m512i flip = _mm512_set1_epi8(int8_t(0x80));  // w + 128 as an unsigned byte
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  over_blocks(nb, B, K, [&](int64_t b, auto tail) {
    constexpr bool T = decltype(tail)::value;
    __m512i w0[NR], w1[NR];
    if constexpr (MR == 1 && !T) prefetch_next_tile<NR>(w, n0, K, b, B);
    prefetch_ahead<MR, NR>(w, n0, K, b * B);
    prefetch_ahead<MR, NR>(w, n0, K, b * B + 64);
    for (int j = 0; j < NR; ++j) {
      const uint8_t* row = static_cast<const uint8_t*>(w.q) + (n0 + j) * K;
      w0[j] = _mm512_xor_si512(load_bytes<T>(row, b * B, K), flip);
      w1[j] = _mm512_xor_si512(load_bytes<T>(row, b * B + 64, K), flip);
    }
    for (int i = 0; i < MR; ++i) {
      const int8_t* xq = a.q.data() + (m0 + i) * a.Kp + b * B;
      const __m512i x0 = _mm512_loadu_si512(xq), x1 = _mm512_loadu_si512(xq + 64);
      const __m512 xs = _mm512_set1_ps(a.scale[size_t((m0 + i) * nb + b)]);
      for (int j = 0; j < NR; ++j) {
        const __m512i d = _mm512_dpbusd_epi32(
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), w0[j], x0), w1[j], x1);
        acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), xs, acc[i][j]);
      }
    }
  });
  for (int i = 0; i < MR; ++i) {
    float offset = 0.0f;  // 128 * sum_b xs sum(q): what the +128 added
    for (int64_t b = 0; b < nb; ++b) offset += a.ssum[size_t((m0 + i) * nb + b)];
    offset *= 128.0f;
    for (int j = 0; j < NR; ++j)
      y[(m0 + i) * w.N + n0 + j] = (_mm512_reduce_add_ps(acc[i][j]) - offset) *
                                       w.scales[n0 + j] + (bias ? bias[n0 + j] : 0.0f);
  }
}

struct Tiles {
  const Q8Activations& a;
  const QuantMatrix& w;
  const float* bias;
  float* y;
  template <int MR, int NR> void run(int64_t m0, int64_t n0) const {
    if (w.int4) int4_tile<MR, NR>(a, m0, w, n0, bias, y);
    else int8_tile<MR, NR>(a, m0, w, n0, bias, y);
  }
};

// Rows [n0, n0 + NR) for every token, up to MaxMR tokens at a time; OpenMP over row blocks.
template <int MaxMR, int NR>
void run_tiles(int64_t M, const Tiles& t) {
  const int64_t N = t.w.N, full = N / NR;
  auto rows = [&](int64_t n0, auto nr) {
    over_token_tiles<MaxMR>(M, [&](int64_t m, auto mr) {
      t.template run<decltype(mr)::value, decltype(nr)::value>(m, n0);
    });
  };
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t b = 0; b < full; ++b) rows(b * NR, std::integral_constant<int, NR>());
#pragma omp for schedule(static)
    for (int64_t n = full * NR; n < N; ++n) rows(n, std::integral_constant<int, 1>());
  }
}


void quant_matmul_q8_avx512(const float* x, int64_t M, const QuantMatrix& w, const float* bias,
                            float* y) {
  thread_local Q8Activations a;
  a.blocks = (w.K + B - 1) / B;
  a.Kp = a.blocks * B;
  a.q.resize(size_t(M * a.Kp));
  a.scale.resize(size_t(M * a.blocks));
  a.ssum.resize(size_t(M * a.blocks));
  Q8Activations* ap = &a;  // thread_local: hand the workers the address, not the name
#pragma omp parallel for schedule(static) if (M * w.K > 65536)
  for (int64_t m = 0; m < M; ++m) quantize_token(x + m * w.K, w.K, w.int4, *ap, m);
  const Tiles t{a, w, bias, y};
  if (walk_rows(M, w.K, w.int4 ? kRowWiseMaxInt4BatchXBytes : kRowWiseMaxXBytes))
    run_tiles<kMaxTokenTile, 1>(M, t);
  else if (M == 1) run_tiles<1, 8>(M, t);
  else run_tiles<kMaxTokenTile, 4>(M, t);
}

}  // namespace

extern const QuantQ8Simd TESSERA_SIMD_TABLE(kQuantQ8) = {quant_matmul_q8_avx512};

}  // namespace tessera
