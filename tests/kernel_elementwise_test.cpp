// RMSNorm, fused add + RMSNorm, SiLU-gated activation, embedding lookup (vocab ranges, all
// table dtypes), convert_to_f32 and the scalar dtype conversions of runtime/dtype.h, each
// against a reference computed here in double.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/activation.h"
#include "kernels/embedding.h"
#include "kernels/rmsnorm.h"
#include "runtime/dtype.h"

namespace tessera::test {
namespace {

std::vector<float> random_vec(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Reference RMSNorm of one row in double.
std::vector<double> rms_ref(const float* x, const float* w, double eps, int64_t h) {
  double ss = 0.0;
  for (int64_t j = 0; j < h; ++j) ss += double(x[j]) * x[j];
  const double inv = 1.0 / std::sqrt(ss / double(h) + eps);
  std::vector<double> out(static_cast<size_t>(h));
  for (int64_t j = 0; j < h; ++j) out[size_t(j)] = double(x[j]) * inv * w[j];
  return out;
}

}  // namespace

TEST(KernelElementwise, RmsnormAgainstReference) {
  std::mt19937 rng(7);
  for (int64_t h : {1, 7, 64, 129, 1000})
    for (int64_t n : {1, 3, 9}) {
      const float eps = 1e-5f;
      const auto x = random_vec(size_t(n * h), rng, 3.0f);
      const auto w = random_vec(size_t(h), rng);
      std::vector<float> out(x.size(), NAN);
      rmsnorm_cpu(x.data(), w.data(), eps, n, h, out.data());
      for (int64_t i = 0; i < n; ++i) {
        const auto ref = rms_ref(x.data() + i * h, w.data(), eps, h);
        for (int64_t j = 0; j < h; ++j)
          ASSERT_NEAR(out[size_t(i * h + j)], ref[size_t(j)], 1e-5 * (1 + std::fabs(ref[size_t(j)])))
              << "n=" << n << " h=" << h << " row " << i << " col " << j;
      }
      // In place (out aliases x) gives the same result.
      std::vector<float> inplace = x;
      rmsnorm_cpu(inplace.data(), w.data(), eps, n, h, inplace.data());
      EXPECT_EQ(inplace, out);
    }
  // eps matters for a zero row: out = 0, not NaN.
  std::vector<float> z(8, 0.0f), w(8, 1.0f), out(8, NAN);
  rmsnorm_cpu(z.data(), w.data(), 1e-6f, 1, 8, out.data());
  for (float v : out) EXPECT_EQ(v, 0.0f);
}

TEST(KernelElementwise, AddRmsnormUpdatesResidualAndNormalises) {
  std::mt19937 rng(8);
  const int64_t n = 5, h = 96;
  const auto res0 = random_vec(size_t(n * h), rng);
  const auto delta = random_vec(size_t(n * h), rng);
  const auto w = random_vec(size_t(h), rng);
  std::vector<float> res = res0, out(size_t(n * h), NAN);
  add_rmsnorm_cpu(res.data(), delta.data(), w.data(), 1e-6f, n, h, out.data());
  std::vector<float> sum(res0.size());
  for (size_t i = 0; i < sum.size(); ++i) {
    sum[i] = res0[i] + delta[i];
    EXPECT_EQ(res[i], sum[i]) << "residual not updated at " << i;
  }
  for (int64_t i = 0; i < n; ++i) {
    const auto ref = rms_ref(sum.data() + i * h, w.data(), 1e-6, h);
    for (int64_t j = 0; j < h; ++j)
      EXPECT_NEAR(out[size_t(i * h + j)], ref[size_t(j)], 1e-5 * (1 + std::fabs(ref[size_t(j)])));
  }
}

TEST(KernelElementwise, SiluMulAgainstReference) {
  std::mt19937 rng(9);
  for (int64_t n : {1, 15, 16, 17, 100, 4097}) {
    auto g = random_vec(size_t(n), rng, 4.0f);
    const auto u = random_vec(size_t(n), rng);
    if (n > 3) { g[0] = -30.0f; g[1] = 30.0f; g[2] = 0.0f; }
    std::vector<float> out(size_t(n), NAN);
    silu_mul_cpu(g.data(), u.data(), n, out.data());
    for (int64_t i = 0; i < n; ++i) {
      const double gi = g[size_t(i)];
      const double ref = gi / (1.0 + std::exp(-gi)) * u[size_t(i)];
      ASSERT_NEAR(out[size_t(i)], ref, 2e-6 * (1.0 + std::fabs(ref))) << "n=" << n << " i=" << i;
    }
  }
}

TEST(KernelElementwise, EmbeddingRowsAndVocabRange) {
  std::mt19937 rng(10);
  const int64_t vocab_local = 6, hidden = 13, begin = 100;
  const auto table = random_vec(size_t(vocab_local * hidden), rng);
  std::vector<uint16_t> tf16, tbf16;
  for (float v : table) { tf16.push_back(f32_to_f16(v)); tbf16.push_back(f32_to_bf16(v)); }
  const std::vector<int32_t> ids = {100, 105, 99, 106, 0, 103, 103, 2000000000};
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    const void* tp = t == DType::F32 ? static_cast<const void*>(table.data())
                                     : t == DType::F16 ? static_cast<const void*>(tf16.data())
                                                       : tbf16.data();
    std::vector<float> out(ids.size() * size_t(hidden), NAN);
    embedding_cpu(tp, t, vocab_local, hidden, begin, ids.data(), int64_t(ids.size()), out.data());
    for (size_t i = 0; i < ids.size(); ++i) {
      const int64_t r = int64_t(ids[i]) - begin;
      for (int64_t j = 0; j < hidden; ++j) {
        const float got = out[i * size_t(hidden) + size_t(j)];
        float want = 0.0f;
        if (r >= 0 && r < vocab_local) {
          const size_t k = size_t(r * hidden + j);
          want = t == DType::F32 ? table[k] : t == DType::F16 ? f16_to_f32(tf16[k])
                                                              : bf16_to_f32(tbf16[k]);
        }
        EXPECT_EQ(got, want) << dtype_name(t) << " id " << ids[i] << " col " << j;
      }
    }
  }
}

TEST(KernelElementwise, ConvertToF32SpecialValues) {
  // F16: zero, -zero, smallest subnormal 2^-24, largest subnormal, smallest normal, 1, max,
  // inf, -inf, NaN.
  const std::vector<uint16_t> h = {0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00,
                                   0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x8001, 0x3555};
  std::vector<float> out(h.size(), 123.0f);
  convert_to_f32(h.data(), DType::F16, int64_t(h.size()), out.data());
  EXPECT_EQ(bits(out[0]), 0u);
  EXPECT_EQ(bits(out[1]), 0x80000000u);
  EXPECT_EQ(out[2], std::ldexp(1.0f, -24));
  EXPECT_EQ(out[3], float(1023 * std::ldexp(1.0, -24)));
  EXPECT_EQ(out[4], std::ldexp(1.0f, -14));
  EXPECT_EQ(out[5], 1.0f);
  EXPECT_EQ(out[6], 65504.0f);
  EXPECT_EQ(out[7], std::numeric_limits<float>::infinity());
  EXPECT_EQ(out[8], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(out[9]));
  EXPECT_EQ(out[10], -std::ldexp(1.0f, -24));
  EXPECT_EQ(out[11], float(1.0 + 0x155 / 1024.0) * 0.25f);  // exp 13 - 15 = -2
  // Every finite F16 value, independently decoded: (-1)^s * 2^(e-15) * (1 + m/1024), or
  // 2^-14 * m/1024 for subnormals.
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = uint16_t(i);
  std::vector<float> dec(65536);
  convert_to_f32(all.data(), DType::F16, 65536, dec.data());
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint32_t s = i >> 15, e = (i >> 10) & 31, m = i & 1023;
    if (e == 31) {
      if (m == 0) {
        EXPECT_TRUE(std::isinf(dec[i])) << i;
      } else {
        EXPECT_TRUE(std::isnan(dec[i])) << i;
      }
      continue;
    }
    const double mag = e == 0 ? std::ldexp(double(m), -24) : std::ldexp(1.0 + m / 1024.0, int(e) - 15);
    ASSERT_EQ(double(dec[i]), s ? -mag : mag) << "f16 bits " << i;
  }
  // BF16: the upper half of the F32 bits.
  const std::vector<uint16_t> b = {0x3f80, 0xc000, 0x7f80, 0x0001, 0x7fc0};
  std::vector<float> bo(b.size());
  convert_to_f32(b.data(), DType::BF16, int64_t(b.size()), bo.data());
  EXPECT_EQ(bo[0], 1.0f);
  EXPECT_EQ(bo[1], -2.0f);
  EXPECT_TRUE(std::isinf(bo[2]));
  EXPECT_EQ(bits(bo[3]), 0x00010000u);
  EXPECT_TRUE(std::isnan(bo[4]));
  // F32 is a copy; other dtypes are refused.
  const std::vector<float> f = {1.5f, -0.0f, 3e38f};
  std::vector<float> fo(3);
  convert_to_f32(f.data(), DType::F32, 3, fo.data());
  EXPECT_EQ(bits(fo[1]), 0x80000000u);
  EXPECT_EQ(fo[2], 3e38f);
  int32_t i32 = 5;
  EXPECT_THROW(convert_to_f32(&i32, DType::I32, 1, fo.data()), std::invalid_argument);
}

// convert_cpu (the CPU twin of convert_cuda): element by element the scalar conversions of
// runtime/dtype.h through F32, across a chunk boundary (4096) of its F32 buffer.
TEST(KernelElementwise, ConvertCpuBetweenFloatTypes) {
  const int64_t n = 4096 + 37;
  std::vector<float> f(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)  // up to +-70000: some beyond f16's range
    f[size_t(i)] = float(std::sin(0.37 * double(i)) * 70000.0 / double(1 + i % 13));
  std::vector<uint16_t> h(f.size()), b(f.size()), hb(f.size());
  convert_cpu(f.data(), DType::F32, h.data(), DType::F16, n);
  convert_cpu(f.data(), DType::F32, b.data(), DType::BF16, n);
  convert_cpu(b.data(), DType::BF16, hb.data(), DType::F16, n);
  for (size_t i = 0; i < f.size(); ++i) {
    ASSERT_EQ(h[i], f32_to_f16(f[i])) << i;  // overflow beyond 65504 -> inf, as the scalar
    ASSERT_EQ(b[i], f32_to_bf16(f[i])) << i;
    ASSERT_EQ(hb[i], f32_to_f16(bf16_to_f32(b[i]))) << i;
  }
  std::vector<float> back(f.size());
  convert_cpu(h.data(), DType::F16, back.data(), DType::F32, n);
  for (size_t i = 0; i < f.size(); ++i) ASSERT_EQ(bits(back[i]), bits(f16_to_f32(h[i]))) << i;
  std::vector<uint16_t> same(f.size());
  convert_cpu(h.data(), DType::F16, same.data(), DType::F16, n);
  EXPECT_EQ(same, h);
  int32_t i32 = 5;
  EXPECT_THROW(convert_cpu(f.data(), DType::F32, &i32, DType::I32, 1), std::invalid_argument);
  EXPECT_THROW(convert_cpu(&i32, DType::I32, h.data(), DType::F16, 1), std::invalid_argument);
}

TEST(DTypeConversions, F16RoundTripAndNearestEven) {
  // Every finite F16 survives f16 -> f32 -> f16 exactly.
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = uint16_t(i);
    if (((h >> 10) & 31) == 31 && (h & 1023)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f16_to_f32(h)))));
      continue;
    }
    ASSERT_EQ(f32_to_f16(f16_to_f32(h)), h) << "bits " << i;
  }
  // Ties round to even: 1 + 2^-11 lies halfway between 1 (0x3c00, even) and 1 + 2^-10.
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  // 1 + 3*2^-11 lies halfway between 0x3c01 (odd) and 0x3c02 (even).
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  // Just above a tie rounds up.
  EXPECT_EQ(f32_to_f16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3c01);
  // Overflow: 65504 is the max; 65520 (the tie with 65536) goes to inf, just below stays.
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(std::nextafter(65520.0f, 0.0f)), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-1e6f), 0xfc00);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(std::numeric_limits<float>::quiet_NaN()))));
  // Subnormals: 2^-25 is the tie between 0 and 2^-24 (-> 0, even); above it -> 2^-24;
  // 3 * 2^-25 is the tie between 1 and 2 ulps (-> 2, even).
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(f32_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(f32_to_f16(3 * std::ldexp(1.0f, -25)), 0x0002);
  EXPECT_EQ(f32_to_f16(5 * std::ldexp(1.0f, -25)), 0x0002);
  EXPECT_EQ(f32_to_f16(-std::ldexp(1.0f, -24)), 0x8001);
  EXPECT_EQ(f32_to_f16(1e-10f), 0x0000);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  // Largest subnormal rounding up into the smallest normal.
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -26)), 0x0400);
  // Against a double-precision nearest-even reference on random floats in the normal range.
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> ud(-70000.0, 70000.0);
  for (int i = 0; i < 20000; ++i) {
    const float f = float(i % 2 ? ud(rng) : ud(rng) * 1e-4);
    const uint16_t h = f32_to_f16(f);
    const double got = f16_to_f32(h);
    if (std::fabs(double(f)) >= 65520.0) { EXPECT_TRUE(std::isinf(got)); continue; }
    // The neighbours of h are no closer, and a tie goes to the even mantissa.
    const double up = f16_to_f32(uint16_t(h + 1)), dn = f16_to_f32(uint16_t(h - 1));
    const double err = std::fabs(got - f);
    if ((h & 0x7fff) != 0x7bff) {
      EXPECT_LE(err, std::fabs(up - f)) << f;
    }
    if ((h & 0x7fff) != 0) {
      EXPECT_LE(err, std::fabs(dn - f)) << f;
    }
    if (err == std::fabs(up - f) || err == std::fabs(dn - f)) {
      EXPECT_EQ(h & 1, 0) << f;
    }
  }
}

TEST(DTypeConversions, Bf16RoundTripAndNearestEven) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = uint16_t(i);
    if (((h >> 7) & 0xff) == 0xff && (h & 0x7f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(bf16_to_f32(h)))));
      continue;
    }
    ASSERT_EQ(f32_to_bf16(bf16_to_f32(h)), h) << "bits " << i;
  }
  // 1 + 2^-8 is the tie between 1 (0x3f80) and 1 + 2^-7 (0x3f81): -> even 0x3f80.
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000u)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000u)), 0x3f82);  // tie, odd below -> up
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808001u)), 0x3f81);  // above the tie
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f807fffu)), 0x3f80);  // below the tie
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to inf
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  // NaN stays NaN even when its payload sits only in the low 16 bits.
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001u)))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0xff800001u)))));
  // Against a reference: the nearer of truncation and truncation + 1 ulp, ties to even.
  std::mt19937 rng(12);
  for (int i = 0; i < 20000; ++i) {
    const uint32_t u = rng() & 0x7f7fffffu;  // finite
    const float f = from_bits(u);
    const uint16_t lo = uint16_t(u >> 16), hi = uint16_t(lo + 1);
    const double dlo = std::fabs(double(bf16_to_f32(lo)) - f);
    const double dhi = std::fabs(double(bf16_to_f32(hi)) - f);
    const uint16_t want = dlo < dhi ? lo : dhi < dlo ? hi : (lo & 1 ? hi : lo);
    ASSERT_EQ(f32_to_bf16(f), want) << std::hex << u;
  }
}

}  // namespace tessera::test
