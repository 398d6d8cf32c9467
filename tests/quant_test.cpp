// runtime/quant: int8 / int4 RTN quantization against values worked out by hand from the
// formulas in runtime/quant.h (scales chosen as powers of two so every step is exact in
// F32), the nibble order, the storage shapes, and dequantization of random weights.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "runtime/error.h"
#include "runtime/quant.h"

namespace tessera::test {
namespace {

Tensor f32_matrix(const std::vector<float>& v, int64_t rows, int64_t cols) {
  Tensor t = host_tensor(DType::F32, {rows, cols});
  for (size_t i = 0; i < v.size(); ++i) t.ptr<float>()[i] = v[i];
  return t;
}

TEST(Quant, RoundHalfToEven) {
  const float in[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 2.4999f, 3.5f, -127.5f};
  const float want[] = {0.0f, 2.0f, 2.0f, -0.0f, -2.0f, -2.0f, 2.0f, 4.0f, -128.0f};
  for (size_t i = 0; i < std::size(in); ++i) EXPECT_EQ(round_half_even(in[i]), want[i]) << in[i];
}

TEST(Quant, Int8PerRowSymmetricByHand) {
  // Row 0: max|w| = 31.75 -> s = 0.25; w / s = 127, 0.5, 1.5, 2.5, -1.5, -127, 4, 0.
  // Row 1: all zero -> s = 1 (our choice), q = 0.
  // Row 2: max|w| = 63.5 (a negative) -> s = 0.5; w / s = -127, 2, 0.5, 1.5, -0.5, 5, -1.5, 0.
  const std::vector<float> w = {31.75f, 0.125f, 0.375f, 0.625f, -0.375f, -31.75f, 1.0f,  0.0f,
                                0,      0,      0,      0,      0,       0,       0,     0,
                                -63.5f, 1.0f,   0.25f,  0.75f,  -0.25f,  2.5f,    -0.75f, 0.0f};
  const LinearWeight q = quantize_weight(f32_matrix(w, 3, 8), WeightFormat::Int8);
  ASSERT_EQ(q.format, WeightFormat::Int8);
  ASSERT_EQ(q.weight.dtype, DType::I8);
  ASSERT_EQ(q.weight.shape_str(), host_tensor(DType::I8, {3, 8}).shape_str());
  ASSERT_EQ(q.scales.numel(), 3);
  EXPECT_EQ(q.in_features(), 8);
  const int8_t want_q[] = {127,  0, 2, 2, -2, -127, 4,  0,  0, 0, 0, 0, 0, 0, 0, 0,
                           -127, 2, 0, 2, 0,  5,    -2, 0};
  for (int i = 0; i < 24; ++i) EXPECT_EQ(q.weight.ptr<int8_t>()[i], want_q[i]) << "element " << i;
  EXPECT_EQ(q.scales.ptr<float>()[0], 0.25f);
  EXPECT_EQ(q.scales.ptr<float>()[1], 1.0f);
  EXPECT_EQ(q.scales.ptr<float>()[2], 0.5f);
  const std::vector<float> d = dequantize_weight(q);
  for (int i = 0; i < 24; ++i)
    EXPECT_EQ(d[size_t(i)], float(want_q[i]) * q.scales.ptr<float>()[i / 8]) << "element " << i;
  EXPECT_EQ(linear_weight_bytes(q), 24u + 3 * 4);
}

// Groups of 4 (the formulas do not depend on the size) over 8 inputs: two groups per row.
//  A: [-1.5, 0.125, 0.375, 2.25]: s = 3.75/15 = 0.25, z = round(6) = 6; w/s = -6, .5, 1.5, 9
//     -> q = 0, 6, 8, 15 -> w' = -1.5, 0, 0.5, 2.25
//  D: [-0.625, 3.125, 0, 1]: s = 0.25, z = round(2.5) = 2 (half to even); w/s = -2.5, 12.5,
//     0, 4 -> round -2, 12, 0, 4 -> q = 0, 14, 2, 6 -> w' = -0.5, 3, 0, 1
//  B: all 3: max - min = 0 -> s = 1, z = round(-3) = -3 (negative: stored signed);
//     q = 3 - 3 = 0 -> w' = 3
//  C: [-4, -3, -0.25, -0.5] (all negative): s = 0.25, z = round(16) = 16 (above 15);
//     w/s = -16, -12, -1, -2 -> q = 0, 4, 15, 14 -> w' = w
//  F: [-1.375, 2.375, 0.125, -0.125]: s = 0.25, z = round(5.5) = 6; w/s = -5.5, 9.5, .5, -.5
//     -> round -6, 10, 0, -0 -> q = 0, 16 -> clamped 15, 6, 6 -> w' = -1.5, 2.25, 0, 0
//  E: all 0.3: s = 1, z = round(-0.3) = 0, q = 0 -> w' = 0 (the formula's loss)
TEST(Quant, Int4GroupAsymmetricByHand) {
  const std::vector<float> w = {-1.5f,  0.125f, 0.375f, 2.25f,  -0.625f, 3.125f, 0.0f,  1.0f,
                                3.0f,   3.0f,   3.0f,   3.0f,   -4.0f,   -3.0f,  -0.25f, -0.5f,
                                -1.375f, 2.375f, 0.125f, -0.125f, 0.3f,   0.3f,   0.3f,  0.3f};
  const LinearWeight q = quantize_weight(f32_matrix(w, 3, 8), WeightFormat::Int4, "w", 4);
  ASSERT_EQ(q.format, WeightFormat::Int4);
  ASSERT_EQ(q.weight.dtype, DType::U8);
  ASSERT_EQ(q.weight.dim(0), 3);
  ASSERT_EQ(q.weight.dim(1), 4);  // two codes per byte
  ASSERT_EQ(q.scales.dim(1), 2);
  ASSERT_EQ(q.zeros.dtype, DType::I8);
  EXPECT_EQ(q.in_features(), 8);
  EXPECT_EQ(q.group_size, 4);
  const int codes[24] = {0, 6, 8, 15, 0, 14, 2, 6, 0, 0, 0, 0, 0, 4, 15, 14, 0, 15, 6, 6, 0, 0, 0, 0};
  for (int b = 0; b < 12; ++b)  // input 2j in the low nibble of byte j, 2j + 1 in the high
    EXPECT_EQ(q.weight.ptr<uint8_t>()[b], codes[2 * b] | (codes[2 * b + 1] << 4)) << "byte " << b;
  EXPECT_EQ(q.weight.ptr<uint8_t>()[1], 0xf8);  // codes 8, 15
  const float scales[6] = {0.25f, 0.25f, 1.0f, 0.25f, 0.25f, 1.0f};
  const int zeros[6] = {6, 2, -3, 16, 6, 0};
  for (int g = 0; g < 6; ++g) {
    EXPECT_EQ(q.scales.ptr<float>()[g], scales[g]) << "group " << g;
    EXPECT_EQ(q.zeros.ptr<int8_t>()[g], zeros[g]) << "group " << g;
  }
  const float want[24] = {-1.5f,  0.0f,  0.5f,   2.25f,  -0.5f, 3.0f, 0.0f,  1.0f,
                          3.0f,   3.0f,  3.0f,   3.0f,   -4.0f, -3.0f, -0.25f, -0.5f,
                          -1.5f,  2.25f, 0.0f,   0.0f,   0.0f,  0.0f, 0.0f,  0.0f};
  const std::vector<float> d = dequantize_weight(q);
  for (int i = 0; i < 24; ++i) EXPECT_EQ(d[size_t(i)], want[i]) << "element " << i;
  EXPECT_EQ(linear_weight_bytes(q), 12u + 6 * 4 + 6);
}

TEST(Quant, Int4ShorterLastGroupAndFarFromZeroGroup) {
  // 6 inputs in groups of 4: the last group has 2. Row 1's first group lies far from zero
  // (z = round(-100 / 0.05) = -2000 does not fit a byte): its range widens to [0, 100.75].
  const std::vector<float> w = {-1.5f, 0.125f, 0.375f, 2.25f, 0.0f, 3.75f,
                                100.0f, 100.25f, 100.5f, 100.75f, 0.0f, 3.75f};
  const LinearWeight q = quantize_weight(f32_matrix(w, 2, 6), WeightFormat::Int4, "w", 4);
  ASSERT_EQ(q.scales.dim(1), 2);
  EXPECT_EQ(q.scales.ptr<float>()[1], 0.25f);  // tail [0, 3.75]: s = 0.25, z = 0
  EXPECT_EQ(q.zeros.ptr<int8_t>()[1], 0);
  const float s = 100.75f / 15.0f;
  EXPECT_EQ(q.scales.ptr<float>()[2], s);
  EXPECT_EQ(q.zeros.ptr<int8_t>()[2], 0);
  const std::vector<float> d = dequantize_weight(q);
  const float want[12] = {-1.5f, 0.0f, 0.5f, 2.25f, 0.0f, 3.75f, 0, 0, 0, 0, 0.0f, 3.75f};
  for (int i = 0; i < 12; ++i) {
    if (i >= 6 && i < 10) {
      const float code = std::fmin(15.0f, round_half_even(w[size_t(i)] / s));
      EXPECT_EQ(d[size_t(i)], code * s) << "element " << i;
      EXPECT_NEAR(d[size_t(i)], w[size_t(i)], s / 2) << "element " << i;
    } else {
      EXPECT_EQ(d[size_t(i)], want[i]) << "element " << i;
    }
  }
}

TEST(Quant, Int4NeedsEvenInputs) {
  EXPECT_THROW(quantize_weight(f32_matrix(std::vector<float>(6, 1.0f), 2, 3), WeightFormat::Int4),
               UserError);
}

TEST(Quant, RandomWeightsRoundTripWithinHalfAStep) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  const int64_t rows = 37, in = 320;  // groups of 128: 128, 128, 64
  std::vector<float> w(size_t(rows * in));
  for (float& v : w) v = dist(rng);
  const Tensor t = f32_matrix(w, rows, in);
  const LinearWeight q8 = quantize_weight(t, WeightFormat::Int8);
  const std::vector<float> d8 = dequantize_weight(q8);
  for (int64_t i = 0; i < rows * in; ++i)
    ASSERT_LE(std::fabs(d8[size_t(i)] - w[size_t(i)]), q8.scales.ptr<float>()[i / in] * 0.5001f);
  const LinearWeight q4 = quantize_weight(t, WeightFormat::Int4);
  ASSERT_EQ(q4.scales.dim(1), 3);
  const std::vector<float> d4 = dequantize_weight(q4);
  for (int64_t i = 0; i < rows * in; ++i) {
    const float s = q4.scales.ptr<float>()[(i / in) * 3 + (i % in) / 128];
    ASSERT_LE(std::fabs(d4[size_t(i)] - w[size_t(i)]), s * 1.0001f) << i;  // clamp: <= 1 step
  }
}

TEST(Quant, HalfPrecisionInputsQuantizeLikeTheirF32Values) {
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const int64_t rows = 5, in = 256;
  Tensor bf = host_tensor(DType::BF16, {rows, in}), f16 = host_tensor(DType::F16, {rows, in});
  std::vector<float> from_bf(size_t(rows * in)), from_f16(size_t(rows * in));
  for (int64_t i = 0; i < rows * in; ++i) {
    const float v = dist(rng);
    bf.ptr<uint16_t>()[i] = f32_to_bf16(v);
    f16.ptr<uint16_t>()[i] = f32_to_f16(v);
    from_bf[size_t(i)] = bf16_to_f32(bf.ptr<uint16_t>()[i]);
    from_f16[size_t(i)] = f16_to_f32(f16.ptr<uint16_t>()[i]);
  }
  for (WeightFormat f : {WeightFormat::Int8, WeightFormat::Int4}) {
    EXPECT_EQ(dequantize_weight(quantize_weight(bf, f)),
              dequantize_weight(quantize_weight(f32_matrix(from_bf, rows, in), f)));
    EXPECT_EQ(dequantize_weight(quantize_weight(f16, f)),
              dequantize_weight(quantize_weight(f32_matrix(from_f16, rows, in), f)));
  }
}

TEST(Quant, ParseWeightFormat) {
  EXPECT_EQ(parse_weight_format("stored"), WeightFormat::Dense);
  EXPECT_EQ(parse_weight_format("int8"), WeightFormat::Int8);
  EXPECT_EQ(parse_weight_format("int4"), WeightFormat::Int4);
  EXPECT_THROW(parse_weight_format("int3"), UserError);
  EXPECT_STREQ(weight_format_name(WeightFormat::Int4), "int4");
}

}  // namespace
}  // namespace tessera::test
