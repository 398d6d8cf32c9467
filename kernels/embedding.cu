// Embedding gather, row and column gathers and dtype conversion on the GPU (CPU twins:
// embedding_cpu.cpp, CpuBackend::gather_rows, gather_columns_cpu, convert_to_f32).
#include "kernels/cuda_util.cuh"
#include "kernels/embedding_cuda.h"

namespace tessera {
namespace {

using namespace tessera::cuda;

// ---- kernels ----

// One block per token; threads stride over the hidden dimension.
template <class T>
__global__ void embedding_kernel(const T* __restrict__ table, int64_t vocab_local, int64_t hidden,
                                 int64_t vocab_begin, const int32_t* __restrict__ ids,
                                 float* __restrict__ out) {
  const int64_t t = blockIdx.x;
  const int64_t row = int64_t(ids[t]) - vocab_begin;
  float* o = out + t * hidden;
  if (row < 0 || row >= vocab_local) {
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) o[j] = 0.0f;
    return;
  }
  const T* src = table + row * hidden;
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) o[j] = to_f32(src[j]);
}

// Rows copied as 16-bit words (every row of a float tensor is a whole number of them).
__global__ void gather_rows_kernel(const uint16_t* __restrict__ x, int64_t row_words,
                                   const int32_t* __restrict__ idx, uint16_t* __restrict__ out) {
  const int64_t i = blockIdx.x;
  const uint16_t* src = x + int64_t(idx[i]) * row_words;
  for (int64_t j = threadIdx.x; j < row_words; j += blockDim.x) out[i * row_words + j] = src[j];
}

// Grid-stride over out's M * J elements (T: the element's bits; -1 columns are zero bits).
template <class T>
__global__ void gather_columns_kernel(const T* __restrict__ x, int64_t M, int64_t K,
                                      const int32_t* __restrict__ idx, int64_t J,
                                      T* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < M * J;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = i / J;
    const int32_t c = idx[i - m * J];
    out[i] = c < 0 ? T(0) : x[m * K + c];
  }
}

template <class S, class D>
__global__ void convert_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = from_f32<D>(to_f32(src[i]));
}

}  // namespace

// ---- launchers ----

void embedding_cuda(const void* table, DType dtype, int64_t vocab_local, int64_t hidden,
                    int64_t vocab_begin, const int32_t* ids, int64_t n, float* out,
                    cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float(dtype, "embedding", [&](auto tag) {
    using T = decltype(tag);
    embedding_kernel<T><<<unsigned(n), 256, 0, stream>>>(static_cast<const T*>(table), vocab_local,
                                                         hidden, vocab_begin, ids, out);
  });
  check_launch("embedding_kernel");
}

void gather_rows_cuda(const void* x, int64_t row_bytes, const int32_t* idx, int64_t n, void* out,
                      cudaStream_t stream) {
  if (n == 0) return;
  if (row_bytes % 2 != 0) throw std::invalid_argument("gather_rows: odd row size");
  gather_rows_kernel<<<unsigned(n), 256, 0, stream>>>(static_cast<const uint16_t*>(x),
                                                      row_bytes / 2, idx,
                                                      static_cast<uint16_t*>(out));
  check_launch("gather_rows_kernel");
}

void gather_columns_cuda(const void* x, int64_t elem_bytes, int64_t M, int64_t K,
                         const int32_t* idx, int64_t J, void* out, cudaStream_t stream) {
  if (M == 0 || J == 0) return;
  const int64_t n = M * J;
  if (elem_bytes == 4)
    gather_columns_kernel<uint32_t><<<grid_for(n, 256), 256, 0, stream>>>(
        static_cast<const uint32_t*>(x), M, K, idx, J, static_cast<uint32_t*>(out));
  else if (elem_bytes == 2)
    gather_columns_kernel<uint16_t><<<grid_for(n, 256), 256, 0, stream>>>(
        static_cast<const uint16_t*>(x), M, K, idx, J, static_cast<uint16_t*>(out));
  else
    throw std::invalid_argument("gather_columns: element size must be 2 or 4 bytes");
  check_launch("gather_columns_kernel");
}

void convert_cuda(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n,
                  cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float(src_dtype, "convert", [&](auto s) {
    dispatch_float(dst_dtype, "convert", [&](auto d) {
      using S = decltype(s);
      using D = decltype(d);
      convert_kernel<S, D><<<grid_for(n, 256), 256, 0, stream>>>(static_cast<const S*>(src),
                                                                  static_cast<D*>(dst), n);
    });
  });
  check_launch("convert_kernel");
}

}  // namespace tessera
