// Load-time RTN quantization (formulas and choices in runtime/quant.h). All arithmetic is
// in F32, as the kernels dequantize: w' = q * s or (q - z) * s with the stored F32 s.
#include "runtime/quant.h"

#include <algorithm>
#include <cmath>

#include "kernels/embedding.h"
#include "runtime/error.h"

namespace tessera {
namespace {

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Row r of a host [out, in] float tensor as F32 (into buf).
const float* row_f32(const Tensor& w, int64_t r, std::vector<float>& buf) {
  const int64_t in = w.dim(1);
  if (w.dtype == DType::F32) return w.ptr<float>() + r * in;
  buf.resize(size_t(in));
  convert_to_f32(static_cast<const char*>(w.data) + size_t(r * in) * dtype_size(w.dtype),
                 w.dtype, in, buf.data());
  return buf.data();
}

void quantize_row_int8(const float* w, int64_t in, int8_t* q, float* scale) {
  float amax = 0.0f;
  for (int64_t i = 0; i < in; ++i) amax = std::max(amax, std::fabs(w[i]));
  const float s = amax > 0.0f ? amax / 127.0f : 1.0f;
  for (int64_t i = 0; i < in; ++i)
    q[i] = int8_t(std::clamp(round_half_even(w[i] / s), -127.0f, 127.0f));
  *scale = s;
}

// Scale and zero point of one int4 group with range [mn, mx].
void int4_params(float mn, float mx, float* s, float* z) {
  *s = (mx - mn) / 15.0f;
  if (*s == 0.0f) *s = 1.0f;
  *z = round_half_even(-mn / *s);
}

// One row's groups: codes into q (one code per input, 0..15), scales, zero points.
void quantize_row_int4(const float* w, int64_t in, int64_t group, uint8_t* q, float* scales,
                       int8_t* zeros) {
  for (int64_t g0 = 0, g = 0; g0 < in; g0 += group, ++g) {
    const int64_t n = std::min(group, in - g0);
    float mn = w[g0], mx = w[g0];
    for (int64_t i = g0; i < g0 + n; ++i) {
      mn = std::min(mn, w[i]);
      mx = std::max(mx, w[i]);
    }
    float s, z;
    int4_params(mn, mx, &s, &z);
    if (z < -128.0f || z > 127.0f) int4_params(std::min(mn, 0.0f), std::max(mx, 0.0f), &s, &z);
    for (int64_t i = g0; i < g0 + n; ++i)
      q[i] = uint8_t(std::clamp(round_half_even(w[i] / s) + z, 0.0f, 15.0f));
    scales[g] = s;
    zeros[g] = int8_t(z);
  }
}

}  // namespace

WeightFormat parse_weight_format(const std::string& s) {
  if (s == "stored") return WeightFormat::Dense;
  if (s == "int8") return WeightFormat::Int8;
  if (s == "int4") return WeightFormat::Int4;
  throw UserError("--weights must be stored, int8 or int4, not \"" + s + "\"");
}

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::Dense: return "stored";
    case WeightFormat::Int8: return "int8";
    case WeightFormat::Int4: return "int4";
  }
  return "?";
}

float round_half_even(float x) {
  // nearbyint rounds in the current mode: round-to-nearest-even unless someone changed it.
  return std::nearbyint(x);
}

LinearWeight quantize_weight(const Tensor& w, WeightFormat format, const std::string& what,
                             int64_t group_size) {
  LinearWeight out;
  out.weight = w;
  if (format == WeightFormat::Dense) return out;
  require(w.ndim == 2 && is_float(w.dtype) && w.device == Device::CPU,
          what + ": only host F32/F16/BF16 matrices can be quantized, got " +
              dtype_name(w.dtype) + " " + w.shape_str());
  const int64_t rows = w.dim(0), in = w.dim(1);
  out.format = format;
  if (format == WeightFormat::Int8) {
    out.weight = host_tensor(DType::I8, {rows, in});
    out.scales = host_tensor(DType::F32, {rows});
#pragma omp parallel
    {
      std::vector<float> buf;
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; ++r)
        quantize_row_int8(row_f32(w, r, buf), in, out.weight.ptr<int8_t>() + r * in,
                          out.scales.ptr<float>() + r);
    }
    return out;
  }
  require(in % 2 == 0, what + " has " + std::to_string(in) +
                           " input features (on this rank): int4 packs two per byte and "
                           "needs an even number; use --weights int8");
  require(group_size > 0, "int4 group size must be positive");
  const int64_t groups = (in + group_size - 1) / group_size;
  out.group_size = group_size;
  out.weight = host_tensor(DType::U8, {rows, in / 2});
  out.scales = host_tensor(DType::F32, {rows, groups});
  out.zeros = host_tensor(DType::I8, {rows, groups});
#pragma omp parallel
  {
    std::vector<float> buf;
    std::vector<uint8_t> codes(static_cast<size_t>(in));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      quantize_row_int4(row_f32(w, r, buf), in, group_size, codes.data(),
                        out.scales.ptr<float>() + r * groups, out.zeros.ptr<int8_t>() + r * groups);
      uint8_t* packed = out.weight.ptr<uint8_t>() + r * (in / 2);
      for (int64_t j = 0; j < in / 2; ++j)
        packed[j] = uint8_t(codes[size_t(2 * j)] | (codes[size_t(2 * j + 1)] << 4));
    }
  }
  return out;
}

std::vector<float> dequantize_weight(const LinearWeight& w) {
  const int64_t rows = w.out_features(), in = w.in_features();
  std::vector<float> out(size_t(rows * in));
  if (w.format == WeightFormat::Dense) {
    convert_to_f32(w.weight.data, w.weight.dtype, rows * in, out.data());
    return out;
  }
  const float* s = w.scales.ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    float* o = out.data() + r * in;
    if (w.format == WeightFormat::Int8) {
      const int8_t* q = w.weight.ptr<int8_t>() + r * in;
      for (int64_t i = 0; i < in; ++i) o[i] = float(q[i]) * s[r];
      continue;
    }
    const int64_t groups = w.scales.dim(1);
    const uint8_t* q = w.weight.ptr<uint8_t>() + r * (in / 2);
    const float* sr = s + r * groups;
    const int8_t* zr = w.zeros.ptr<int8_t>() + r * groups;
    for (int64_t i = 0; i < in; ++i) {
      const int code = i % 2 == 0 ? q[i / 2] & 15 : q[i / 2] >> 4;
      o[i] = float(code - zr[i / w.group_size]) * sr[i / w.group_size];
    }
  }
  return out;
}

QuantMatrix quant_matrix(const LinearWeight& w) {
  QuantMatrix q;
  q.q = w.weight.data;
  q.scales = w.scales.ptr<float>();
  q.zeros = w.zeros.empty() ? nullptr : w.zeros.ptr<int8_t>();
  q.N = w.out_features();
  q.K = w.in_features();
  q.group_size = w.group_size;
  q.int4 = w.format == WeightFormat::Int4;
  return q;
}

uint64_t linear_weight_bytes(const LinearWeight& w) {
  uint64_t n = 0;
  for (const Tensor* t : {&w.weight, &w.bias, &w.scales, &w.zeros, &w.input_perm})
    if (!t->empty()) n += t->nbytes();
  return n;
}

}  // namespace tessera
