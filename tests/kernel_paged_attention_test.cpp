// paged_attention_cpu and kv_write_cpu against a naive dense causal attention computed here
// in double. Batches are built by hand (not through BatchBuilder) so this tests the kernel
// alone: GQA, several head dims, sequences of different lengths in one batch, shuffled block
// tables with -1 padding, chunked prefill, sliding windows. Cache slots that no token owns
// hold NaN, so a read outside a sequence's keys poisons the output. The vectorised kernel and
// its portable twin are both checked; long contexts go through the parts and their folding.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "runtime/batch.h"

namespace tessera::test {
namespace {

struct SeqSpec {
  int64_t len;    // context length after the step
  int64_t fresh;  // new tokens this step (the last `fresh` positions)
};

struct Case {
  int64_t heads, kv_heads, d, block_size, window;
  std::vector<SeqSpec> seqs;
};

std::string describe(const Case& c) {
  std::ostringstream s;
  s << "heads=" << c.heads << " kv=" << c.kv_heads << " d=" << c.d << " bs=" << c.block_size
    << " window=" << c.window << " seqs:";
  for (const auto& q : c.seqs) s << ' ' << q.len << '/' << q.fresh;
  return s.str();
}

// Runs the case through the kernel (the portable twin when `portable`), checks it against
// the dense reference and returns its output.
std::vector<float> run_case(const Case& c, uint32_t seed, bool portable = false) {
  SCOPED_TRACE(describe(c));
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  const int64_t bs = c.block_size, d = c.d, kvh = c.kv_heads;
  int64_t need = 0, widest = 0;
  for (const auto& s : c.seqs) {
    need += (s.len + bs - 1) / bs;
    widest = std::max(widest, (s.len + bs - 1) / bs);
  }
  const int64_t num_blocks = need + 5;  // spare blocks stay NaN
  std::vector<int32_t> pool(static_cast<size_t>(num_blocks));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  std::vector<float> kc(size_t(num_blocks * kvh * bs * d), NAN), vc(kc.size(), NAN);
  const PagedKv cache{kc.data(), vc.data(), kvh, bs, d};

  Batch b;
  b.max_blocks_per_seq = int32_t(widest + 2);  // wider than needed: -1 padding
  b.seq_begin.push_back(0);
  std::vector<std::vector<float>> K, V;  // dense per sequence [len, kv_heads, d]
  size_t next_block = 0;
  for (const auto& s : c.seqs) {
    std::vector<int32_t> table(size_t(b.max_blocks_per_seq), -1);
    for (int64_t i = 0; i < (s.len + bs - 1) / bs; ++i) table[size_t(i)] = pool[next_block++];
    b.block_tables.insert(b.block_tables.end(), table.begin(), table.end());
    K.emplace_back(size_t(s.len * kvh * d));
    V.emplace_back(K.back().size());
    for (auto& x : K.back()) x = nd(rng);
    for (auto& x : V.back()) x = nd(rng);
    std::vector<int32_t> slots;
    for (int64_t p = 0; p < s.len; ++p) slots.push_back(int32_t(table[size_t(p / bs)] * bs + p % bs));
    // Cached tokens went in on an earlier step; this step writes the new ones.
    const int64_t cached = s.len - s.fresh;
    if (cached > 0) kv_write_cpu(K.back().data(), V.back().data(), cached, slots.data(), cache);
    kv_write_cpu(K.back().data() + cached * kvh * d, V.back().data() + cached * kvh * d,
                 s.fresh, slots.data() + cached, cache);
    for (int64_t p = cached; p < s.len; ++p) {
      b.token_ids.push_back(0);
      b.positions.push_back(int32_t(p));
      b.slot_mapping.push_back(slots[size_t(p)]);
    }
    b.seq_begin.push_back(int32_t(b.token_ids.size()));
    b.context_lens.push_back(int32_t(s.len));
  }
  EXPECT_NO_THROW(validate_batch(b, num_blocks * bs, bs));

  const int64_t n = b.num_tokens();
  std::vector<float> q(size_t(n * c.heads * d));
  for (auto& x : q) x = nd(rng);
  std::vector<float> out(q.size(), NAN);
  const float scale = 1.0f / std::sqrt(float(d));
  (portable ? paged_attention_cpu_portable : paged_attention_cpu)(q.data(), c.heads, cache, b,
                                                                 scale, c.window, out.data());

  const int64_t group = c.heads / kvh;
  double max_err = 0.0;
  for (size_t s = 0; s < c.seqs.size(); ++s)
    for (int64_t t = b.seq_begin[s]; t < b.seq_begin[s + 1]; ++t) {
      const int64_t pos = b.positions[size_t(t)];
      const int64_t lo = c.window > 0 ? std::max<int64_t>(0, pos - c.window + 1) : 0;
      for (int64_t h = 0; h < c.heads; ++h) {
        const int64_t g = h / group;
        const float* qv = q.data() + (t * c.heads + h) * d;
        std::vector<double> sc;
        double mx = -INFINITY;
        for (int64_t j = lo; j <= pos; ++j) {
          double dot = 0.0;
          for (int64_t i = 0; i < d; ++i) dot += double(qv[i]) * K[s][size_t((j * kvh + g) * d + i)];
          sc.push_back(dot * scale);
          mx = std::max(mx, sc.back());
        }
        double sum = 0.0;
        for (double& x : sc) sum += (x = std::exp(x - mx));
        for (int64_t i = 0; i < d; ++i) {
          double o = 0.0;
          for (int64_t j = lo; j <= pos; ++j) o += sc[size_t(j - lo)] * V[s][size_t((j * kvh + g) * d + i)];
          o /= sum;
          const float got = out[size_t((t * c.heads + h) * d + i)];
          if (std::isnan(got)) {
            ADD_FAILURE() << "NaN at token " << t << " head " << h << " dim " << i;
            return out;
          }
          max_err = std::max(max_err, std::fabs(got - o));
        }
      }
    }
  EXPECT_LT(max_err, 2e-5) << (portable ? "portable" : "vectorised");
  return out;
}

// Both paths.
void run_both(const Case& c, uint32_t seed) {
  run_case(c, seed);
  run_case(c, seed, true);
}

}  // namespace

TEST(KernelPagedAttention, GqaRatiosAndHeadDims) {
  const int64_t kv_for[][2] = {{4, 4}, {8, 2}, {7, 1}};  // ratios 1, 4, 7
  uint32_t seed = 1;
  for (const auto& hk : kv_for)
    for (int64_t d : {16, 64, 80})
      run_both({hk[0], hk[1], d, 16, 0, {{1, 1}, {17, 17}, {40, 40}}}, seed++);
}

TEST(KernelPagedAttention, DecodeAndChunkedPrefillMixed) {
  // One decoding sequence (1 new of 40), one chunked prefill (21 cached, 12 new, crossing
  // block edges), a fresh prefill and a one-token sequence, in one batch.
  run_both({8, 2, 64, 16, 0, {{40, 1}, {33, 12}, {17, 17}, {1, 1}}}, 11);
  // A small block size makes every run cross several blocks.
  run_both({7, 1, 16, 5, 0, {{40, 3}, {17, 17}, {1, 1}, {26, 1}}}, 12);
}

TEST(KernelPagedAttention, SlidingWindow) {
  uint32_t seed = 20;
  for (int64_t w : {1, 3, 16, 17, 39, 40, 1000}) {
    run_both({8, 2, 16, 16, w, {{40, 40}, {17, 17}, {1, 1}}}, seed++);
    run_both({4, 4, 80, 16, w, {{40, 5}, {33, 1}}}, seed++);
  }
}

// Contexts longer than a part (256 keys): decode of one sequence (few (token, kv head) pairs:
// its parts are split into work items and folded), several decoding sequences, a prefill
// chunk of many tokens over a long context (each pair's parts folded in one item), windows
// that start a part mid-block, and a block size that does not divide a part.
TEST(KernelPagedAttention, LongContextsInPartsMatchTheReference) {
  run_both({14, 2, 64, 16, 0, {{1500, 1}}}, 40);
  run_both({8, 8, 128, 16, 0, {{700, 1}}}, 41);
  run_both({6, 2, 32, 16, 0, {{600, 1}, {257, 1}, {256, 1}, {1030, 1}}}, 42);
  run_both({14, 2, 64, 16, 0, {{700, 40}}}, 43);  // 80 pairs
  run_both({14, 2, 64, 16, 300, {{1500, 1}, {700, 33}}}, 44);
  run_both({4, 1, 16, 5, 0, {{1031, 2}, {513, 1}}}, 45);
}

// The split of a long context into work items depends on the batch, not on the threads:
// the outputs are bitwise the same with 1, 2 and 3 threads.
TEST(KernelPagedAttention, OutputDoesNotDependOnTheThreadCount) {
  const Case c{14, 2, 64, 16, 0, {{1500, 1}, {300, 1}}};
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<float> one = run_case(c, 50);
  for (int threads : {2, 3}) {
    omp_set_num_threads(threads);
    EXPECT_EQ(run_case(c, 50), one) << threads << " threads";
  }
  omp_set_num_threads(before);
}

TEST(KernelPagedAttention, WindowOneIsTheValueOfTheToken) {
  // With W = 1 each token sees only itself: out = v of its own position.
  const int64_t d = 16, bs = 16;
  std::vector<float> kc(size_t(2 * bs * d), NAN), vc(kc.size(), NAN);
  const PagedKv cache{kc.data(), vc.data(), 1, bs, d};
  std::vector<float> k(size_t(20 * d)), v(k.size());
  for (size_t i = 0; i < k.size(); ++i) { k[i] = float(i % 7); v[i] = float(i); }
  std::vector<int32_t> slots;
  for (int p = 0; p < 20; ++p) slots.push_back(p < 16 ? 16 + p : p - 16);  // blocks {1, 0}
  kv_write_cpu(k.data(), v.data(), 20, slots.data(), cache);
  Batch b;
  for (int p = 0; p < 20; ++p) { b.token_ids.push_back(0); b.positions.push_back(p); }
  b.slot_mapping = slots;
  b.seq_begin = {0, 20};
  b.context_lens = {20};
  b.max_blocks_per_seq = 2;
  b.block_tables = {1, 0};
  std::vector<float> q(size_t(20 * d), 1.0f), out(q.size(), NAN);
  paged_attention_cpu(q.data(), 1, cache, b, 0.25f, 1, out.data());
  for (size_t i = 0; i < out.size(); ++i) EXPECT_FLOAT_EQ(out[i], v[i]) << i;
}

TEST(KernelPagedAttention, KvWritePlacesTokensAtTheirSlots) {
  const int64_t kvh = 3, bs = 4, d = 5, num_blocks = 6, n = 7;
  std::vector<float> kc(size_t(num_blocks * kvh * bs * d), -1.0f), vc(kc.size(), -2.0f);
  const PagedKv cache{kc.data(), vc.data(), kvh, bs, d};
  std::vector<float> k(size_t(n * kvh * d)), v(k.size());
  for (size_t i = 0; i < k.size(); ++i) { k[i] = float(i); v[i] = float(1000 + i); }
  const std::vector<int32_t> slots = {23, 0, 5, 6, 7, 8, 17};  // out of order, block edges
  kv_write_cpu(k.data(), v.data(), n, slots.data(), cache);
  std::vector<bool> written(kc.size(), false);
  for (int64_t t = 0; t < n; ++t) {
    const int64_t blk = slots[size_t(t)] / bs, off = slots[size_t(t)] % bs;
    for (int64_t h = 0; h < kvh; ++h)
      for (int64_t i = 0; i < d; ++i) {
        const size_t at = size_t(((blk * kvh + h) * bs + off) * d + i);  // [blocks, kvh, bs, d]
        const size_t src = size_t((t * kvh + h) * d + i);
        EXPECT_EQ(kc[at], k[src]) << "token " << t << " head " << h << " dim " << i;
        EXPECT_EQ(vc[at], v[src]) << "token " << t << " head " << h << " dim " << i;
        written[at] = true;
      }
  }
  for (size_t i = 0; i < kc.size(); ++i)
    if (!written[i]) {
      EXPECT_EQ(kc[i], -1.0f) << "stray write at " << i;
      EXPECT_EQ(vc[i], -2.0f) << "stray write at " << i;
    }
}

}  // namespace tessera::test
