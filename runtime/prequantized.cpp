// Unpacking AWQ / GPTQ words and regrouping them into tessera's int4 layout (formats in
// runtime/prequantized.h).
#include "runtime/prequantized.h"

#include <algorithm>
#include <numeric>

#include "kernels/embedding.h"
#include "runtime/error.h"
#include "runtime/quant.h"

namespace tessera {
namespace {

// kAwqOrder's inverse: output 8c + k sits in nibble kAwqNibble[k].
constexpr int kAwqNibble[8] = {0, 4, 1, 5, 2, 6, 3, 7};

int nibble(int32_t word, int j) { return int((uint32_t(word) >> (4 * j)) & 15u); }

void expect_i32(const Tensor& t, int64_t dims, const std::string& what) {
  require(t.device == Device::CPU && t.dtype == DType::I32 && t.ndim == dims,
          what + " must be a " + std::to_string(dims) + "-D I32 tensor, got " +
              dtype_name(t.dtype) + " " + t.shape_str());
}

std::vector<float> scales_f32(const Tensor& s, int64_t groups, int64_t out,
                              const std::string& what) {
  require(s.device == Device::CPU && s.ndim == 2 &&
              (s.dtype == DType::F16 || s.dtype == DType::BF16 || s.dtype == DType::F32),
          what + " scales must be a 2-D F16/BF16/F32 tensor, got " + dtype_name(s.dtype) +
              " " + s.shape_str());
  require(s.dim(0) == groups && s.dim(1) == out,
          what + " scales have shape " + s.shape_str() + ", expected [" +
              std::to_string(groups) + ", " + std::to_string(out) + "]");
  std::vector<float> f(size_t(groups * out));
  convert_to_f32(s.data, s.dtype, groups * out, f.data());
  return f;
}

// zeros [groups, out] from qzeros [groups, out / 8]; nibble_of(k) places output 8c + k.
template <class NibbleOf>
std::vector<int8_t> unpack_zeros(const Tensor& qzeros, int64_t out, int add, NibbleOf nibble_of,
                                 const std::string& what) {
  expect_i32(qzeros, 2, what + " qzeros");
  require(qzeros.dim(1) * 8 == out, what + " qzeros has shape " + qzeros.shape_str() +
                                        ", expected " + std::to_string(out / 8) + " columns");
  const int64_t groups = qzeros.dim(0);
  std::vector<int8_t> z(size_t(groups * out));
  const int32_t* w = qzeros.ptr<int32_t>();
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t o = 0; o < out; ++o)
      z[size_t(g * out + o)] = int8_t(nibble(w[g * (out / 8) + o / 8], nibble_of(o % 8)) + add);
  return z;
}

}  // namespace

Int4Codes unpack_awq(const Tensor& qweight, const Tensor& qzeros, const Tensor& scales,
                     int64_t group_size, int64_t first_input) {
  const std::string what = "AWQ layer";
  expect_i32(qweight, 2, what + " qweight");
  require(group_size > 0, "AWQ group size must be positive");
  Int4Codes c;
  c.in = qweight.dim(0);
  c.out = qweight.dim(1) * 8;
  c.zeros = unpack_zeros(qzeros, c.out, 0, [](int k) { return kAwqNibble[k]; }, what);
  c.groups = qzeros.dim(0);
  c.scales = scales_f32(scales, c.groups, c.out, what);
  c.q.resize(size_t(c.out * c.in));
  const int32_t* w = qweight.ptr<int32_t>();
  const int64_t words = c.out / 8;
  for (int64_t i = 0; i < c.in; ++i)
    for (int64_t o = 0; o < c.out; ++o)
      c.q[size_t(o * c.in + i)] = uint8_t(nibble(w[i * words + o / 8], kAwqNibble[o % 8]));
  c.group_of.resize(size_t(c.in));
  for (int64_t i = 0; i < c.in; ++i) {
    const int64_t g = (first_input + i) / group_size - first_input / group_size;
    require(g < c.groups, what + ": input " + std::to_string(first_input + i) + " needs group " +
                              std::to_string(g) + " but qzeros has " +
                              std::to_string(c.groups) + " rows");
    c.group_of[size_t(i)] = int32_t(g);
  }
  return c;
}

Int4Codes unpack_gptq(const Tensor& qweight, const Tensor& qzeros, const Tensor& scales,
                      const Tensor& g_idx, bool zeros_minus_one, const std::string& what) {
  expect_i32(qweight, 2, what + " qweight");
  Int4Codes c;
  c.in = qweight.dim(0) * 8;
  c.out = qweight.dim(1);
  require(c.out % 8 == 0, what + ": " + std::to_string(c.out) +
                              " output features; GPTQ's qzeros packs 8 per word");
  c.zeros = unpack_zeros(qzeros, c.out, zeros_minus_one ? 1 : 0, [](int k) { return k; }, what);
  c.groups = qzeros.dim(0);
  c.scales = scales_f32(scales, c.groups, c.out, what);
  c.q.resize(size_t(c.out * c.in));
  const int32_t* w = qweight.ptr<int32_t>();
  for (int64_t r = 0; r < c.in / 8; ++r)
    for (int64_t o = 0; o < c.out; ++o)
      for (int j = 0; j < 8; ++j)
        c.q[size_t(o * c.in + 8 * r + j)] = uint8_t(nibble(w[r * c.out + o], j));
  expect_i32(g_idx, 1, what + " g_idx");
  require(g_idx.dim(0) == c.in, what + " g_idx has " + std::to_string(g_idx.dim(0)) +
                                    " entries, expected " + std::to_string(c.in));
  c.group_of.assign(g_idx.ptr<int32_t>(), g_idx.ptr<int32_t>() + c.in);
  for (int64_t i = 0; i < c.in; ++i)
    require(c.group_of[size_t(i)] >= 0 && c.group_of[size_t(i)] < c.groups,
            what + " g_idx[" + std::to_string(i) + "] = " + std::to_string(c.group_of[size_t(i)]) +
                " is outside the " + std::to_string(c.groups) + " groups of its scales");
  return c;
}

LinearWeight int4_weight_from_codes(const Int4Codes& c, int64_t G) {
  require(G > 0 && G % 2 == 0, "int4 group size must be positive and even");
  // Inputs in group order (stable: act-order keeps each group's inputs in their order).
  std::vector<int32_t> order(size_t(c.in));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return c.group_of[size_t(a)] < c.group_of[size_t(b)];
  });
  std::vector<int32_t> perm, group_src;  // packed input -> x column; tessera group -> ckpt group
  for (size_t a = 0; a < order.size();) {
    size_t b = a;
    const int32_t g = c.group_of[size_t(order[a])];
    while (b < order.size() && c.group_of[size_t(order[b])] == g) ++b;
    for (size_t s = a; s < b; s += size_t(G)) {
      const size_t n = std::min(size_t(G), b - s);
      group_src.push_back(g);
      perm.insert(perm.end(), order.begin() + int64_t(s), order.begin() + int64_t(s + n));
      if (n < size_t(G) && b < order.size()) perm.insert(perm.end(), size_t(G) - n, -1);
    }
    a = b;
  }
  if (perm.size() % 2 != 0) perm.push_back(-1);  // two codes a byte; the last group is short
  const int64_t K = int64_t(perm.size()), groups = int64_t(group_src.size());
  bool identity = K == c.in;
  for (int64_t p = 0; identity && p < K; ++p) identity = perm[size_t(p)] == p;

  LinearWeight w;
  w.format = WeightFormat::Int4;
  w.group_size = G;
  w.weight = host_tensor(DType::U8, {c.out, K / 2});
  w.scales = host_tensor(DType::F32, {c.out, groups});
  w.zeros = host_tensor(DType::I8, {c.out, groups});
  for (int64_t o = 0; o < c.out; ++o) {
    for (int64_t g = 0; g < groups; ++g) {
      const size_t at = size_t(group_src[size_t(g)] * c.out + o);
      w.scales.ptr<float>()[o * groups + g] = c.scales[at];
      w.zeros.ptr<int8_t>()[o * groups + g] = c.zeros[at];
    }
    uint8_t* row = w.weight.ptr<uint8_t>() + o * (K / 2);
    for (int64_t p = 0; p < K; ++p) {
      const int32_t src = perm[size_t(p)];
      // Padding multiplies x = 0; its code is the zero point (w' = 0) where 4 bits hold it.
      const int z = w.zeros.ptr<int8_t>()[o * groups + p / G];
      const int code = src >= 0 ? c.q[size_t(o * c.in + src)] : std::min(z, 15);
      row[p / 2] = uint8_t(p % 2 == 0 ? code : row[p / 2] | (code << 4));
    }
  }
  if (!identity) {
    w.input_perm = host_tensor(DType::I32, {K});
    std::copy(perm.begin(), perm.end(), w.input_perm.ptr<int32_t>());
  }
  return w;
}

std::vector<float> dequantize_in_input_order(const LinearWeight& w, int64_t in) {
  std::vector<float> packed = dequantize_weight(w);
  if (w.input_perm.empty()) return packed;
  const int64_t out = w.out_features(), K = w.in_features();
  std::vector<float> r(size_t(out * in), 0.0f);
  const int32_t* perm = w.input_perm.ptr<int32_t>();
  for (int64_t o = 0; o < out; ++o)
    for (int64_t p = 0; p < K; ++p)
      if (perm[p] >= 0) r[size_t(o * in + perm[p])] = packed[size_t(o * K + p)];
  return r;
}

}  // namespace tessera
