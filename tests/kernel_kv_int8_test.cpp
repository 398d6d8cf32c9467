// The int8 KV cache on the CPU: kv_write_cpu's quantization against values worked out by
// hand (round half to even, an all-zero head, the clamp), and paged_attention_cpu over an I8
// cache against a dense attention computed here in double, on the dequantized K/V (the same
// math: tight) and on the original K/V (the quantization error: a bound derived per case).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "runtime/batch.h"

namespace tessera::test {
namespace {

// A cache of num_blocks blocks in I8 with sentinel contents (stray writes show).
struct I8Cache {
  std::vector<int8_t> k, v;
  std::vector<float> ks, vs;
  PagedKv view;
  I8Cache(int64_t num_blocks, int64_t kvh, int64_t bs, int64_t d)
      : k(size_t(num_blocks * kvh * bs * d), int8_t(99)),
        v(k.size(), int8_t(-99)),
        ks(size_t(num_blocks * kvh * bs), -1.0f),
        vs(ks.size(), -2.0f) {
    view = PagedKv{k.data(), v.data(), kvh, bs, d, DType::I8, ks.data(), vs.data()};
  }
};

TEST(KernelKvInt8, KvWriteQuantizesByHand) {
  const int64_t kvh = 2, bs = 4, d = 8, n = 2;
  I8Cache c(3, kvh, bs, d);
  // k, v [n = 2 tokens, kv_heads = 2, d = 8].
  const std::vector<float> k = {
      // token 0, head 0: max 127 -> s = 1 exactly, so x / s = x: ties go to the even integer.
      127.0f, 2.5f, -2.5f, 3.5f, 0.5f, -1.5f, 100.4f, -127.0f,
      // token 0, head 1: all zero -> s = 0, q = 0.
      0, 0, 0, 0, 0, 0, 0, 0,
      // token 1, head 0: max 63.5 -> s = 0.5 exactly: x / s = -127, 0.5, 1.5, -0.5, 2.5,
      // 63.5, 0, 20.
      -63.5f, 0.25f, 0.75f, -0.25f, 1.25f, 31.75f, 0.0f, 10.0f,
      // token 1, head 1: max 1 -> s = 1 / 127; x / s ~ 127 x, no ties: 38.1, -88.9, 31.75, 12.7.
      1.0f, 0.3f, -0.7f, 0.25f, 0.1f, -1.0f, 0.0f, -0.01f};
  std::vector<float> v(k.size());
  for (size_t i = 0; i < k.size(); ++i) v[i] = -2.0f * k[i];  // s doubles, q negates
  const std::vector<int32_t> slots = {6, 1};  // block 1 offset 2, block 0 offset 1
  kv_write_cpu(k.data(), v.data(), n, slots.data(), c.view);

  const std::vector<std::vector<int>> want_q = {{127, 2, -2, 4, 0, -2, 100, -127},
                                                {0, 0, 0, 0, 0, 0, 0, 0},
                                                {-127, 0, 2, 0, 2, 64, 0, 20},
                                                {127, 38, -89, 32, 13, -127, 0, -1}};
  const float want_s[] = {1.0f, 0.0f, 0.5f, 1.0f / 127.0f};
  std::vector<bool> written(c.ks.size(), false);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < kvh; ++h) {
      const size_t src = size_t(t * kvh + h);
      const int64_t row = (slots[size_t(t)] / bs * kvh + h) * bs + slots[size_t(t)] % bs;
      written[size_t(row)] = true;
      EXPECT_FLOAT_EQ(c.ks[size_t(row)], want_s[src]) << "token " << t << " head " << h;
      EXPECT_FLOAT_EQ(c.vs[size_t(row)], 2.0f * want_s[src]) << "token " << t << " head " << h;
      for (int64_t i = 0; i < d; ++i) {
        const int want = want_q[src][size_t(i)];
        EXPECT_EQ(c.k[size_t(row * d + i)], want) << "k token " << t << " head " << h << " " << i;
        // v = -2 k: the same quotients negated (ties -2.5 -> -2, 0.5 -> 0 stay even).
        EXPECT_EQ(c.v[size_t(row * d + i)], want == 0 ? 0 : -want)
            << "v token " << t << " head " << h << " " << i;
      }
    }
  for (size_t r = 0; r < written.size(); ++r)
    if (!written[r]) {
      EXPECT_EQ(c.ks[r], -1.0f) << "stray scale at row " << r;
      for (int64_t i = 0; i < d; ++i) EXPECT_EQ(c.k[r * size_t(d) + size_t(i)], 99);
    }
}

TEST(KernelKvInt8, KvWriteClampsAtTheLimit) {
  // Normal floats: max / fl(max / 127) is within a hair of 127. A subnormal max of
  // 12763 * 2^-149 has s = fl(12763 / 127 = 100.496) = 100 units, so max / s = 127.63 would
  // round to 128 without the clamp (and -128 is outside the symmetric range).
  const int64_t d = 3;
  I8Cache c(1, 1, 1, d);
  const int32_t slot = 0;
  for (float mx : {0.1f, 0.3f, 1.7f, 3.3f, 1e-30f, 6e4f, std::ldexp(12763.0f, -149)}) {
    const std::vector<float> x = {mx, -mx, 0.0f};
    kv_write_cpu(x.data(), x.data(), 1, &slot, c.view);
    EXPECT_EQ(c.k[0], 127) << mx;
    EXPECT_EQ(c.k[1], -127) << mx;
    EXPECT_EQ(c.k[2], 0) << mx;
    EXPECT_EQ(c.ks[0], mx / 127.0f) << mx;
  }
}

// The test's own quantizer (the formula of kernels/attention.h), to dequantize K/V here.
std::vector<float> dequantized(const std::vector<float>& x, int64_t d) {
  std::vector<float> out(x.size());
  for (size_t r = 0; r < x.size() / size_t(d); ++r) {
    const float* row = x.data() + r * size_t(d);
    float mx = 0;
    for (int64_t i = 0; i < d; ++i) mx = std::max(mx, std::fabs(row[i]));
    const float s = mx / 127.0f;
    for (int64_t i = 0; i < d; ++i) {
      // Half to even, as the header says: x / s (a float) lands exactly on k + 0.5 about
      // once in 2^17 values, so the long contexts below do meet ties.
      const double q =
          s == 0 ? 0.0 : std::clamp(std::nearbyint(double(row[i] / s)), -127.0, 127.0);
      out[r * size_t(d) + size_t(i)] = float(q) * s;
    }
  }
  return out;
}

struct Sizes { int64_t heads, kv_heads, d, len, fresh, window; };

// One sequence of `len` tokens (the last `fresh` new) in shuffled blocks of 16.
void check_attention(const Sizes& z, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "heads " << z.heads << "/" << z.kv_heads << " d " << z.d
                                    << " len " << z.len << " window " << z.window);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  const int64_t bs = 16, kvh = z.kv_heads, d = z.d, nb = (z.len + bs - 1) / bs + 2;
  I8Cache c(nb, kvh, bs, d);
  std::vector<int32_t> blocks(static_cast<size_t>(nb));
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  std::vector<float> K(size_t(z.len * kvh * d)), V(K.size());  // [len, kv_heads, d]
  for (float& x : K) x = nd(rng);
  for (float& x : V) x = 2.0f * nd(rng);
  Batch b;
  b.max_blocks_per_seq = int32_t(nb);
  b.block_tables = blocks;
  std::vector<int32_t> slots;
  for (int64_t p = 0; p < z.len; ++p)
    slots.push_back(blocks[size_t(p / bs)] * int32_t(bs) + int32_t(p % bs));
  kv_write_cpu(K.data(), V.data(), z.len, slots.data(), c.view);
  for (int64_t p = z.len - z.fresh; p < z.len; ++p) {
    b.token_ids.push_back(0);
    b.positions.push_back(int32_t(p));
    b.slot_mapping.push_back(slots[size_t(p)]);
  }
  b.seq_begin = {0, int32_t(z.fresh)};
  b.context_lens = {int32_t(z.len)};
  const int64_t n = z.fresh;
  std::vector<float> q(size_t(n * z.heads * d));
  for (float& x : q) x = nd(rng);
  std::vector<float> out(q.size(), NAN);
  const float scale = 1.0f / std::sqrt(float(d));
  paged_attention_cpu(q.data(), z.heads, c.view, b, scale, z.window, out.data());
  std::vector<float> twin(q.size(), NAN);  // the portable path: the same up to float rounding
  paged_attention_cpu_portable(q.data(), z.heads, c.view, b, scale, z.window, twin.data());
  for (size_t i = 0; i < out.size(); ++i)
    ASSERT_NEAR(twin[i], out[i], 1e-5f * (1.0f + std::fabs(out[i]))) << "portable twin at " << i;

  const std::vector<float> Kq = dequantized(K, d), Vq = dequantized(V, d);
  double err_deq = 0, err_orig = 0, sq_ref = 0;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < z.heads; ++h) {
      const int64_t g = h / (z.heads / kvh), pos = b.positions[size_t(t)];
      const int64_t lo = z.window > 0 ? std::max<int64_t>(0, pos - z.window + 1) : 0;
      const float* qv = q.data() + (t * z.heads + h) * d;
      // Attention in double over keys [lo, pos] of K, V; also the bound of its difference
      // from the dequantized one: delta = max_j |score_j - score'_j| <= scale sum_i |q_i|
      // |k_ji - k'_ji|; softmax weights then move by a factor within e^(+-2 delta), so
      // |out - out'| <= max|v - v'| + (e^(2 delta) - 1) max|v'|.
      auto attend = [&](const std::vector<float>& Ks, const std::vector<float>& Vs,
                        std::vector<double>& o) {
        std::vector<double> sc;
        for (int64_t j = lo; j <= pos; ++j) {
          double dot = 0;
          for (int64_t i = 0; i < d; ++i) dot += double(qv[i]) * Ks[size_t((j * kvh + g) * d + i)];
          sc.push_back(dot * scale);
        }
        const double mx = *std::max_element(sc.begin(), sc.end());
        double sum = 0;
        for (double& x : sc) sum += (x = std::exp(x - mx));
        o.assign(size_t(d), 0.0);
        for (int64_t j = lo; j <= pos; ++j)
          for (int64_t i = 0; i < d; ++i)
            o[size_t(i)] += sc[size_t(j - lo)] / sum * Vs[size_t((j * kvh + g) * d + i)];
      };
      std::vector<double> ref_deq, ref_orig;
      attend(Kq, Vq, ref_deq);
      attend(K, V, ref_orig);
      double delta = 0, dv = 0, vmax = 0;
      for (int64_t j = lo; j <= pos; ++j) {
        double dj = 0;
        for (int64_t i = 0; i < d; ++i) {
          const size_t at = size_t((j * kvh + g) * d + i);
          dj += std::fabs(qv[i]) * std::fabs(double(K[at]) - Kq[at]) * scale;
          dv = std::max(dv, std::fabs(double(V[at]) - Vq[at]));
          vmax = std::max(vmax, double(std::fabs(Vq[at])));
        }
        delta = std::max(delta, dj);
      }
      const double bound = dv + std::expm1(2 * delta) * vmax;
      for (int64_t i = 0; i < d; ++i) {
        const double got = out[size_t((t * z.heads + h) * d + i)];
        ASSERT_FALSE(std::isnan(got)) << "token " << t << " head " << h;
        err_deq = std::max(err_deq, std::fabs(got - ref_deq[size_t(i)]));
        ASSERT_LE(std::fabs(got - ref_orig[size_t(i)]), bound + 1e-4)  // + float rounding
            << "token " << t << " head " << h;
        err_orig += (got - ref_orig[size_t(i)]) * (got - ref_orig[size_t(i)]);
        sq_ref += ref_orig[size_t(i)] * ref_orig[size_t(i)];
      }
    }
  EXPECT_LT(err_deq, 2e-5);  // the float kernel against double, as for the F32 cache
  // Typical error: per element |x - x'| <= s / 2 = max|x| / 254, spread evenly over
  // [-s/2, s/2]: ~0.2% of max|x| RMS; the outputs (averages of V rows) err ~1% relative.
  EXPECT_LT(std::sqrt(err_orig / sq_ref), 0.02);
}

TEST(KernelKvInt8, AttentionMatchesDenseOnDequantizedAndStaysNearFloat) {
  uint32_t seed = 1;
  for (int64_t d : {16, 64, 80, 128}) {
    check_attention({8, 2, d, 40, 40, 0}, seed++);   // prefill, GQA 4
    check_attention({7, 1, d, 300, 1, 0}, seed++);   // decode over a long context, GQA 7
    check_attention({4, 4, d, 33, 12, 0}, seed++);   // chunked prefill crossing blocks
    check_attention({4, 2, d, 100, 30, 17}, seed++);  // sliding window
  }
  // Longer than a 256-key part: decode split into folded items; a prefill chunk of 40 tokens
  // (80 pairs) whose parts fold within one item; a window starting mid-block.
  for (int64_t d : {64, 128}) {
    check_attention({14, 2, d, 1300, 1, 0}, seed++);
    check_attention({14, 2, d, 700, 40, 0}, seed++);
    check_attention({14, 2, d, 1300, 3, 500}, seed++);
  }
}

TEST(KernelKvInt8, ZeroRowsGiveZeroScoresAndValues) {
  // All-zero K and V rows (s = 0) read back as exact zeros: every score 0, so the output is
  // the plain average of the V rows, and zero V rows add nothing.
  const int64_t d = 4, bs = 16;
  I8Cache c(1, 1, bs, d);
  const std::vector<float> k(size_t(3 * d), 0.0f);
  const std::vector<float> v = {0, 0, 0, 0, 127, -127, 63.5f, 0, 0, 0, 0, 0};  // s = 1 row
  const std::vector<int32_t> slots = {0, 1, 2};
  kv_write_cpu(k.data(), v.data(), 3, slots.data(), c.view);
  Batch b;
  b.token_ids = {0};
  b.positions = {2};
  b.slot_mapping = {2};
  b.seq_begin = {0, 1};
  b.context_lens = {3};
  b.max_blocks_per_seq = 1;
  b.block_tables = {0};
  const std::vector<float> q = {1, 2, 3, 4};
  std::vector<float> out(4, NAN);
  paged_attention_cpu(q.data(), 1, c.view, b, 0.5f, 0, out.data());
  const float want[] = {127.0f / 3, -127.0f / 3, 64.0f / 3, 0.0f};  // 63.5 -> 64 (even)
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(out[size_t(i)], want[i], 1e-5f) << i;
}

}  // namespace
}  // namespace tessera::test
