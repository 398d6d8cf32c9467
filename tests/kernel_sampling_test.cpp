// sample_cpu / argmax_cpu: greedy and its ties, top-k and top-p supports, determinism in u,
// and the sampled distribution against softmax(logits / T) computed here in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "kernels/sampling.h"

namespace tessera::test {
namespace {

// softmax(logits / T) in double.
std::vector<double> softmax_ref(const std::vector<float>& logits, double T) {
  double mx = -INFINITY;
  for (float l : logits) mx = std::max(mx, double(l));
  std::vector<double> p;
  double sum = 0.0;
  for (float l : logits) { p.push_back(std::exp((l - mx) / T)); sum += p.back(); }
  for (double& x : p) x /= sum;
  return p;
}

// Ids by probability, descending (ties: lower id first).
std::vector<int> order_by(const std::vector<double>& p) {
  std::vector<int> idx(p.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return p[size_t(a)] > p[size_t(b)]; });
  return idx;
}

std::set<int> draw_support(const std::vector<float>& logits, const SamplingParams& sp, int draws) {
  std::set<int> seen;
  for (int i = 0; i < draws; ++i) {
    const double u = (i + 0.5) / draws;
    seen.insert(sample_cpu(logits.data(), int64_t(logits.size()), sp, u));
  }
  return seen;
}

}  // namespace

TEST(SamplingCpu, GreedyIsArgmaxFirstOnTies) {
  const std::vector<float> l = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f};
  EXPECT_EQ(argmax_cpu(l.data(), 5), 1);
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  for (double u : {0.0, 0.3, 0.999}) EXPECT_EQ(sample_cpu(l.data(), 5, greedy, u), 1);
  SamplingParams k1;
  k1.temperature = 1.5f;
  k1.top_k = 1;
  for (double u : {0.0, 0.5, 0.9999}) EXPECT_EQ(sample_cpu(l.data(), 5, k1, u), 1);
  const std::vector<float> last = {-5.0f, -4.0f, -3.0f};
  EXPECT_EQ(argmax_cpu(last.data(), 3), 2);
  EXPECT_EQ(argmax_cpu(last.data(), 1), 0);
  const std::vector<float> neg_inf = {-INFINITY, -INFINITY, -1e30f};
  EXPECT_EQ(argmax_cpu(neg_inf.data(), 3), 2);
}

TEST(SamplingCpu, TopKRestrictsTheSupport) {
  std::mt19937 rng(31);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> l(50);
  for (auto& x : l) x = nd(rng);
  const auto p = softmax_ref(l, 1.0);
  const auto order = order_by(p);
  for (int64_t k : {2, 3, 10}) {
    SamplingParams sp;
    sp.temperature = 3.0f;  // flat: every candidate gets drawn
    sp.top_k = k;
    const std::set<int> allowed(order.begin(), order.begin() + k);
    const std::set<int> seen = draw_support(l, sp, 20000);
    for (int id : seen) EXPECT_TRUE(allowed.count(id)) << "id " << id << " outside top " << k;
    EXPECT_EQ(seen, allowed) << "some top-" << k << " candidate never drawn";
  }
  // top_k larger than the vocabulary is no limit.
  SamplingParams big;
  big.temperature = 50.0f;
  big.top_k = 1000;
  EXPECT_EQ(draw_support(l, big, 100000).size(), l.size());
}

TEST(SamplingCpu, TopPRestrictsToTheNucleus) {
  const std::vector<float> l = {1.0f, 3.0f, 0.0f, 2.5f, -1.0f, 2.0f, 0.5f};
  for (double T : {0.7, 1.0, 2.0})
    for (float top_p : {0.3f, 0.6f, 0.8f, 0.95f}) {
      const auto p = softmax_ref(l, double(float(T)));
      const auto order = order_by(p);
      // The nucleus: the smallest prefix (by probability) whose mass reaches top_p.
      std::set<int> nucleus;
      double cum = 0.0;
      for (int id : order) {
        nucleus.insert(id);
        cum += p[size_t(id)];
        if (cum >= top_p) break;
      }
      SamplingParams sp;
      sp.temperature = float(T);
      sp.top_p = top_p;
      const std::set<int> seen = draw_support(l, sp, 20000);
      EXPECT_EQ(seen, nucleus) << "T=" << T << " top_p=" << top_p;
    }
  // top_p with top_k: the nucleus is taken inside the top k.
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.top_k = 3;
  sp.top_p = 0.99f;
  EXPECT_EQ(draw_support(l, sp, 20000), (std::set<int>{1, 3, 5}));
}

TEST(SamplingCpu, DeterministicInU) {
  std::mt19937 rng(32);
  std::normal_distribution<float> nd;
  std::vector<float> l(300);
  for (auto& x : l) x = nd(rng);
  SamplingParams sp;
  sp.temperature = 0.9f;
  sp.top_k = 40;
  sp.top_p = 0.9f;
  std::uniform_real_distribution<double> ud(0.0, 1.0);
  int prev = -1, changes = 0;
  for (int i = 0; i < 200; ++i) {
    const double u = ud(rng);
    const int a = sample_cpu(l.data(), 300, sp, u);
    EXPECT_EQ(a, sample_cpu(l.data(), 300, sp, u));
    changes += a != prev;
    prev = a;
  }
  EXPECT_GT(changes, 10);  // u actually matters
  // Monotone in u: larger u never picks a more probable candidate than a smaller u.
  const auto p = softmax_ref(l, 0.9);
  double last_p = 2.0;
  for (int i = 0; i < 1000; ++i) {
    const int id = sample_cpu(l.data(), 300, sp, i / 1000.0);
    EXPECT_LE(p[size_t(id)], last_p + 1e-12) << "u=" << i / 1000.0;
    last_p = p[size_t(id)];
  }
  // u at the edges stays inside the support.
  for (double u : {0.0, std::nextafter(1.0, 0.0)}) {
    const int id = sample_cpu(l.data(), 300, sp, u);
    EXPECT_TRUE(id >= 0 && id < 300);
  }
}

TEST(SamplingCpu, DistributionMatchesSoftmax) {
  const std::vector<float> l = {0.2f, 1.5f, -0.7f, 1.1f, 0.0f, -2.0f};
  for (double T : {0.5, 1.0, 1.7}) {
    const auto p = softmax_ref(l, T);
    SamplingParams sp;
    sp.temperature = float(T);
    std::mt19937_64 rng(33);
    std::uniform_real_distribution<double> ud(0.0, 1.0);
    const int draws = 60000;
    std::vector<int> count(l.size(), 0);
    for (int i = 0; i < draws; ++i) ++count[size_t(sample_cpu(l.data(), 6, sp, ud(rng)))];
    double chi2 = 0.0;
    for (size_t i = 0; i < l.size(); ++i) {
      const double e = draws * p[i];
      chi2 += (count[i] - e) * (count[i] - e) / e;
    }
    // 5 degrees of freedom: P(chi2 > 30) ~ 1.5e-5. A wrong temperature or an off-by-one in
    // the cumulative sum gives chi2 in the hundreds or more.
    EXPECT_LT(chi2, 30.0) << "T=" << T;
  }
}

}  // namespace tessera::test
