// Test helper: 4-bit layers with known contents, packed the way AutoAWQ (GEMM) and GPTQ
// write them, written here from the formats' packing rules (AutoAWQ
// awq/modules/linear/gemm.py WQLinear_GEMM.from_linear with order_map [0, 2, 4, 6, 1, 3, 5, 7];
// AutoGPTQ nn_modules/qlinear QuantLinear.pack: 8 sequential inputs per qweight word, 8
// sequential outputs per qzeros word, v1 storing z - 1), not with tessera's code; and an
// in-memory TensorSource to load them from.
#pragma once
#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/weights.h"

namespace tessera::test {

// A layer's known contents: w[o, i] = (q[o, i] - z[g, o]) * s[g, o] with g = g_idx[i].
struct KnownInt4 {
  int64_t out = 0, in = 0, groups = 0;
  std::vector<uint8_t> q;      // [out, in], 0..15
  std::vector<int> z;          // [groups, out], 0..15 (GPTQ v1: 1..16)
  std::vector<float> s;        // [groups, out], exact in fp16
  std::vector<int32_t> g_idx;  // [in]

  std::vector<float> dequantized() const {
    std::vector<float> w(size_t(out * in));
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) {
        const size_t g = size_t(g_idx[size_t(i)] * out + o);
        w[size_t(o * in + i)] = float(q[size_t(o * in + i)] - z[g]) * s[g];
      }
    return w;
  }
};

// Random codes, zeros (zero_lo..zero_lo + 15) and fp16-exact scales; groups of `group`
// inputs, in order or (act_order) shuffled like GPTQ's desc_act (each group keeps `group`
// members).
inline KnownInt4 random_known(int64_t out, int64_t in, int64_t group, uint64_t seed,
                              bool act_order, int zero_lo = 0) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  KnownInt4 k;
  k.out = out, k.in = in, k.groups = (in + group - 1) / group;
  std::uniform_int_distribution<int> code(0, 15), pow(-9, -3);
  for (int64_t i = 0; i < out * in; ++i) k.q.push_back(uint8_t(code(rng)));
  for (int64_t i = 0; i < k.groups * out; ++i) {
    k.z.push_back(zero_lo + code(rng));
    k.s.push_back(float(1 + code(rng)) * std::ldexp(1.0f, pow(rng)));  // 11 bits at most
  }
  for (int64_t i = 0; i < in; ++i) k.g_idx.push_back(int32_t(i / group));
  if (act_order) std::shuffle(k.g_idx.begin(), k.g_idx.end(), rng);
  return k;
}

// AWQ words [rows, out / 8] of value(r, o) in 0..15: nibble j of word (r, c) holds output
// 8c + order[j].
template <class Value>
std::vector<uint32_t> pack_awq_words(int64_t rows, int64_t out, Value value) {
  const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  std::vector<uint32_t> w(size_t(rows * (out / 8)), 0u);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < out / 8; ++c)
      for (int j = 0; j < 8; ++j)
        w[size_t(r * (out / 8) + c)] |= uint32_t(value(r, 8 * c + order[j])) << (4 * j);
  return w;
}
// qweight [in, out / 8] and qzeros [groups, out / 8].
inline std::vector<uint32_t> pack_awq_qweight(const KnownInt4& k) {
  return pack_awq_words(k.in, k.out, [&](int64_t i, int64_t o) { return k.q[size_t(o * k.in + i)]; });
}
inline std::vector<uint32_t> pack_awq_qzeros(const KnownInt4& k) {
  return pack_awq_words(k.groups, k.out, [&](int64_t g, int64_t o) { return k.z[size_t(g * k.out + o)]; });
}

// GPTQ qweight [in / 8, out]: nibble j of word (r, o) holds input 8r + j.
inline std::vector<uint32_t> pack_gptq_qweight(const KnownInt4& k) {
  std::vector<uint32_t> w(size_t((k.in / 8) * k.out), 0u);
  for (int64_t r = 0; r < k.in / 8; ++r)
    for (int64_t o = 0; o < k.out; ++o)
      for (int j = 0; j < 8; ++j)
        w[size_t(r * k.out + o)] |= uint32_t(k.q[size_t(o * k.in + 8 * r + j)]) << (4 * j);
  return w;
}

// GPTQ qzeros [groups, out / 8]: nibble j holds output 8c + j; v1 stores z - 1.
inline std::vector<uint32_t> pack_gptq_qzeros(const KnownInt4& k, bool v1) {
  std::vector<uint32_t> w(size_t(k.groups * (k.out / 8)), 0u);
  for (int64_t g = 0; g < k.groups; ++g)
    for (int64_t c = 0; c < k.out / 8; ++c)
      for (int j = 0; j < 8; ++j)
        w[size_t(g * (k.out / 8) + c)] |=
            uint32_t(k.z[size_t(g * k.out + 8 * c + j)] - (v1 ? 1 : 0)) << (4 * j);
  return w;
}

inline Tensor i32_tensor(const std::vector<uint32_t>& v, std::vector<int64_t> shape) {
  Tensor t = shape.size() == 1 ? host_tensor(DType::I32, {shape[0]})
                               : host_tensor(DType::I32, {shape[0], shape[1]});
  std::copy(v.begin(), v.end(), t.ptr<uint32_t>());
  return t;
}
inline Tensor i32_tensor(const std::vector<int32_t>& v) {
  Tensor t = host_tensor(DType::I32, {int64_t(v.size())});
  std::copy(v.begin(), v.end(), t.ptr<int32_t>());
  return t;
}
inline Tensor f16_tensor(const std::vector<float>& v, int64_t rows, int64_t cols) {
  Tensor t = host_tensor(DType::F16, {rows, cols});
  for (size_t i = 0; i < v.size(); ++i) t.ptr<uint16_t>()[i] = f32_to_f16(v[i]);
  return t;
}

// The checkpoint tensors of a layer `prefix` in one format ("awq", "gptq" v1, "gptq_v2").
inline std::map<std::string, Tensor> packed_layer(const std::string& prefix, const KnownInt4& k,
                                                  const std::string& format) {
  std::map<std::string, Tensor> t;
  t[prefix + ".scales"] = f16_tensor(k.s, k.groups, k.out);
  if (format == "awq") {
    t[prefix + ".qweight"] = i32_tensor(pack_awq_qweight(k), {k.in, k.out / 8});
    t[prefix + ".qzeros"] = i32_tensor(pack_awq_qzeros(k), {k.groups, k.out / 8});
  } else {
    t[prefix + ".qweight"] = i32_tensor(pack_gptq_qweight(k), {k.in / 8, k.out});
    t[prefix + ".qzeros"] = i32_tensor(pack_gptq_qzeros(k, format == "gptq"), {k.groups, k.out / 8});
    t[prefix + ".g_idx"] = i32_tensor(k.g_idx);
  }
  return t;
}

// Host tensors by name, sliced like a checkpoint.
class MapSource final : public TensorSource {
 public:
  std::map<std::string, Tensor> tensors;
  bool has(const std::string& n) const override { return tensors.count(n) != 0; }
  std::vector<int64_t> shape(const std::string& n) const override {
    const Tensor& t = tensors.at(n);
    return std::vector<int64_t>(t.shape.begin(), t.shape.begin() + t.ndim);
  }
  Tensor rows(const std::string& n, int64_t r0, int64_t r1) override {
    const Tensor& t = tensors.at(n);
    if (t.ndim > 1) return t.rows(r0, r1);
    Tensor v = t;  // 1-D: elements (Tensor::rows steps by whole rows)
    v.data = static_cast<char*>(t.data) + size_t(r0) * dtype_size(t.dtype);
    v.shape[0] = r1 - r0;
    return v;
  }
  Tensor cols(const std::string& n, int64_t c0, int64_t c1) override {
    const Tensor& t = tensors.at(n);
    const size_t es = dtype_size(t.dtype), row = size_t(t.dim(1)) * es;
    Tensor r = host_tensor(t.dtype, {t.dim(0), c1 - c0});
    for (int64_t i = 0; i < t.dim(0); ++i)
      std::copy_n(static_cast<const char*>(t.data) + size_t(i) * row + size_t(c0) * es,
                  size_t(c1 - c0) * es, static_cast<char*>(r.data) + size_t(i * (c1 - c0)) * es);
    return r;
  }
  std::string describe(const std::string& n) const override { return "tensor " + n + " (test)"; }
};

}  // namespace tessera::test
