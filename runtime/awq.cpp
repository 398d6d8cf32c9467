// AWQ-style scale and clip searches (runtime/awq.h). Output errors are measured with the CPU
// backend's matmul on the sampled activation rows; all arithmetic in F32 (sums in double).
#include "runtime/awq.h"

#include <algorithm>
#include <cmath>

#include "kernels/matmul.h"
#include "runtime/dtype.h"
#include "runtime/error.h"
#include "runtime/quant.h"

namespace tessera {
namespace {

// One group of n weights: range [mn, mx] shrunk by clip c, widened to hold 0; codes into q.
void quantize_group(const float* w, int64_t n, float c, uint8_t* q, float* scale,
                    int8_t* zero) {
  float mn = 0.0f, mx = 0.0f, amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    mn = std::min(mn, w[i]);
    mx = std::max(mx, w[i]);
    amax = std::max(amax, std::fabs(w[i]));
  }
  if (c < 1.0f) {
    mn = std::max(mn, -c * amax);
    mx = std::min(mx, c * amax);
  }
  float s = f16_to_f32(f32_to_f16((mx - mn) / 15.0f));
  require(std::isfinite(s), "a weight group's range does not fit an fp16 scale");
  if (s == 0.0f) s = 1.0f;
  const float z = std::clamp(round_half_even(-mn / s), 0.0f, 15.0f);
  for (int64_t i = 0; i < n; ++i)
    q[i] = uint8_t(std::clamp(round_half_even(w[i] / s) + z, 0.0f, 15.0f));
  *scale = s;
  *zero = int8_t(z);
}

// sum of squares of x [rows, in] @ d[out, in]^T.
double output_error(const Matrix& x, const Matrix& d) {
  if (x.rows == 0) return 0.0;
  std::vector<float> y(static_cast<size_t>(x.rows * d.rows));
  matmul_cpu(x.v.data(), x.rows, x.cols, d.v.data(), DType::F32, d.rows, nullptr, y.data());
  double e = 0.0;
  for (float v : y) e += double(v) * double(v);
  return e;
}

}  // namespace

std::vector<float> ActivationStats::mean_abs() const {
  std::vector<float> m(abs_sum.size(), 0.0f);
  for (size_t c = 0; c < m.size() && tokens > 0; ++c) m[c] = float(abs_sum[c] / double(tokens));
  return m;
}

ActivationRecorder::ActivationRecorder(int64_t num_layers, int64_t max_rows)
    : max_rows_(max_rows), stats_(size_t(num_layers * kNumLinearInputs)) {}

ActivationObserver ActivationRecorder::observer() {
  return [this](int64_t layer, LinearInput site, const Tensor& x) { record(layer, site, x); };
}

const ActivationStats& ActivationRecorder::at(int64_t layer, LinearInput site) const {
  return stats_.at(size_t(layer * kNumLinearInputs + int64_t(site)));
}

void ActivationRecorder::record(int64_t layer, LinearInput site, const Tensor& x) {
  ActivationStats& st = stats_.at(size_t(layer * kNumLinearInputs + int64_t(site)));
  const int64_t n = x.dim(0), ch = x.dim(1);
  if (st.abs_sum.empty()) {
    st.abs_sum.assign(size_t(ch), 0.0);
    st.sample = Matrix(0, ch);
  }
  require(int64_t(st.abs_sum.size()) == ch, "activation width changed between steps");
  for (int64_t t = 0; t < n; ++t) {
    const float* row = x.ptr<float>() + t * ch;
    for (int64_t c = 0; c < ch; ++c) st.abs_sum[size_t(c)] += std::fabs(row[c]);
    // Reservoir sampling: every row seen so far is kept with probability max_rows / seen.
    int64_t slot = st.sample.rows;
    if (st.sample.rows >= max_rows_)
      slot = int64_t(std::uniform_int_distribution<int64_t>(0, st.tokens)(rng_));
    if (slot < max_rows_) {
      if (slot == st.sample.rows) {
        st.sample.v.resize(size_t((st.sample.rows + 1) * ch));
        ++st.sample.rows;
      }
      std::copy_n(row, ch, st.sample.row(slot));
    }
    ++st.tokens;
  }
}

Int4Codes quantize_int4_awq(const Matrix& w, int64_t group, const std::vector<float>& clip) {
  require(group > 0 && w.cols % group == 0,
          "int4 groups of " + std::to_string(group) + " need the input size (" +
              std::to_string(w.cols) + ") to be a multiple of it");
  const int64_t groups = w.cols / group;
  Int4Codes c;
  c.out = w.rows;
  c.in = w.cols;
  c.groups = groups;
  c.q.resize(size_t(w.rows * w.cols));
  c.scales.resize(size_t(groups * w.rows));
  c.zeros.resize(size_t(groups * w.rows));
  c.group_of.resize(size_t(w.cols));
  for (int64_t i = 0; i < w.cols; ++i) c.group_of[size_t(i)] = int32_t(i / group);
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < w.rows; ++o)
    for (int64_t g = 0; g < groups; ++g)
      quantize_group(w.row(o) + g * group, group,
                     clip.empty() ? 1.0f : clip[size_t(o * groups + g)],
                     c.q.data() + o * w.cols + g * group, &c.scales[size_t(g * w.rows + o)],
                     &c.zeros[size_t(g * w.rows + o)]);
  return c;
}

Matrix dequantize_codes(const Int4Codes& c) {
  Matrix w(c.out, c.in);
  for (int64_t o = 0; o < c.out; ++o)
    for (int64_t i = 0; i < c.in; ++i) {
      const size_t gi = size_t(c.group_of[size_t(i)] * c.out + o);
      w.row(o)[i] = (float(c.q[size_t(o * c.in + i)]) - float(c.zeros[gi])) * c.scales[gi];
    }
  return w;
}

ScaleChoice search_scales(const std::vector<const Matrix*>& weights, const ActivationStats& x,
                          int64_t group, const std::vector<int32_t>& channel_tie, int grid) {
  std::vector<float> mean = x.mean_abs();
  const int64_t in = int64_t(mean.size());
  for (const Matrix* w : weights)
    require(w->cols == in, "search_scales: weight and activation widths differ");
  if (!channel_tie.empty()) {  // each channel takes its class's mean
    require(int64_t(channel_tie.size()) == in, "search_scales: channel_tie size");
    std::vector<double> sum(size_t(in), 0.0);
    std::vector<int64_t> count(size_t(in), 0);
    for (int64_t c = 0; c < in; ++c) {
      sum[size_t(channel_tie[size_t(c)])] += mean[size_t(c)];
      ++count[size_t(channel_tie[size_t(c)])];
    }
    for (int64_t c = 0; c < in; ++c)
      mean[size_t(c)] = float(sum[size_t(channel_tie[size_t(c)])] /
                              double(count[size_t(channel_tie[size_t(c)])]));
  }
  ScaleChoice best;
  for (int i = 0; i <= grid; ++i) {
    const double alpha = double(i) / grid;
    std::vector<float> s(static_cast<size_t>(in));
    float smax = 0.0f, smin = INFINITY;
    for (int64_t c = 0; c < in; ++c) {
      s[size_t(c)] = std::max(float(std::pow(double(mean[size_t(c)]), alpha)), 1e-4f);
      smax = std::max(smax, s[size_t(c)]);
      smin = std::min(smin, s[size_t(c)]);
    }
    const float norm = std::sqrt(smax * smin);
    for (float& v : s) v /= norm;
    double loss = 0.0;
    for (const Matrix* w : weights) {
      Matrix scaled(w->rows, in);
      for (int64_t o = 0; o < w->rows; ++o)
        for (int64_t c = 0; c < in; ++c) scaled.row(o)[c] = w->row(o)[c] * s[size_t(c)];
      Matrix d = dequantize_codes(quantize_int4_awq(scaled, group));
      for (int64_t o = 0; o < w->rows; ++o)
        for (int64_t c = 0; c < in; ++c)
          d.row(o)[c] = w->row(o)[c] - d.row(o)[c] / s[size_t(c)];
      loss += output_error(x.sample, d);
    }
    if (i == 0) best.rtn_loss = loss;
    if (i == 0 || loss < best.loss) {
      best.alpha = alpha;
      best.scales = std::move(s);
      best.loss = loss;
    }
  }
  return best;
}

std::vector<float> search_clip(const Matrix& w, const ActivationStats& x, int64_t group,
                               const std::vector<float>& x_scale, int grid) {
  require(w.cols % group == 0 && x.sample.cols == w.cols, "search_clip: shapes");
  const int64_t groups = w.cols / group, rows = x.sample.rows;
  // Per group its Gram matrix G = X_g^T X_g [group, group] of the (scaled) sample.
  std::vector<double> gram(size_t(groups * group * group), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < groups; ++g) {
    double* G = gram.data() + g * group * group;
    std::vector<double> xs(static_cast<size_t>(group));
    for (int64_t t = 0; t < rows; ++t) {
      for (int64_t i = 0; i < group; ++i) {
        const int64_t c = g * group + i;
        xs[size_t(i)] = x.sample.row(t)[c] / (x_scale.empty() ? 1.0 : x_scale[size_t(c)]);
      }
      for (int64_t i = 0; i < group; ++i)
        for (int64_t j = 0; j < group; ++j) G[i * group + j] += xs[size_t(i)] * xs[size_t(j)];
    }
  }
  std::vector<float> clip(size_t(w.rows * groups), 1.0f);
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < w.rows; ++o) {
    std::vector<uint8_t> q(static_cast<size_t>(group));
    std::vector<double> d(static_cast<size_t>(group));
    for (int64_t g = 0; g < groups; ++g) {
      const float* wg = w.row(o) + g * group;
      const double* G = gram.data() + g * group * group;
      double best = INFINITY;
      for (int k = 0; k < grid / 2; ++k) {  // c = 1, 1 - 1/grid, ..., > 0.5 (AutoAWQ's range)
        const float c = 1.0f - float(k) / float(grid);
        float s;
        int8_t z;
        quantize_group(wg, group, c, q.data(), &s, &z);
        for (int64_t i = 0; i < group; ++i)
          d[size_t(i)] = double(wg[i]) - (double(q[size_t(i)]) - double(z)) * double(s);
        double e = 0.0;
        for (int64_t i = 0; i < group; ++i) {
          double row = 0.0;
          for (int64_t j = 0; j < group; ++j) row += G[i * group + j] * d[size_t(j)];
          e += d[size_t(i)] * row;
        }
        if (e < best) {
          best = e;
          clip[size_t(o * groups + g)] = c;
        }
      }
    }
  }
  return clip;
}

}  // namespace tessera
