// AWQ-style activation-aware int4 quantization, done offline by `tessera quantize`.
// AWQ (Lin et al., 2023, "AWQ: Activation-aware Weight Quantization for LLM Compression and
// Acceleration"): a few input channels carry much larger activations than the rest, and their
// weights matter most. Scaling those weight columns up before group-wise round-to-nearest
// (and the activations down by the same factor, folded into the op that produces them) gives
// them finer steps. Per set of linears sharing one input, s = mean|x|^alpha (normalised by
// sqrt(max s * min s)), alpha from a grid, minimising the layers' output error on calibration
// activations; alpha = 0 is plain RTN, so the search never does worse on them. Then, as
// AutoAWQ's auto_clip, each (output row, group) range may shrink where that lowers the
// group's output error.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "runtime/model.h"
#include "runtime/prequantized.h"

namespace tessera {

// A host F32 matrix [rows, cols], row-major.
struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> v;
  Matrix() = default;
  Matrix(int64_t r, int64_t c) : rows(r), cols(c), v(size_t(r * c), 0.0f) {}
  float* row(int64_t r) { return v.data() + r * cols; }
  const float* row(int64_t r) const { return v.data() + r * cols; }
};

// The activations seen at one calibration site: the per-channel sum of |x| over every token,
// and a sample of token rows (every row until max_rows, then reservoir sampling with a fixed
// seed: deterministic) for the output-error searches.
struct ActivationStats {
  std::vector<double> abs_sum;  // [channels]
  int64_t tokens = 0;
  Matrix sample;                // [<= max_rows, channels]
  std::vector<float> mean_abs() const;
};

class ActivationRecorder {
 public:
  ActivationRecorder(int64_t num_layers, int64_t max_rows);
  // For Model::set_activation_observer; the recorder must outlive its use.
  ActivationObserver observer();
  const ActivationStats& at(int64_t layer, LinearInput site) const;

 private:
  void record(int64_t layer, LinearInput site, const Tensor& x);
  int64_t max_rows_;
  std::vector<ActivationStats> stats_;  // [layer * kNumLinearInputs + site]
  std::mt19937_64 rng_{0x5eedULL};
};

// Group-wise asymmetric int4 RTN of w [out, in] as an AWQ checkpoint stores it: groups of
// `group` consecutive inputs (in % group == 0); each group's [min, max] (shrunk to
// [max(min, -c a), min(max, c a)], a = max|w|, when clip [out, in / group] gives c < 1) is
// widened to include 0 so that z is a nibble; s = f16((max - min) / 15) (1 if 0; rounded to
// F16 first, as stored), z = round(-min / s), q = clamp(round(w / s) + z, 0, 15).
Int4Codes quantize_int4_awq(const Matrix& w, int64_t group,
                            const std::vector<float>& clip = {});
// (q - z) * s, [out, in].
Matrix dequantize_codes(const Int4Codes& c);

struct ScaleChoice {
  double alpha = 0;
  std::vector<float> scales;      // [in]: multiplies W's columns, divides x
  double loss = 0, rtn_loss = 0;  // summed squared output error on the sample: chosen, alpha 0
};

// The scale for the linears `weights` (each [out_k, in]) that read the site `x`. channel_tie:
// empty, or one class per input; inputs of one class share a scale (the mean of their
// mean|x|): o_proj under grouped-query attention, whose scale is folded into v_proj's rows.
ScaleChoice search_scales(const std::vector<const Matrix*>& weights, const ActivationStats& x,
                          int64_t group, const std::vector<int32_t>& channel_tie,
                          int grid = 20);

// Per (output row, group) clip factor c in {1, 1 - 1 / grid, ..., > 0.5} minimising
// sum over the sample of (x_g . (w_g - w'_g))^2; returns [out, in / group]. `x_scale` (empty
// or [in]) divides the sample's columns first (the activations after an AWQ scale).
std::vector<float> search_clip(const Matrix& w, const ActivationStats& x, int64_t group,
                               const std::vector<float>& x_scale, int grid = 20);

}  // namespace tessera
