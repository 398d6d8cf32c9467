// CPU matmul: dispatch between the AVX-512 kernel (kernels/matmul_avx512_cpu.cpp) and a
// portable loop.
#include <cpuid.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <stdexcept>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/matmul_avx512.h"

namespace tessera {

static_assert(int(DType::F32) == 0 && int(DType::F16) == 1 && int(DType::BF16) == 2,
              "matmul_avx512 relies on these values");

namespace {
// TESSERA_CPU_ISA=portable|avx2 caps the kernels the CPU backend picks below what the
// processor has: to compare the paths on one machine and to test each of them (avx2: the
// AVX2 builds of the SIMD kernels, kernels/simd_target.h). Anything else: no cap.
int isa_cap() {
  static const int cap = [] {
    const char* v = std::getenv("TESSERA_CPU_ISA");
    const std::string s = v ? v : "";
    return s == "portable" ? 0 : s == "avx2" ? 1 : 2;
  }();
  return cap;
}

// F16C from CPUID leaf 1 (ECX bit 29): clang (14) has no "f16c" for __builtin_cpu_supports.
bool cpu_has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
}
}  // namespace

bool cpu_has_avx512() {
  static const bool has = isa_cap() >= 2 && __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") &&
                          cpu_has_f16c() && __builtin_cpu_supports("fma");
  return has;
}

bool cpu_has_avx2() {
  static const bool has = isa_cap() >= 1 && __builtin_cpu_supports("avx2") &&
                          __builtin_cpu_supports("fma") && cpu_has_f16c();
  return has;
}

bool cpu_has_avx512_bf16() {
  static const bool has = cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
  return has;
}

bool cpu_has_avx512_vnni() {
  static const bool has = cpu_has_avx512() && __builtin_cpu_supports("avx512vnni");
  return has;
}

static inline float load_weight(const void* w, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(w)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(w)[i]);
    default: throw std::invalid_argument("matmul: unsupported weight dtype");
  }
}

void matmul_cpu_portable(const float* x, int64_t M, int64_t K, const void* w, DType wt,
                         int64_t N, const float* bias, float* y) {
  if (wt != DType::F32 && wt != DType::F16 && wt != DType::BF16)
    throw std::invalid_argument(std::string("matmul: unsupported weight dtype ") +
                                dtype_name(wt));
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t m = 0; m < M; ++m) {
      float acc = 0.0f;
      for (int64_t k = 0; k < K; ++k) acc += x[m * K + k] * load_weight(w, wt, n * K + k);
      y[m * N + n] = acc + (bias ? bias[n] : 0.0f);
    }
  }
}

void matmul_cpu(const float* x, int64_t M, int64_t K, const void* w, DType wt, int64_t N,
                const float* bias, float* y) {
  const MatmulSimd* simd = simd_kernels(kMatmulAvx512, kMatmulAvx2);
  if (simd && (wt == DType::F32 || wt == DType::F16 || wt == DType::BF16)) {
    simd->matmul(x, M, K, w, int(wt), N, bias, y);
    return;
  }
  matmul_cpu_portable(x, M, K, w, wt, N, bias, y);
}

void matmul_cpu_bf16_activations(const float* x, int64_t M, int64_t K, const void* w, DType wt,
                                 int64_t N, const float* bias, float* y) {
  thread_local std::vector<uint16_t> xb;
  xb.resize(size_t(M * K));
  if (cpu_has_avx512_bf16()) {
    // xb is thread_local: hand the workers its address, not the name.
    uint16_t* dst = xb.data();
    const int64_t chunk = 16384;
#pragma omp parallel for schedule(static) if (M * K > 4 * chunk)
    for (int64_t c = 0; c < M * K; c += chunk)
      kMatmulAvx512.f32_to_bf16(x + c, std::min(chunk, M * K - c), dst + c);
  } else {
    for (int64_t i = 0; i < M * K; ++i) xb[size_t(i)] = f32_to_bf16(x[i]);
  }
  if (wt == DType::BF16 && cpu_has_avx512_bf16()) {
    kMatmulAvx512.matmul_bf16dot(xb.data(), M, K, static_cast<const uint16_t*>(w), N, bias, y);
    return;
  }
  std::vector<float> xr(size_t(M * K));
  for (int64_t i = 0; i < M * K; ++i) xr[size_t(i)] = bf16_to_f32(xb[size_t(i)]);
  matmul_cpu(xr.data(), M, K, w, wt, N, bias, y);
}

}  // namespace tessera
