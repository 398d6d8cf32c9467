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

// Columns [c0, c0 + n) of m into out [m.rows, n].
void copy_columns(const Matrix& m, int64_t c0, int64_t n, std::vector<float>& out) {
  out.resize(size_t(m.rows * n));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < m.rows; ++r) std::copy_n(m.row(r) + c0, n, out.data() + r * n);
}

// Sum of squares of x [rows, in] @ d [out, in]^T. The product is accumulated over blocks of
// kBlock inputs: the matmul kernel streams all of x once per few outputs, so x must stay in
// cache (at 7B sizes x is 512 x 18944 floats, and the unblocked product was memory-bound).
struct OutputError {
  static constexpr int64_t kBlock = 1024;
  std::vector<float> xb, db, yb, y;

  double operator()(const Matrix& x, const Matrix& d) {
    if (x.rows == 0) return 0.0;
    const int64_t n = x.rows * d.rows;
    y.assign(size_t(n), 0.0f);
    for (int64_t c0 = 0; c0 < x.cols; c0 += kBlock) {
      const int64_t w = std::min(kBlock, x.cols - c0);
      copy_columns(x, c0, w, xb);
      copy_columns(d, c0, w, db);
      yb.resize(size_t(n));
      matmul_cpu(xb.data(), x.rows, w, db.data(), DType::F32, d.rows, nullptr, yb.data());
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) y[size_t(i)] += yb[size_t(i)];
    }
    double e = 0.0;
#pragma omp parallel for reduction(+ : e) schedule(static)
    for (int64_t i = 0; i < n; ++i) e += double(y[size_t(i)]) * double(y[size_t(i)]);
    return e;
  }
};

// d = W - Q(W diag s) diag(1/s) [out, in] (d sized like w), row by row in one pass.
void scaled_rtn_error(const Matrix& w, const std::vector<float>& s, int64_t group, Matrix& d) {
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < w.rows; ++o) {
    std::vector<float> row(static_cast<size_t>(w.cols));
    std::vector<uint8_t> q(static_cast<size_t>(group));
    for (int64_t c = 0; c < w.cols; ++c) row[size_t(c)] = w.row(o)[c] * s[size_t(c)];
    for (int64_t g0 = 0; g0 < w.cols; g0 += group) {
      float scale;
      int8_t z;
      quantize_group(row.data() + g0, group, 1.0f, q.data(), &scale, &z);
      for (int64_t i = 0; i < group; ++i)
        d.row(o)[g0 + i] = w.row(o)[g0 + i] -
                           (float(q[size_t(i)]) - float(z)) * scale / s[size_t(g0 + i)];
    }
  }
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
  require(group > 0 && in % group == 0, "search_scales: inputs are not whole groups");
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
  std::vector<Matrix> d;  // per weight, reused across the grid (allocating is not free at 7B)
  for (const Matrix* w : weights) d.emplace_back(w->rows, w->cols);
  OutputError output_error;
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
    for (size_t k = 0; k < weights.size(); ++k) {
      scaled_rtn_error(*weights[k], s, group, d[k]);
      loss += output_error(x.sample, d[k]);
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
  const int64_t groups = w.cols / group, rows = x.sample.rows, out = w.rows;
  const int ncand = grid / 2;  // c = 1, 1 - 1/grid, ..., > 0.5 (AutoAWQ's range)
  std::vector<float> clip(size_t(out * groups), 1.0f);
  if (rows == 0) return clip;
  // A group's error for a difference d is d^T G d with G = X_g^T X_g; per group, every row's
  // candidates go through one matmul with G (the kernels' speed instead of scalar loops).
  std::vector<float> xt(size_t(group * rows)), gram(size_t(group * group));
  std::vector<float> d(size_t(out * ncand * group)), dg(d.size());
  for (int64_t g = 0; g < groups; ++g) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < group; ++i) {
      const int64_t c = g * group + i;
      const float inv = x_scale.empty() ? 1.0f : 1.0f / x_scale[size_t(c)];
      for (int64_t t = 0; t < rows; ++t) xt[size_t(i * rows + t)] = x.sample.row(t)[c] * inv;
    }
    matmul_cpu(xt.data(), group, rows, xt.data(), DType::F32, group, nullptr, gram.data());
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < out; ++o) {
      std::vector<uint8_t> q(static_cast<size_t>(group));
      const float* wg = w.row(o) + g * group;
      for (int k = 0; k < ncand; ++k) {
        float s;
        int8_t z;
        quantize_group(wg, group, 1.0f - float(k) / float(grid), q.data(), &s, &z);
        float* dk = d.data() + (o * ncand + k) * group;
        for (int64_t i = 0; i < group; ++i)
          dk[i] = wg[i] - (float(q[size_t(i)]) - float(z)) * s;
      }
    }
    matmul_cpu(d.data(), out * ncand, group, gram.data(), DType::F32, group, nullptr,
               dg.data());  // G is symmetric: d G^T = d G
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < out; ++o) {
      double best = INFINITY;
      for (int k = 0; k < ncand; ++k) {
        const float* dk = d.data() + (o * ncand + k) * group;
        const float* gk = dg.data() + (o * ncand + k) * group;
        double e = 0.0;
        for (int64_t i = 0; i < group; ++i) e += double(dk[i]) * double(gk[i]);
        if (e < best) {
          best = e;
          clip[size_t(o * groups + g)] = 1.0f - float(k) / float(grid);
        }
      }
    }
  }
  return clip;
}

}  // namespace tessera
