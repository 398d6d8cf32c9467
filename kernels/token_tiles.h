// Token (M) tiling shared by the AVX-512 matmul kernels, which take up to 4 tokens per tile:
// MaxMR at a time, then one tile of the 1 to MaxMR - 1 left. Each weight row is then read
// once per tile of tokens, also in a batch of 2 or 3 decode sequences (which, run token by
// token, would read every weight 2 or 3 times a step). Included only by files built with
// AVX-512 flags; it holds no intrinsics itself.
#pragma once
#include <cstdint>
#include <type_traits>

namespace tessera {

constexpr int kMaxTokenTile = 4;

// Calls tile(m, std::integral_constant<int, left>()) when left == MR, else tries MR - 1.
template <int MR, class Tile>
inline void token_tail(int64_t m, int64_t left, const Tile& tile) {
  if constexpr (MR > 0) {
    if (left == MR) tile(m, std::integral_constant<int, MR>());
    else token_tail<MR - 1>(m, left, tile);
  }
}

// Calls tile(m0, std::integral_constant<int, MR>()) for tokens [m0, m0 + MR) covering [0, M).
template <int MaxMR = kMaxTokenTile, class Tile>
inline void over_token_tiles(int64_t M, const Tile& tile) {
  static_assert(MaxMR >= 1 && MaxMR <= kMaxTokenTile);
  int64_t m = 0;
  for (; m + MaxMR <= M; m += MaxMR) tile(m, std::integral_constant<int, MaxMR>());
  token_tail<MaxMR - 1>(m, M - m, tile);
}

// y[i, n] = dots(n)[i] * (row_scale ? row_scale[n] : 1) (+ bias[n]) for the M (<= 4) tokens
// and every weight row n, rows split over the threads; dots(n, std::integral_constant<int,
// M>(), out) writes out[0, M). The row walk of walk_rows (kernels/matmul_avx512.h).
template <class Dots>
void gemv_rows(int64_t M, int64_t N, const float* row_scale, const float* bias, float* y,
               const Dots& dots) {
  token_tail<kMaxTokenTile>(0, M, [&](int64_t, auto mr) {
    constexpr int MR = decltype(mr)::value;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      float d[MR];
      dots(n, mr, d);
      const float s = row_scale ? row_scale[n] : 1.0f, b = bias ? bias[n] : 0.0f;
      for (int i = 0; i < MR; ++i) y[i * N + n] = d[i] * s + b;
    }
  });
}

}  // namespace tessera
