// rope_inv_freq (default, linear, llama3 scaling) against references written here from the
// published formulas, and rope_cpu (rotate-half) against a direct double-precision rotation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/rope.h"
#include "runtime/model_config.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

ModelConfig rope_config(int64_t head_dim, float theta) {
  ModelConfig c;
  c.head_dim = head_dim;
  c.rope_theta = theta;
  return c;
}

// theta^(-2i/d) for i < d/2.
std::vector<double> plain_inv_freq(int64_t d, double theta) {
  std::vector<double> f;
  for (int64_t i = 0; i < d / 2; ++i) f.push_back(std::exp(-double(2 * i) / double(d) * std::log(theta)));
  return f;
}

// Llama 3 scaling as Hugging Face documents it (_compute_llama3_parameters): with
// wavelen = 2 pi / f, frequencies whose wavelength is shorter than old_ctx / high_freq_factor
// stay, those longer than old_ctx / low_freq_factor are divided by factor, and the band in
// between interpolates: s = (old_ctx / wavelen - low) / (high - low),
// f' = (1 - s) * f / factor + s * f.
enum class Band { High, Medium, Low };
double llama3_ref(double f, double factor, double low, double high, double old_ctx, Band* band) {
  const double wavelen = 2.0 * 3.14159265358979323846 / f;
  const double low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
  if (wavelen < high_wavelen) { *band = Band::High; return f; }
  if (wavelen > low_wavelen) { *band = Band::Low; return f / factor; }
  *band = Band::Medium;
  const double s = (old_ctx / wavelen - low) / (high - low);
  return (1.0 - s) * f / factor + s * f;
}

}  // namespace

TEST(KernelRopeReference, DefaultInvFreq) {
  for (int64_t d : {2, 16, 64, 80, 128})
    for (float theta : {10000.0f, 500000.0f, 1000000.0f}) {
      const auto got = rope_inv_freq(rope_config(d, theta));
      const auto want = plain_inv_freq(d, theta);
      ASSERT_EQ(got.size(), size_t(d / 2));
      for (size_t i = 0; i < want.size(); ++i)
        EXPECT_NEAR(got[i], want[i], 1e-12 * want[i]) << "d=" << d << " theta=" << theta << " i=" << i;
      EXPECT_EQ(got[0], 1.0);
    }
}

TEST(KernelRopeReference, LinearScalingDividesByFactor) {
  ModelConfig c = rope_config(64, 10000.0f);
  c.rope_scaling.type = RopeScaling::Type::Linear;
  c.rope_scaling.factor = 4.0f;
  const auto got = rope_inv_freq(c);
  const auto want = plain_inv_freq(64, 10000.0);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i] / 4.0, 1e-12 * want[i]) << i;
}

TEST(KernelRopeReference, Llama3ScalingAllThreeBands) {
  // The tiny-llama3-rope shape: head_dim 16, theta 500000, factor 8, low 1, high 4,
  // original_max_position 64: wavelengths straddle both band edges (16 and 64).
  ModelConfig c = rope_config(16, 500000.0f);
  c.rope_scaling.type = RopeScaling::Type::Llama3;
  c.rope_scaling.factor = 8.0f;
  c.rope_scaling.low_freq_factor = 1.0f;
  c.rope_scaling.high_freq_factor = 4.0f;
  c.rope_scaling.original_max_position = 64;
  const auto got = rope_inv_freq(c);
  const auto base = plain_inv_freq(16, 500000.0);
  int count[3] = {0, 0, 0};
  for (size_t i = 0; i < base.size(); ++i) {
    Band band;
    const double want = llama3_ref(base[i], 8.0, 1.0, 4.0, 64.0, &band);
    ++count[int(band)];
    EXPECT_NEAR(got[i], want, 1e-12 * want) << "i=" << i << " band " << int(band);
  }
  EXPECT_GT(count[int(Band::High)], 0);
  EXPECT_GT(count[int(Band::Medium)], 0);
  EXPECT_GT(count[int(Band::Low)], 0);
  // Non-default low/high factors move the band edges.
  c.rope_scaling.low_freq_factor = 2.0f;
  c.rope_scaling.high_freq_factor = 8.0f;
  c.rope_scaling.factor = 3.0f;
  c.rope_scaling.original_max_position = 256;
  const auto got2 = rope_inv_freq(c);
  for (size_t i = 0; i < base.size(); ++i) {
    Band band;
    const double want = llama3_ref(base[i], 3.0, 2.0, 8.0, 256.0, &band);
    EXPECT_NEAR(got2[i], want, 1e-12 * want) << i;
  }
}

TEST(KernelRopeReference, Llama3FromTheTestdataConfig) {
  TESSERA_REQUIRE_TESTDATA();
  const ModelConfig c = load_model_config(testdata_dir() + "/models/tiny-llama3-rope");
  const auto got = rope_inv_freq(c);
  const auto base = plain_inv_freq(c.head_dim, c.rope_theta);
  int bands = 0, seen[3] = {0, 0, 0};
  for (size_t i = 0; i < base.size(); ++i) {
    Band band;
    const double want = llama3_ref(base[i], 8.0, 1.0, 4.0, 64.0, &band);
    if (!seen[int(band)]++) ++bands;
    EXPECT_NEAR(got[i], want, 1e-12 * want) << i;
  }
  EXPECT_EQ(bands, 3);
}

TEST(KernelRopeReference, RotateHalfAgainstDirectRotation) {
  std::mt19937 rng(21);
  std::normal_distribution<float> nd;
  for (int64_t d : {16, 64, 80}) {
    const int64_t n = 6, heads = 3;
    const auto inv = plain_inv_freq(d, 10000.0);
    const std::vector<int32_t> pos = {0, 1, 5, 17, 1000, 4095};
    std::vector<float> x(size_t(n * heads * d));
    for (auto& v : x) v = nd(rng);
    std::vector<float> y = x;
    rope_cpu(y.data(), n, heads, d, pos.data(), inv.data());
    for (int64_t t = 0; t < n; ++t)
      for (int64_t h = 0; h < heads; ++h) {
        const float* a = x.data() + (t * heads + h) * d;
        const float* b = y.data() + (t * heads + h) * d;
        double norm_a = 0.0, norm_b = 0.0;
        for (int64_t i = 0; i < d / 2; ++i) {
          const double ang = double(pos[size_t(t)]) * inv[size_t(i)];
          const double x1 = a[i], x2 = a[i + d / 2];
          // out = x * cos + rotate_half(x) * sin, rotate_half(x) = (-x2, x1).
          EXPECT_NEAR(b[i], x1 * std::cos(ang) - x2 * std::sin(ang), 2e-5) << t << "," << h << "," << i;
          EXPECT_NEAR(b[i + d / 2], x2 * std::cos(ang) + x1 * std::sin(ang), 2e-5)
              << t << "," << h << "," << i;
          norm_a += x1 * x1 + x2 * x2;
          norm_b += double(b[i]) * b[i] + double(b[i + d / 2]) * b[i + d / 2];
        }
        EXPECT_NEAR(norm_b, norm_a, 1e-4 * norm_a);  // a rotation keeps the norm
        if (pos[size_t(t)] == 0) {
          for (int64_t i = 0; i < d; ++i) EXPECT_EQ(b[i], a[i]) << "position 0 must be identity";
        }
      }
  }
}

TEST(KernelRopeReference, RelativePositionProperty) {
  // q(m) . k(n) depends only on m - n.
  std::mt19937 rng(22);
  std::normal_distribution<float> nd;
  const int64_t d = 32;
  const auto inv = plain_inv_freq(d, 10000.0);
  std::vector<float> q0(d), k0(d);
  for (auto& v : q0) v = nd(rng);
  for (auto& v : k0) v = nd(rng);
  auto dot_at = [&](int32_t m, int32_t n) {
    std::vector<float> q = q0, k = k0;
    rope_cpu(q.data(), 1, 1, d, &m, inv.data());
    rope_cpu(k.data(), 1, 1, d, &n, inv.data());
    double s = 0.0;
    for (int64_t i = 0; i < d; ++i) s += double(q[size_t(i)]) * k[size_t(i)];
    return s;
  };
  EXPECT_NEAR(dot_at(10, 3), dot_at(107, 100), 1e-4);
  EXPECT_NEAR(dot_at(5, 5), dot_at(0, 0), 1e-4);
}

}  // namespace tessera::test
