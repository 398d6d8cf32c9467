// gather_columns (the GPTQ act-order input permutation): the CPU kernel and the CPU backend's
// op against expectations written out by hand, -1 padding as zeros, F32 and 16-bit dtypes,
// the OpenMP path against a plain loop, and the backend's rejection of bad indices and shapes.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/embedding.h"
#include "runtime/backend.h"
#include "runtime/dtype.h"

namespace tessera::test {
namespace {

// x [2, 4]: x[m, k] = 10 * (m + 1) + k.
const std::vector<float> kX = {10, 11, 12, 13, 20, 21, 22, 23};
// Reversed, padded with -1, one column twice.
const std::vector<int32_t> kIdx = {3, -1, 0, 2, 2, -1};
const std::vector<float> kWant = {13, 0, 10, 12, 12, 0, 23, 0, 20, 22, 22, 0};

Tensor f32_tensor(std::vector<float>& v, std::initializer_list<int64_t> dims) {
  return make_tensor_view(v.data(), DType::F32, dims);
}
Tensor i32_tensor(std::vector<int32_t>& v) {
  return make_tensor_view(v.data(), DType::I32, {int64_t(v.size())});
}

TEST(KernelGatherColumns, F32ByHand) {
  std::vector<float> out(kWant.size(), -7.0f);
  gather_columns_cpu(kX.data(), 4, 2, 4, kIdx.data(), int64_t(kIdx.size()), out.data());
  EXPECT_EQ(out, kWant);
}

TEST(KernelGatherColumns, SixteenBitElementsCopiedBitForBit) {
  for (DType dt : {DType::F16, DType::BF16}) {
    std::vector<uint16_t> x(kX.size()), out(kWant.size(), 0xffff);
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = dt == DType::F16 ? f32_to_f16(kX[i]) : f32_to_bf16(kX[i]);
    gather_columns_cpu(x.data(), 2, 2, 4, kIdx.data(), int64_t(kIdx.size()), out.data());
    for (size_t i = 0; i < out.size(); ++i) {
      const float got = dt == DType::F16 ? f16_to_f32(out[i]) : bf16_to_f32(out[i]);
      EXPECT_EQ(got, kWant[i]) << dtype_name(dt) << " element " << i;
      if (kWant[i] == 0.0f) {
        EXPECT_EQ(out[i], 0) << "padding is +0";
      }
    }
  }
}

TEST(KernelGatherColumns, RejectsOtherElementSizes) {
  std::vector<uint8_t> x(8), out(8);
  const int32_t idx[] = {0};
  EXPECT_THROW(gather_columns_cpu(x.data(), 1, 1, 8, idx, 1, out.data()), std::invalid_argument);
}

// Large enough for the OpenMP path (M * J > 65536); every -1 still zero, every row its own.
TEST(KernelGatherColumns, ManyRowsAgainstPlainLoop) {
  std::mt19937 rng(11);
  const int64_t M = 300, K = 700, J = 768;
  std::vector<float> x(size_t(M * K));
  for (auto& v : x) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
  std::vector<int32_t> idx(static_cast<size_t>(J));
  for (auto& i : idx) i = rng() % 10 == 0 ? -1 : int32_t(rng() % K);
  std::vector<float> out(size_t(M * J), -7.0f);
  gather_columns_cpu(x.data(), 4, M, K, idx.data(), J, out.data());
  for (int64_t m = 0; m < M; ++m)
    for (int64_t j = 0; j < J; ++j) {
      const float want = idx[size_t(j)] < 0 ? 0.0f : x[size_t(m * K + idx[size_t(j)])];
      ASSERT_EQ(out[size_t(m * J + j)], want) << "m " << m << " j " << j;
    }
}

TEST(CpuBackendGatherColumns, ByHandWithPadding) {
  auto be = make_cpu_backend(0);
  std::vector<float> x = kX;
  std::vector<int32_t> idx = kIdx;
  Tensor out = be->alloc(DType::F32, {2, int64_t(idx.size())});
  std::memset(out.data, 0xff, out.nbytes());  // NaN: every element must be written
  be->gather_columns(f32_tensor(x, {2, 4}), be->upload(i32_tensor(idx)), out);
  std::vector<float> got(kWant.size());
  be->download(out, got.data());
  EXPECT_EQ(got, kWant);
}

TEST(CpuBackendGatherColumns, Bf16KeepsItsDtype) {
  auto be = make_cpu_backend(0);
  std::vector<uint16_t> x(kX.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = f32_to_bf16(kX[i]);
  std::vector<int32_t> idx = kIdx;
  Tensor out = be->alloc(DType::BF16, {2, int64_t(idx.size())});
  be->gather_columns(make_tensor_view(x.data(), DType::BF16, {2, 4}), i32_tensor(idx), out);
  for (size_t i = 0; i < kWant.size(); ++i)
    EXPECT_EQ(bf16_to_f32(out.ptr<uint16_t>()[i]), kWant[i]) << "element " << i;
}

TEST(CpuBackendGatherColumns, RejectsBadIndicesAndShapes) {
  auto be = make_cpu_backend(0);
  std::vector<float> x = kX;
  Tensor xt = f32_tensor(x, {2, 4});
  for (int32_t bad : {4, 100, -2}) {
    std::vector<int32_t> idx = {0, bad, 1};
    Tensor out = be->alloc(DType::F32, {2, 3});
    try {
      be->gather_columns(xt, i32_tensor(idx), out);
      ADD_FAILURE() << "index " << bad << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
    }
  }
  std::vector<int32_t> idx = {0, 1, 2};
  Tensor narrow = be->alloc(DType::F32, {2, 2}), short_rows = be->alloc(DType::F32, {1, 3});
  Tensor bf16 = be->alloc(DType::BF16, {2, 3});
  EXPECT_THROW(be->gather_columns(xt, i32_tensor(idx), narrow), std::invalid_argument);
  EXPECT_THROW(be->gather_columns(xt, i32_tensor(idx), short_rows), std::invalid_argument);
  EXPECT_THROW(be->gather_columns(xt, i32_tensor(idx), bf16), std::invalid_argument);
  std::vector<float> fidx = {0, 1, 2};
  Tensor out = be->alloc(DType::F32, {2, 3});
  EXPECT_THROW(be->gather_columns(xt, f32_tensor(fidx, {3}), out), std::invalid_argument);
}

}  // namespace
}  // namespace tessera::test
