// Paged attention on the CPU against a dense causal reference in double: GQA, several
// sequences with shuffled block tables, chunked prefill, sliding window.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "kernels/attention.h"
#include "runtime/sequence.h"

namespace tessera::test {
namespace {

struct Case {
  int64_t heads, kv_heads, d;
  std::vector<int64_t> lens;    // context length of each sequence after the step
  std::vector<int64_t> fresh;   // new tokens of each sequence in this step
  int64_t window;
};

void check(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  const int64_t bs = 16;
  int64_t blocks = 0;
  for (int64_t l : c.lens) blocks += (l + bs - 1) / bs;
  std::vector<int32_t> ids(size_t(blocks + 3));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);  // non-contiguous block tables
  const int64_t nb = int64_t(ids.size());
  std::vector<float> kc(size_t(nb * c.kv_heads * bs * c.d), NAN), vc(kc.size(), NAN);
  PagedKv cache{kc.data(), vc.data(), c.kv_heads, bs, c.d};
  // Per sequence dense K, V [len, kv_heads, d]; write all positions through kv_write_cpu.
  std::vector<std::vector<float>> K, V;
  std::vector<Sequence> seqs(c.lens.size());
  size_t next = 0;
  BatchBuilder bb(bs);
  for (size_t s = 0; s < c.lens.size(); ++s) {
    const int64_t len = c.lens[s];
    K.emplace_back(size_t(len * c.kv_heads * c.d));
    V.emplace_back(K.back().size());
    for (auto& x : K.back()) x = nd(rng);
    for (auto& x : V.back()) x = nd(rng);
    for (int64_t b = 0; b < (len + bs - 1) / bs; ++b) seqs[s].blocks.push_back(ids[next++]);
    seqs[s].tokens.assign(size_t(len), 0);
    std::vector<int32_t> slots;
    for (int64_t p = 0; p < len; ++p)
      slots.push_back(int32_t(seqs[s].blocks[size_t(p / bs)] * bs + p % bs));
    kv_write_cpu(K.back().data(), V.back().data(), len, slots.data(), cache);
    seqs[s].num_cached = len - c.fresh[s];
    bb.add(seqs[s], c.fresh[s], true);
  }
  const Batch b = bb.build();
  std::vector<float> q(size_t(b.num_tokens() * c.heads * c.d));
  for (auto& x : q) x = nd(rng);
  std::vector<float> out(q.size(), NAN);
  const float scale = 1.0f / std::sqrt(float(c.d));
  paged_attention_cpu(q.data(), c.heads, cache, b, scale, c.window, out.data());
  double err = 0, norm = 0;
  for (int64_t s = 0; s < b.num_seqs(); ++s) {
    for (int64_t t = b.seq_begin[size_t(s)]; t < b.seq_begin[size_t(s) + 1]; ++t) {
      const int64_t pos = b.positions[size_t(t)];
      const int64_t first = c.window > 0 ? std::max<int64_t>(0, pos - c.window + 1) : 0;
      for (int64_t h = 0; h < c.heads; ++h) {
        const int64_t kvh = h / (c.heads / c.kv_heads);
        std::vector<double> w;
        double mx = -1e300, sum = 0;
        for (int64_t j = first; j <= pos; ++j) {
          double dot = 0;
          for (int64_t i = 0; i < c.d; ++i)
            dot += double(q[size_t((t * c.heads + h) * c.d + i)]) *
                   K[size_t(s)][size_t((j * c.kv_heads + kvh) * c.d + i)];
          w.push_back(dot * scale);
          mx = std::max(mx, w.back());
        }
        for (double& x : w) sum += (x = std::exp(x - mx));
        for (int64_t i = 0; i < c.d; ++i) {
          double ref = 0;
          for (int64_t j = first; j <= pos; ++j)
            ref += w[size_t(j - first)] / sum * V[size_t(s)][size_t((j * c.kv_heads + kvh) * c.d + i)];
          const float got = out[size_t((t * c.heads + h) * c.d + i)];
          ASSERT_FALSE(std::isnan(got));
          err += (got - ref) * (got - ref);
          norm += ref * ref;
        }
      }
    }
  }
  EXPECT_LT(std::sqrt(err / norm), 1e-5);
}

}  // namespace

TEST(KernelAttention, PrefillDecodeAndChunkedAgainstDenseReference) {
  check({4, 4, 16, {1, 17, 40}, {1, 17, 40}, 0}, 1);   // prefill, MHA
  check({8, 2, 64, {17, 33}, {1, 1}, 0}, 2);           // decode, GQA 4
  check({7, 1, 80, {40, 5}, {9, 5}, 0}, 3);            // chunked prefill, GQA 7
  check({4, 2, 128, {70}, {70}, 0}, 4);
}

TEST(KernelAttention, SlidingWindowLimitsKeys) {
  check({4, 2, 16, {40}, {40}, 8}, 5);
  check({4, 2, 16, {40, 3}, {1, 3}, 16}, 6);
  check({4, 1, 64, {33}, {7}, 1}, 7);  // W = 1: each token sees only itself
}

}  // namespace tessera::test
