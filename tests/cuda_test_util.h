// Helpers for the CUDA tests (cuda_ops_test.cpp, cuda_model_test.cpp): a GPU check that skips
// visibly, random inputs rounded to the GPU dtype (so CPU and GPU see the same values), and
// the normalised error ||gpu - cpu|| / ||cpu||.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/tensor.h"

namespace tessera::test {

// Empty when a GPU can run the CUDA tests, else why not (no CUDA build, no device).
std::string cuda_unavailable_reason();

// Skips the current test, with the reason, when no GPU is usable.
#define TESSERA_REQUIRE_GPU()                                                     \
  do {                                                                            \
    const std::string why_ = ::tessera::test::cuda_unavailable_reason();          \
    if (!why_.empty()) GTEST_SKIP() << "CUDA test skipped: " << why_;             \
  } while (0)

// The GPU tolerances of issue 4: fp32 accumulation, outputs in the compute dtype.
inline double tolerance(DType dt) { return dt == DType::F16 ? 2e-3 : dt == DType::BF16 ? 1e-2 : 1e-5; }

std::vector<float> random_values(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f);
// Rounds each value through dtype dt and back (F32: unchanged).
std::vector<float> round_to(std::vector<float> v, DType dt);

// ||a - b|| / ||b||; NaN when a holds a NaN (a poisoned, unwritten element).
double rel_error(const std::vector<float>& gpu, const std::vector<float>& cpu);

// A host tensor of dtype dt (F32/F16/BF16/I32 from the values) with the given shape.
Tensor host_from(const std::vector<float>& v, DType dt, std::initializer_list<int64_t> dims);
Tensor host_i32(const std::vector<int32_t>& v);

// GPU tensors byte for byte from host values; poisoned (NaN) outputs; values back as F32.
Tensor gpu_from(const std::vector<float>& v, DType dt, std::initializer_list<int64_t> dims);
Tensor gpu_i32(const std::vector<int32_t>& v);
Tensor gpu_poisoned(Backend& gpu, DType dt, std::initializer_list<int64_t> dims);
std::vector<float> values_of(Backend& b, const Tensor& t);

// Backends shared by the CUDA tests (created once; the CUDA one needs a GPU and a CUDA build).
Backend& cpu_backend();
Backend& gpu_backend(DType compute_dtype);
// Whether gpu_backend(dt) computes in dt (false for BF16 below sm_80; prints a note then).
bool gpu_computes_in(DType dt);

}  // namespace tessera::test

// TESSERA_CUDA_OP_TEST(op) { body using `dt` }: registers test CudaOps.op, which runs the body
// for F16 and for BF16 on a GPU (BF16 only where the GPU computes in it: make_cuda_backend
// turns BF16 into F16 below sm_80) and skips visibly otherwise. Without a CUDA build the body
// is an uninstantiated template (it still compiles; nothing links against CUDA), so the same
// test names exist in every build and the registry test can check them.
#ifdef TESSERA_HAVE_CUDA
#define TESSERA_CUDA_OP_TEST(op)                                              \
  void cuda_op_##op(::tessera::DType dt);                                     \
  TEST(CudaOps, op) {                                                         \
    TESSERA_REQUIRE_GPU();                                                    \
    for (::tessera::DType dt : {::tessera::DType::F16, ::tessera::DType::BF16}) { \
      if (!::tessera::test::gpu_computes_in(dt)) continue; /* sm_75: no bf16 */ \
      SCOPED_TRACE(::tessera::dtype_name(dt));                                \
      cuda_op_##op(dt);                                                       \
      if (HasFatalFailure()) return;                                          \
    }                                                                         \
  }                                                                           \
  void cuda_op_##op(::tessera::DType dt)
#else
#define TESSERA_CUDA_OP_TEST(op)                                              \
  TEST(CudaOps, op) { TESSERA_REQUIRE_GPU(); }                                \
  template <class Unused>                                                     \
  [[maybe_unused]] void cuda_op_##op(::tessera::DType dt)
#endif
