// The CUDA attention kernels' views of their arguments (kernels/attention_tiled.cu,
// kernels/attention_mma.cu): q, the cache rows (int8 codes dequantized) and the output with
// the split-K partials. Included by .cu files only.
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/cuda_util.cuh"

namespace tessera::cuda {

template <class T> struct QAccess {  // q [n, heads, d]
  const T* q;
  int64_t heads, d;
  __device__ float operator()(int64_t t, int64_t h, int64_t i) const {
    return to_f32(q[(t * heads + h) * d + i]);
  }
};

// A cache element as float: a float dtype converted, an I8 code times its row's scale.
template <class C> struct KvRead {
  const C *k_, *v_;
  const float *ks, *vs;  // I8 only
  int64_t d;
  __device__ float k(int64_t row, int64_t i) const {
    if constexpr (std::is_same_v<C, int8_t>) return float(k_[row * d + i]) * ks[row];
    else return to_f32(k_[row * d + i]);
  }
  __device__ float v(int64_t row, int64_t i) const {
    if constexpr (std::is_same_v<C, int8_t>) return float(v_[row * d + i]) * vs[row];
    else return to_f32(v_[row * d + i]);
  }
};

// out [n, heads * d]; partials: o [n, heads, splits, d] then (m, l) [n, heads, splits, 2].
template <class T> struct OutWrite {
  T* out;
  float* part;
  int64_t n, heads, d, splits;
  __device__ void write(int64_t t, int64_t h, int64_t i, float x) const {
    out[(t * heads + h) * d + i] = from_f32<T>(x);
  }
  __device__ void partial(int64_t t, int64_t h, int64_t z, int64_t i, float x) const {
    part[((t * heads + h) * splits + z) * d + i] = x;
  }
  __device__ void partial_ml(int64_t t, int64_t h, int64_t z, float m, float l) const {
    float* ml = part + n * heads * splits * d + ((t * heads + h) * splits + z) * 2;
    ml[0] = m;
    ml[1] = l;
  }
};

}  // namespace tessera::cuda
