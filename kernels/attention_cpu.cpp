#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/vector_avx512.h"

namespace tessera {

namespace {

void check_cache(const PagedKv& c, const char* op) {
  if (c.dtype == DType::F32 || (c.dtype == DType::I8 && c.k_scale && c.v_scale)) return;
  throw std::invalid_argument(std::string(op) + ": the cache must be F32, or I8 with scales, not " +
                              dtype_name(c.dtype));
}

// Rows [row, row + run) of a cache tensor [rows, d] as F32: in place for an F32 cache,
// dequantized into tile [run, d] (x' = q * s of the row) for an I8 one.
const float* cache_rows(const void* data, const float* scales, DType dt, int64_t row,
                        int64_t run, int64_t d, float* tile, bool avx) {
  if (dt == DType::F32) return static_cast<const float*>(data) + row * d;
  const int8_t* q = static_cast<const int8_t*>(data) + row * d;
  if (avx) {
    dequantize_rows_avx512(q, scales + row, run, d, tile);
    return tile;
  }
  for (int64_t j = 0; j < run; ++j) {
    const float s = scales[row + j];
    for (int64_t i = 0; i < d; ++i) tile[j * d + i] = float(q[j * d + i]) * s;
  }
  return tile;
}

// scores[j] = scale * q . k[j] for `keys` contiguous rows k [keys, d].
void block_scores(const float* q, const float* k, int64_t keys, int64_t d, float scale,
                  float* scores, bool avx) {
  if (avx) return block_scores_avx512(q, k, keys, d, scale, scores);
  for (int64_t j = 0; j < keys; ++j) {
    float s = 0.0f;
    for (int64_t i = 0; i < d; ++i) s += q[i] * k[j * d + i];
    scores[j] = s * scale;
  }
}

// acc += sum_j p[j] * v[j] over `keys` contiguous rows v [keys, d].
void block_accumulate(const float* p, const float* v, int64_t keys, int64_t d, float* acc,
                      bool avx) {
  if (avx) return block_accumulate_avx512(p, v, keys, d, acc);
  for (int64_t j = 0; j < keys; ++j)
    for (int64_t i = 0; i < d; ++i) acc[i] += p[j] * v[j * d + i];
}

float exp_shift_sum(float* x, int64_t n, float shift, bool avx) {
  if (avx) return exp_shift_sum_avx512(x, n, shift);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - shift));
  return sum;
}

}  // namespace

float quantize_kv_row(const float* x, int64_t d, int8_t* q) {
  float mx = 0.0f;
  for (int64_t i = 0; i < d; ++i) mx = std::max(mx, std::fabs(x[i]));
  const float s = mx / 127.0f;
  for (int64_t i = 0; i < d; ++i)  // nearbyint: round half to even (the default FP mode)
    q[i] = s == 0.0f ? int8_t(0)
                     : int8_t(std::clamp(std::nearbyint(x[i] / s), -127.0f, 127.0f));
  return s;
}

void kv_write_cpu(const float* k, const float* v, int64_t n, const int32_t* slots,
                  const PagedKv& c) {
  check_cache(c, "kv_write_cpu");
  const int64_t d = c.head_dim;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t block = slots[t] / c.block_size, off = slots[t] % c.block_size;
    for (int64_t h = 0; h < c.kv_heads; ++h) {
      const int64_t row = (block * c.kv_heads + h) * c.block_size + off;
      const int64_t src = (t * c.kv_heads + h) * d;
      if (c.dtype == DType::I8) {
        c.k_scale[row] = quantize_kv_row(k + src, d, static_cast<int8_t*>(c.k) + row * d);
        c.v_scale[row] = quantize_kv_row(v + src, d, static_cast<int8_t*>(c.v) + row * d);
      } else {
        std::memcpy(static_cast<float*>(c.k) + row * d, k + src, size_t(d) * sizeof(float));
        std::memcpy(static_cast<float*>(c.v) + row * d, v + src, size_t(d) * sizeof(float));
      }
    }
  }
}

void paged_attention_cpu(const float* q, int64_t heads, const PagedKv& c, const Batch& b,
                         float scale, int64_t window, float* out) {
  const int64_t n = b.num_tokens(), d = c.head_dim, group = heads / c.kv_heads;
  const bool avx = cpu_has_avx512();
  check_cache(c, "paged_attention_cpu");
  // Which sequence each token belongs to.
  std::vector<int32_t> seq_of(static_cast<size_t>(n));
  for (int64_t s = 0; s < b.num_seqs(); ++s)
    for (int32_t t = b.seq_begin[size_t(s)]; t < b.seq_begin[size_t(s) + 1]; ++t)
      seq_of[size_t(t)] = int32_t(s);

#pragma omp parallel
  {
    std::vector<float> scores;
    std::vector<float> acc(static_cast<size_t>(d));
    // One block's rows dequantized (I8 caches only).
    std::vector<float> tile(c.dtype == DType::I8 ? size_t(c.block_size * d) : 0);
#pragma omp for schedule(dynamic, 4) collapse(2)
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t s = seq_of[size_t(t)], pos = b.positions[size_t(t)];
        const int32_t* table = b.block_table(s);
        const int64_t kvh = h / group;
        const int64_t first = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
        const int64_t count = pos - first + 1;
        const float* qv = q + (t * heads + h) * d;
        scores.resize(size_t(count));
        // Keys [first, pos] in runs that stay inside one cache block: within a block a
        // kv head's rows are contiguous [block_size, d]. fn gets the first row's index.
        auto for_each_run = [&](auto&& fn) {
          for (int64_t j = first; j <= pos;) {
            const int64_t off = j % c.block_size;
            const int64_t run = std::min(c.block_size - off, pos + 1 - j);
            const int64_t row =
                (int64_t(table[j / c.block_size]) * c.kv_heads + kvh) * c.block_size + off;
            fn(j - first, row, run);
            j += run;
          }
        };
        for_each_run([&](int64_t at, int64_t row, int64_t run) {
          const float* k = cache_rows(c.k, c.k_scale, c.dtype, row, run, d, tile.data(), avx);
          block_scores(qv, k, run, d, scale, scores.data() + at, avx);
        });
        const float mx = *std::max_element(scores.begin(), scores.end());
        const float sum = exp_shift_sum(scores.data(), count, mx, avx);
        std::fill(acc.begin(), acc.end(), 0.0f);
        for_each_run([&](int64_t at, int64_t row, int64_t run) {
          const float* v = cache_rows(c.v, c.v_scale, c.dtype, row, run, d, tile.data(), avx);
          block_accumulate(scores.data() + at, v, run, d, acc.data(), avx);
        });
        float* o = out + (t * heads + h) * d;
        const float inv = 1.0f / sum;
        for (int64_t i = 0; i < d; ++i) o[i] = acc[size_t(i)] * inv;
      }
    }
  }
}

}  // namespace tessera
