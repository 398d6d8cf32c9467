// CPU quantized matmul: the portable reference, and the dispatch to the AVX-512 kernels
// (which take x pre-arranged for int4: see quant_matmul.h).
#include <omp.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/quant_matmul.h"

namespace tessera {
namespace {

// Row n of W' into out[0, K).
void dequantize_row(const QuantMatrix& w, int64_t n, float* out) {
  if (!w.int4) {
    const int8_t* q = static_cast<const int8_t*>(w.q) + n * w.K;
    const float s = w.scales[n];
    for (int64_t k = 0; k < w.K; ++k) out[k] = float(q[k]) * s;
    return;
  }
  const int64_t G = w.groups();
  const uint8_t* q = static_cast<const uint8_t*>(w.q) + n * (w.K / 2);
  const float* s = w.scales + n * G;
  const int8_t* z = w.zeros + n * G;
  for (int64_t k = 0; k < w.K; ++k) {
    const int code = k % 2 == 0 ? q[k / 2] & 15 : q[k / 2] >> 4;
    out[k] = float(code - z[k / w.group_size]) * s[k / w.group_size];
  }
}

void check(const QuantMatrix& w) {
  if (w.q == nullptr || w.scales == nullptr || (w.int4 && (w.zeros == nullptr || w.K % 2 != 0 ||
                                                           w.group_size <= 0)))
    throw std::invalid_argument("quant_matmul: incomplete quantized weight");
}

}  // namespace

void quant_matmul_cpu_portable(const float* x, int64_t M, const QuantMatrix& w,
                               const float* bias, float* y) {
  check(w);
  const int64_t K = w.K, N = w.N;
#pragma omp parallel
  {
    std::vector<float> row(static_cast<size_t>(K));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      dequantize_row(w, n, row.data());
      for (int64_t m = 0; m < M; ++m) {
        float acc = 0.0f;
        for (int64_t k = 0; k < K; ++k) acc += x[m * K + k] * row[size_t(k)];
        y[m * N + n] = acc + (bias ? bias[n] : 0.0f);
      }
    }
  }
}

void quant_matmul_cpu(const float* x, int64_t M, const QuantMatrix& w, const float* bias,
                      float* y) {
  check(w);
  const QuantSimd* simd = simd_kernels(kQuantAvx512, kQuantAvx2);
  if (!simd || (w.int4 && w.group_size % 32 != 0))
    return quant_matmul_cpu_portable(x, M, w, bias, y);
  if (!w.int4) return simd->int8(x, M, w, bias, y);
  // xp: each 32-input chunk as [16 even inputs, 16 odd inputs], the order in which the
  // kernel unpacks a 16-byte load's low and high nibbles (zero padded to Kp).
  const int64_t K = w.K, Kp = (K + 31) / 32 * 32;
  thread_local std::vector<float> xp, wbuf;
  xp.assign(size_t(M * Kp), 0.0f);
  if (M >= kInt4DequantizeTokens) wbuf.resize(size_t(omp_get_max_threads() * 4 * Kp));
  float* xpd = xp.data();  // thread_local: hand the workers the address, not the name
#pragma omp parallel for schedule(static) if (M * K > 65536)
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t k = 0; k < K; ++k) {
      const int64_t c = k / 32 * 32, t = k - c;
      xpd[m * Kp + c + (t % 2) * 16 + t / 2] = x[m * K + k];
    }
  }
  simd->int4(xpd, Kp, M, w, bias, y, wbuf.data());
}

namespace {
// AVX512-VNNI, else the AVX2 build (its vpdpbusd done with vpmaddwd, exactly).
const QuantQ8Simd* q8_kernels() {
  return cpu_has_avx512_vnni() ? &kQuantQ8Avx512 : cpu_has_avx2() ? &kQuantQ8Avx2 : nullptr;
}
}  // namespace

bool quant_matmul_q8_supported(const QuantMatrix& w) {
  return q8_kernels() != nullptr && (!w.int4 || w.group_size == kQ8Block);
}

void quant_matmul_cpu_q8(const float* x, int64_t M, const QuantMatrix& w, const float* bias,
                         float* y) {
  check(w);
  if (!quant_matmul_q8_supported(w)) return quant_matmul_cpu(x, M, w, bias, y);
  q8_kernels()->q8(x, M, w, bias, y);
}

}  // namespace tessera
