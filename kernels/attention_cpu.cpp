#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/attention.h"

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

void paged_attention_cpu(const float* q, int64_t heads, const PagedKv& c, const Batch& b,
                         float scale, int64_t window, float* out) {
  const int64_t n = b.num_tokens(), d = c.head_dim, group = heads / c.kv_heads;
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
        float mx = -INFINITY;
        for (int64_t j = first; j <= pos; ++j) {
          const int64_t base =
              ((int64_t(table[j / c.block_size]) * c.kv_heads + kvh) * c.block_size +
               j % c.block_size) * d;
          const float* kv = c.k + base;
          float dot = 0.0f;
          for (int64_t i = 0; i < d; ++i) dot += qv[i] * kv[i];
          dot *= scale;
          scores[size_t(j - first)] = dot;
          mx = std::max(mx, dot);
        }
        float sum = 0.0f;
        for (auto& x : scores) { x = std::exp(x - mx); sum += x; }
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t j = first; j <= pos; ++j) {
          const int64_t base =
              ((int64_t(table[j / c.block_size]) * c.kv_heads + kvh) * c.block_size +
               j % c.block_size) * d;
          const float* vv = c.v + base;
          const float p = scores[size_t(j - first)];
          for (int64_t i = 0; i < d; ++i) acc[size_t(i)] += p * vv[i];
        }
        float* o = out + (t * heads + h) * d;
        const float inv = 1.0f / sum;
        for (int64_t i = 0; i < d; ++i) o[i] = acc[size_t(i)] * inv;
      }
    }
  }
}

}  // namespace tessera
