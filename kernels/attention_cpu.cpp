#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/vector_avx512.h"

namespace tessera {

void kv_write_cpu(const float* k, const float* v, int64_t n, const int32_t* slots,
                  const PagedKv& c) {
  const size_t row = size_t(c.head_dim) * sizeof(float);
  for (int64_t t = 0; t < n; ++t) {
    const int64_t block = slots[t] / c.block_size, off = slots[t] % c.block_size;
    for (int64_t h = 0; h < c.kv_heads; ++h) {
      const int64_t dst = ((block * c.kv_heads + h) * c.block_size + off) * c.head_dim;
      const int64_t src = (t * c.kv_heads + h) * c.head_dim;
      std::memcpy(c.k + dst, k + src, row);
      std::memcpy(c.v + dst, v + src, row);
    }
  }
}

namespace {

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

void paged_attention_cpu(const float* q, int64_t heads, const PagedKv& c, const Batch& b,
                         float scale, int64_t window, float* out) {
  const int64_t n = b.num_tokens(), d = c.head_dim, group = heads / c.kv_heads;
  const bool avx = cpu_has_avx512();
  // Which sequence each token belongs to.
  std::vector<int32_t> seq_of(static_cast<size_t>(n));
  for (int64_t s = 0; s < b.num_seqs(); ++s)
    for (int32_t t = b.seq_begin[size_t(s)]; t < b.seq_begin[size_t(s) + 1]; ++t)
      seq_of[size_t(t)] = int32_t(s);

#pragma omp parallel
  {
    std::vector<float> scores;
    std::vector<float> acc(static_cast<size_t>(d));
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
        // kv head's rows are contiguous [block_size, d].
        auto for_each_run = [&](auto&& fn) {
          for (int64_t j = first; j <= pos;) {
            const int64_t off = j % c.block_size;
            const int64_t run = std::min(c.block_size - off, pos + 1 - j);
            const int64_t base =
                ((int64_t(table[j / c.block_size]) * c.kv_heads + kvh) * c.block_size + off) * d;
            fn(j - first, base, run);
            j += run;
          }
        };
        for_each_run([&](int64_t at, int64_t base, int64_t run) {
          block_scores(qv, c.k + base, run, d, scale, scores.data() + at, avx);
        });
        const float mx = *std::max_element(scores.begin(), scores.end());
        const float sum = exp_shift_sum(scores.data(), count, mx, avx);
        std::fill(acc.begin(), acc.end(), 0.0f);
        for_each_run([&](int64_t at, int64_t base, int64_t run) {
          block_accumulate(scores.data() + at, c.v + base, run, d, acc.data(), avx);
        });
        float* o = out + (t * heads + h) * d;
        const float inv = 1.0f / sum;
        for (int64_t i = 0; i < d; ++i) o[i] = acc[size_t(i)] * inv;
      }
    }
  }
}

}  // namespace tessera
