// Tensor: a typed, contiguous, row-major view of host or device memory (up to 4 dims).
// `storage` keeps the memory alive (an mmapped file, a host vector, a device allocation);
// copies of a Tensor share it. A Tensor never owns more than one allocation.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "runtime/dtype.h"

namespace tessera {

enum class Device : uint8_t { CPU, CUDA };

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  int ndim = 0;
  std::array<int64_t, 4> shape{0, 0, 0, 0};
  std::shared_ptr<void> storage;

  bool empty() const { return data == nullptr; }
  int64_t dim(int i) const { return shape[size_t(i < 0 ? ndim + i : i)]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[size_t(i)];
    return ndim == 0 ? 0 : n;
  }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  // Elements of one row: the product of all dims but the first.
  int64_t row_size() const { return ndim <= 1 ? numel() : numel() / shape[0]; }

  template <class T> T* ptr() const { return static_cast<T*>(data); }

  // A view of rows [r0, r1) along dim 0 (shares storage).
  Tensor rows(int64_t r0, int64_t r1) const {
    Tensor t = *this;
    t.data = static_cast<char*>(data) + size_t(r0 * row_size()) * dtype_size(dtype);
    t.shape[0] = r1 - r0;
    return t;
  }
  // Same memory, another shape with the same number of elements.
  Tensor reshaped(std::initializer_list<int64_t> dims) const;
  std::string shape_str() const;
};

Tensor make_tensor_view(void* data, DType dtype, std::initializer_list<int64_t> dims,
                        std::shared_ptr<void> storage = nullptr, Device dev = Device::CPU);

// Host buffers of at least this size are 2 MiB aligned and asked to be transparent huge
// pages (madvise MADV_HUGEPAGE; tensor.cpp says why).
constexpr size_t kHugePageBytes = size_t(2) << 20;

// Uninitialised host memory of `bytes` (64-byte aligned; see kHugePageBytes), freed with
// the last copy of the pointer.
std::shared_ptr<void> host_alloc(size_t bytes);

// Allocates an uninitialised host tensor (host_alloc).
Tensor host_tensor(DType dtype, std::initializer_list<int64_t> dims);

}  // namespace tessera
