// runtime/awq.h: the AWQ-format RTN (values by hand), the scale and clip searches on
// synthetic activations (they never lose to plain RTN and find the outlier channel), the
// activation recorder, and the model's calibration hook.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "runtime/awq.h"
#include "runtime/dtype.h"
#include "runtime/error.h"
#include "tests/model_test_util.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

Matrix random_matrix(int64_t rows, int64_t cols, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, scale);
  Matrix m(rows, cols);
  for (float& v : m.v) v = n(rng);
  return m;
}

// Activations [rows, in] with channel `hot` `factor` times larger than the rest.
ActivationStats outlier_activations(int64_t rows, int64_t in, int64_t hot, float factor) {
  ActivationRecorder rec(1, rows);
  Matrix x = random_matrix(rows, in, 7);
  for (int64_t t = 0; t < rows; ++t) x.row(t)[hot] *= factor;
  Tensor xt = make_tensor_view(x.v.data(), DType::F32, {rows, in});
  rec.observer()(0, LinearInput::kMlp, xt);
  return rec.at(0, LinearInput::kMlp);
}

// sum over the sample of ((x (w - w')^T)^2), computed directly.
double output_error(const ActivationStats& x, const Matrix& w, const Matrix& wq) {
  double e = 0;
  for (int64_t t = 0; t < x.sample.rows; ++t)
    for (int64_t o = 0; o < w.rows; ++o) {
      double y = 0;
      for (int64_t i = 0; i < w.cols; ++i)
        y += double(x.sample.row(t)[i]) * (double(w.row(o)[i]) - double(wq.row(o)[i]));
      e += y * y;
    }
  return e;
}

TEST(AwqQuantize, GroupRangeIncludesZeroAndScalesAreFp16) {
  // One row, two groups of 8. Group 0 spans [-1, 2]: s = f16(3 / 15) = 0.199951171875,
  // z = round(1 / s) = 5. Group 1 is all positive, [0.5, 1.5]: widened to [0, 1.5], z = 0.
  Matrix w(1, 16);
  const float g0[8] = {-1.0f, 2.0f, 0.0f, 0.5f, -0.25f, 1.0f, 1.7f, -0.9f};
  for (int i = 0; i < 8; ++i) w.v[size_t(i)] = g0[i];
  for (int i = 0; i < 8; ++i) w.v[size_t(8 + i)] = 0.5f + 0.125f * float(i) + (i == 7 ? 0.125f : 0);
  const Int4Codes c = quantize_int4_awq(w, 8);
  ASSERT_EQ(c.groups, 2);
  const float s0 = f16_to_f32(f32_to_f16(3.0f / 15.0f));
  EXPECT_EQ(c.scales[0], s0);
  EXPECT_EQ(c.zeros[0], 5);
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(c.q[size_t(i)], std::clamp(int(std::nearbyint(g0[i] / s0)) + 5, 0, 15)) << i;
  EXPECT_EQ(c.scales[1], f16_to_f32(f32_to_f16(1.5f / 15.0f)));
  EXPECT_EQ(c.zeros[1], 0);
  EXPECT_EQ(c.q[15], 15);  // the maximum maps to the top code
  const Matrix d = dequantize_codes(c);
  for (int i = 0; i < 16; ++i)
    EXPECT_NEAR(d.v[size_t(i)], w.v[size_t(i)], 0.5f * c.scales[size_t(i / 8)] + 1e-6f) << i;
  EXPECT_THROW(quantize_int4_awq(w, 6), UserError);  // 16 inputs are not groups of 6
}

TEST(AwqQuantize, ClipShrinksTheGroupRange) {
  Matrix w(1, 8);
  const float v[8] = {-0.1f, 0.2f, 0.05f, 4.0f, -0.3f, 0.1f, 0.0f, 0.25f};
  std::copy(v, v + 8, w.v.begin());
  const Int4Codes full = quantize_int4_awq(w, 8), half = quantize_int4_awq(w, 8, {0.5f});
  EXPECT_EQ(full.scales[0], f16_to_f32(f32_to_f16(4.3f / 15.0f)));
  EXPECT_EQ(half.scales[0], f16_to_f32(f32_to_f16(2.3f / 15.0f)));  // [-0.3, 2.0]
  const Matrix d = dequantize_codes(half);
  EXPECT_NEAR(d.v[3], 2.0f, half.scales[0]);  // the outlier is clipped
}

TEST(AwqScaleSearch, FindsTheOutlierChannelAndNeverLosesToRtn) {
  const int64_t in = 64, out = 48;
  const ActivationStats x = outlier_activations(256, in, 5, 40.0f);
  const Matrix w1 = random_matrix(out, in, 1), w2 = random_matrix(out, in, 2, 0.5f);
  const ScaleChoice c = search_scales({&w1, &w2}, x, 32, {});
  // alpha 0 is plain RTN: its loss is the RTN output error, computed here directly.
  const double rtn = output_error(x, w1, dequantize_codes(quantize_int4_awq(w1, 32))) +
                     output_error(x, w2, dequantize_codes(quantize_int4_awq(w2, 32)));
  EXPECT_NEAR(c.rtn_loss, rtn, 1e-3 * rtn);
  EXPECT_GT(c.alpha, 0.0);
  EXPECT_LT(c.loss, 0.8 * c.rtn_loss);
  ASSERT_EQ(c.scales.size(), size_t(in));
  for (int64_t i = 0; i < in; ++i)
    if (i != 5) {
      EXPECT_GT(c.scales[5], c.scales[size_t(i)]) << i;
    }
  // The chosen loss is what those scales give: Q(W diag s) diag(1/s) per weight.
  const auto through_scales = [&](const Matrix& w) {
    Matrix scaled = w;
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) scaled.row(o)[i] *= c.scales[size_t(i)];
    Matrix back = dequantize_codes(quantize_int4_awq(scaled, 32));
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) back.row(o)[i] /= c.scales[size_t(i)];
    return back;
  };
  const double chosen =
      output_error(x, w1, through_scales(w1)) + output_error(x, w2, through_scales(w2));
  EXPECT_NEAR(c.loss, chosen, 1e-3 * chosen);
}

TEST(AwqScaleSearch, TiedChannelsShareOneScale) {
  const int64_t in = 32;
  const ActivationStats x = outlier_activations(64, in, 3, 20.0f);
  const Matrix w = random_matrix(16, in, 3);
  std::vector<int32_t> tie(static_cast<size_t>(in));
  for (int64_t i = 0; i < in; ++i) tie[size_t(i)] = int32_t(i % 8);  // like 4 heads on 1 kv head
  const ScaleChoice c = search_scales({&w}, x, 16, tie);
  for (int64_t i = 8; i < in; ++i) EXPECT_EQ(c.scales[size_t(i)], c.scales[size_t(i % 8)]) << i;
  EXPECT_LE(c.loss, c.rtn_loss);
}

TEST(AwqClipSearch, PerGroupClipsLowerTheOutputError) {
  const int64_t in = 64, out = 32;
  const ActivationStats x = outlier_activations(128, in, 9, 1.0f);  // no outlier
  Matrix w = random_matrix(out, in, 4);
  for (int64_t o = 0; o < out; o += 3) w.row(o)[o % in] *= 6.0f;  // weight outliers
  const std::vector<float> clip = search_clip(w, x, 32, {});
  ASSERT_EQ(clip.size(), size_t(out * 2));
  int clipped = 0;
  for (float c : clip) {
    EXPECT_GT(c, 0.5f);
    EXPECT_LE(c, 1.0f);
    clipped += c < 1.0f;
  }
  EXPECT_GT(clipped, 0);
  const double with = output_error(x, w, dequantize_codes(quantize_int4_awq(w, 32, clip)));
  const double without = output_error(x, w, dequantize_codes(quantize_int4_awq(w, 32)));
  EXPECT_LT(with, without);
}

TEST(ActivationRecorder, MeansAreExactAndTheSampleHoldsRealRows) {
  ActivationRecorder rec(2, 3);
  std::vector<float> a = {1, -2, 3, -4, 5, -6};  // [3, 2]
  std::vector<float> b = {7, 8, 9, 10};          // [2, 2]
  rec.observer()(1, LinearInput::kMlpAct, make_tensor_view(a.data(), DType::F32, {3, 2}));
  rec.observer()(1, LinearInput::kMlpAct, make_tensor_view(b.data(), DType::F32, {2, 2}));
  const ActivationStats& s = rec.at(1, LinearInput::kMlpAct);
  EXPECT_EQ(s.tokens, 5);
  EXPECT_FLOAT_EQ(s.mean_abs()[0], (1 + 3 + 5 + 7 + 9) / 5.0f);
  EXPECT_FLOAT_EQ(s.mean_abs()[1], (2 + 4 + 6 + 8 + 10) / 5.0f);
  ASSERT_EQ(s.sample.rows, 3);  // capped at max_rows
  for (int64_t r = 0; r < 3; ++r) {
    const float first = s.sample.row(r)[0];
    const bool real = first == 1 || first == 3 || first == 5 || first == 7 || first == 9;
    EXPECT_TRUE(real) << first;
  }
  EXPECT_EQ(rec.at(0, LinearInput::kMlpAct).tokens, 0);
}

TEST(ActivationRecorder, SeesEverySiteOfTheModelsForwardPass) {
  TESSERA_REQUIRE_TESTDATA();
  CpuModel m = load_cpu_model(testdata_dir() + "/models/TinyStories-656K");
  ActivationRecorder rec(2, 100);
  m.model->set_activation_observer(rec.observer());
  const std::vector<int32_t> prompt = {1, 80, 147, 201, 282, 215, 286};
  const auto logits = prefill_all_logits(*m.model, prompt);
  m.model->set_activation_observer({});
  const int64_t widths[kNumLinearInputs] = {128, 128, 128, 384};  // hidden, q, hidden, inter
  for (int64_t l = 0; l < 2; ++l)
    for (int s = 0; s < kNumLinearInputs; ++s) {
      const ActivationStats& st = rec.at(l, LinearInput(s));
      EXPECT_EQ(st.tokens, 7) << l << " " << s;
      EXPECT_EQ(int64_t(st.abs_sum.size()), widths[s]) << l << " " << s;
      EXPECT_EQ(st.sample.rows, 7);
    }
  // The hook does not change the result.
  EXPECT_EQ(prefill_all_logits(*m.model, prompt), logits);
  EXPECT_EQ(rec.at(0, LinearInput::kAttention).tokens, 7);  // removed: nothing more recorded
}

}  // namespace
}  // namespace tessera::test
