// Quantized linear layers on the GPU (see quant_matmul_cuda.h): kernels, then launchers.
// GEMV (few tokens): warp w of a block owns weight row n; lane l reads the row's 32-bit words
// l, l + 32, ... (kUnroll at a time), so each warp load covers 128 contiguous bytes and the
// row is read once, from DRAM; the matching x values (at most kQuantGemvMaxTokens token rows,
// small: cached) are contiguous across the warp too. An int8 word holds 4 codes, an int4 word
// 8 (all in one group: groups are multiples of 8 inputs). Rows whose length is not a multiple
// of 4 (int8) or 8 (int4) inputs go byte by byte.
// Prefill: rows of W' are dequantized into a scratch block and multiplied with cublasGemmEx.
#include <algorithm>
#include <string>

#include "kernels/cuda_util.cuh"
#include "kernels/matmul_cuda.h"
#include "kernels/quant_matmul_cuda.h"

namespace tessera {
namespace {

using namespace tessera::cuda;

constexpr int kWarpsPerBlock = 8;
constexpr int kMaxTokens = int(kQuantGemvMaxTokens);
constexpr int kUnroll = 4;  // words in flight per lane

// Four consecutive x values as F32 (p aligned to 4 elements: 16 bytes for F32, 8 for 16-bit
// types). bf16 -> F32 is a shift, so no bf16 arithmetic is needed (sm_75 has none).
__device__ __forceinline__ void load4(const float* p, float* f) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  f[0] = v.x, f[1] = v.y, f[2] = v.z, f[3] = v.w;
}
__device__ __forceinline__ void load4(const __half* p, float* f) {
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  f[0] = __half2float(__ushort_as_half(uint16_t(v.x))), f[1] = __half2float(__ushort_as_half(uint16_t(v.x >> 16)));
  f[2] = __half2float(__ushort_as_half(uint16_t(v.y))), f[3] = __half2float(__ushort_as_half(uint16_t(v.y >> 16)));
}
__device__ __forceinline__ void load4(const __nv_bfloat16* p, float* f) {
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  f[0] = __uint_as_float(v.x << 16), f[1] = __uint_as_float(v.x & 0xffff0000u);
  f[2] = __uint_as_float(v.y << 16), f[3] = __uint_as_float(v.y & 0xffff0000u);
}

// Warp-sums each token's partial dot product and lane 0 writes y[m, n] (+ bias).
template <class Y>
__device__ __forceinline__ void store_row(const float* acc, int M, int64_t n, int64_t N,
                                          const float* bias, Y* y) {
#pragma unroll
  for (int m = 0; m < kMaxTokens; ++m) {
    if (m >= M) break;
    const float v = warp_sum(acc[m]);
    if ((threadIdx.x & 31) == 0) y[m * N + n] = from_f32<Y>(v + (bias ? bias[n] : 0.0f));
  }
}

// Loads this lane's next kUnroll words of a row (words lane, lane + 32, ...) before using
// any, so that several loads per warp are in flight.
__device__ __forceinline__ void load_words(const uint32_t* row, int64_t c0, int64_t words,
                                           uint32_t* wv) {
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t c = c0 + 32 * u;
    wv[u] = c < words ? __ldg(row + c) : 0u;
  }
}

// x: [M, K]; w.q int8 [N, K]; y: [M, N]. Word c of a row holds inputs 4c .. 4c + 3.
template <class T, class Y>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    int8_gemv_kernel(const T* __restrict__ x, int M, QuantMatrix w, bool aligned,
                     const float* __restrict__ bias, Y* __restrict__ y) {
  const int lane = threadIdx.x & 31;
  const int64_t n = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (n >= w.N) return;  // the whole warp leaves together
  const int64_t K = w.K;
  const int8_t* row = static_cast<const int8_t*>(w.q) + n * K;
  float acc[kMaxTokens] = {};
  const int64_t words = aligned && K % 4 == 0 ? K / 4 : 0;  // rows, x rows 4-element aligned
  for (int64_t c0 = lane; c0 < words; c0 += 32 * kUnroll) {
    uint32_t wv[kUnroll];
    load_words(reinterpret_cast<const uint32_t*>(row), c0, words, wv);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + 32 * u;
      if (c >= words) break;
      float q[4];
#pragma unroll
      for (int b = 0; b < 4; ++b) q[b] = float(int8_t(wv[u] >> (8 * b)));
#pragma unroll
      for (int m = 0; m < kMaxTokens; ++m) {
        if (m >= M) break;
        float xf[4];
        load4(x + m * K + 4 * c, xf);
        acc[m] += xf[0] * q[0] + xf[1] * q[1] + xf[2] * q[2] + xf[3] * q[3];
      }
    }
  }
  for (int64_t k = words * 4 + lane; k < K; k += 32) {
    const float q = float(row[k]);
#pragma unroll
    for (int m = 0; m < kMaxTokens; ++m)  // unrolled so that acc stays in registers
      if (m < M) acc[m] += to_f32(x[m * K + k]) * q;
  }
  const float s = w.scales[n];
#pragma unroll
  for (int m = 0; m < kMaxTokens; ++m) acc[m] *= s;
  store_row(acc, M, n, w.N, bias, y);
}

// x: [M, K]; w.q uint8 [N, K / 2]; scales, zeros [N, groups]; y: [M, N]. Word c of a row
// holds inputs 8c .. 8c + 7, input 8c + i in nibble i (little-endian bytes, low nibble
// first), all in group 8c / group_size.
template <class T, class Y>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    int4_gemv_kernel(const T* __restrict__ x, int M, QuantMatrix w, bool aligned,
                     const float* __restrict__ bias, Y* __restrict__ y) {
  const int lane = threadIdx.x & 31;
  const int64_t n = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (n >= w.N) return;
  const int64_t K = w.K, gs = w.group_size, G = (K + gs - 1) / gs;
  const uint8_t* row = static_cast<const uint8_t*>(w.q) + n * (K / 2);
  const float* s = w.scales + n * G;
  const int8_t* z = w.zeros + n * G;
  float acc[kMaxTokens] = {};
  const int64_t words = aligned && K % 8 == 0 && gs % 8 == 0 ? K / 8 : 0;
  for (int64_t c0 = lane; c0 < words; c0 += 32 * kUnroll) {
    uint32_t wv[kUnroll];
    load_words(reinterpret_cast<const uint32_t*>(row), c0, words, wv);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + 32 * u;
      if (c >= words) break;
      const int64_t g = 8 * c / gs;
      const float zf = float(z[g]), sc = s[g];
      float q[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) q[i] = float((wv[u] >> (4 * i)) & 15u) - zf;
#pragma unroll
      for (int m = 0; m < kMaxTokens; ++m) {
        if (m >= M) break;
        float xf[8];
        load4(x + m * K + 8 * c, xf);
        load4(x + m * K + 8 * c + 4, xf + 4);
        float d = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) d += xf[i] * q[i];
        acc[m] += sc * d;
      }
    }
  }
  for (int64_t j = words * 4 + lane; j < K / 2; j += 32) {
    const uint32_t b = row[j];
    const int64_t k = 2 * j, g = k / gs;  // k + 1 is in the same group: gs is even
    const float lo = (float(b & 15u) - float(z[g])) * s[g];
    const float hi = (float(b >> 4) - float(z[g])) * s[g];
#pragma unroll
    for (int m = 0; m < kMaxTokens; ++m)
      if (m < M) acc[m] += to_f32(x[m * K + k]) * lo + to_f32(x[m * K + k + 1]) * hi;
  }
  store_row(acc, M, n, w.N, bias, y);
}

// out[r, :] = W'[n0 + r, :] for r < rows; one thread per packed byte.
template <class T>
__global__ void dequantize_rows_kernel(QuantMatrix w, int64_t n0, int64_t rows,
                                       T* __restrict__ out) {
  const int64_t K = w.K, row_bytes = w.int4 ? K / 2 : K, total = rows * row_bytes;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / row_bytes, j = i - r * row_bytes, n = n0 + r;
    if (!w.int4) {
      const float q = float(static_cast<const int8_t*>(w.q)[n * K + j]);
      out[r * K + j] = from_f32<T>(q * w.scales[n]);
      continue;
    }
    const int64_t G = (K + w.group_size - 1) / w.group_size, g = n * G + 2 * j / w.group_size;
    const uint32_t b = static_cast<const uint8_t*>(w.q)[n * row_bytes + j];
    const float zf = float(w.zeros[g]), sc = w.scales[g];
    out[r * K + 2 * j] = from_f32<T>((float(b & 15u) - zf) * sc);
    out[r * K + 2 * j + 1] = from_f32<T>((float(b >> 4) - zf) * sc);
  }
}

template <class Y>
__global__ void add_bias_rows_kernel(Y* __restrict__ y, const float* __restrict__ bias,
                                     int64_t M, int64_t N) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < M * N;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = from_f32<Y>(to_f32(y[i]) + bias[i % N]);
}

template <class T, class Y>
void launch_gemv(const void* x, int64_t M, const QuantMatrix& w, const float* bias, void* y,
                 cudaStream_t stream) {
  const unsigned blocks = unsigned((w.N + kWarpsPerBlock - 1) / kWarpsPerBlock);
  // Word loads need 16-byte aligned x and weights (a view into the middle of a buffer may
  // not be; such x goes byte by byte).
  const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(w.q) % 16 == 0;
  if (w.int4)
    int4_gemv_kernel<T, Y><<<blocks, kWarpsPerBlock * 32, 0, stream>>>(
        static_cast<const T*>(x), int(M), w, aligned, bias, static_cast<Y*>(y));
  else
    int8_gemv_kernel<T, Y><<<blocks, kWarpsPerBlock * 32, 0, stream>>>(
        static_cast<const T*>(x), int(M), w, aligned, bias, static_cast<Y*>(y));
  check_launch(w.int4 ? "int4_gemv_kernel" : "int8_gemv_kernel");
}

cudaDataType_t cublas_type(DType t) {
  return t == DType::F32 ? CUDA_R_32F : t == DType::F16 ? CUDA_R_16F : CUDA_R_16BF;
}

// Weight rows per dequantized block (quant_scratch_rows in quant_matmul.h).
int64_t block_rows(const QuantMatrix& w, size_t elem, size_t bytes) {
  return quant_scratch_rows(w.N, w.K, elem, bytes);
}

}  // namespace

size_t quant_scratch_bytes(const QuantMatrix& w, DType dtype) {
  const size_t elem = dtype_size(dtype);
  return size_t(block_rows(w, elem, kQuantScratchMaxBytes)) * size_t(w.K) * elem;
}

void quant_linear_cuda(cublasHandle_t handle, const void* x, DType x_dtype, int64_t M,
                       const QuantMatrix& w, const float* bias, void* y, DType y_dtype,
                       void* scratch, size_t scratch_bytes, cudaStream_t stream) {
  if (w.int4 && (w.K % 2 != 0 || w.group_size <= 0 || w.group_size % 2 != 0))
    throw std::invalid_argument("quant linear: int4 needs an even K and group size");
  if (y_dtype != DType::F32 && y_dtype != x_dtype)
    throw std::invalid_argument(std::string("quant linear: output dtype ") +
                                dtype_name(y_dtype) + " with x " + dtype_name(x_dtype));
  if (M == 0 || w.N == 0) return;
  if (M <= kQuantGemvMaxTokens) {
    dispatch_float(x_dtype, "quant linear", [&](auto tag) {
      using T = decltype(tag);
      if (y_dtype == DType::F32) launch_gemv<T, float>(x, M, w, bias, y, stream);
      else launch_gemv<T, T>(x, M, w, bias, y, stream);
    });
    return;
  }
  const size_t elem = dtype_size(x_dtype), y_elem = dtype_size(y_dtype);
  const int64_t rows = block_rows(w, elem, scratch_bytes);
  if (scratch == nullptr || size_t(rows) * size_t(w.K) * elem > scratch_bytes)
    throw std::invalid_argument("quant linear: scratch of " + std::to_string(scratch_bytes) +
                                " bytes is smaller than one weight row");
  const float alpha = 1.0f, beta = 0.0f;
  for (int64_t n0 = 0; n0 < w.N; n0 += rows) {
    const int64_t nr = std::min(rows, w.N - n0);
    const int64_t bytes_per_row = w.int4 ? w.K / 2 : w.K;
    dispatch_float(x_dtype, "quant dequantize", [&](auto tag) {
      using T = decltype(tag);
      dequantize_rows_kernel<T><<<grid_for(nr * bytes_per_row, 256), 256, 0, stream>>>(
          w, n0, nr, static_cast<T*>(scratch));
    });
    check_launch("dequantize_rows_kernel");
    // Column-major: C[nr, M] (ld N, starting at column n0 of y's rows) = scratch^T x.
    check_cublas(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, int(nr), int(M), int(w.K),
                              &alpha, scratch, cublas_type(x_dtype), int(w.K), x,
                              cublas_type(x_dtype), int(w.K), &beta,
                              static_cast<char*>(y) + size_t(n0) * y_elem,
                              cublas_type(y_dtype), int(w.N), CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx (quantized weight)");
  }
  if (bias == nullptr) return;
  dispatch_float(y_dtype, "quant linear bias", [&](auto tag) {
    using Y = decltype(tag);
    add_bias_rows_kernel<Y><<<grid_for(M * w.N, 256), 256, 0, stream>>>(static_cast<Y*>(y),
                                                                       bias, M, w.N);
  });
  check_launch("add_bias_rows_kernel");
}

}  // namespace tessera
