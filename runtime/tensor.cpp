#include "runtime/tensor.h"

#include <cstdlib>
#include <new>
#include <stdexcept>

namespace tessera {

static void set_shape(Tensor& t, std::initializer_list<int64_t> dims) {
  if (dims.size() > 4) throw std::invalid_argument("tensor rank above 4");
  t.ndim = int(dims.size());
  t.shape = {0, 0, 0, 0};
  size_t i = 0;
  for (int64_t d : dims) t.shape[i++] = d;
}

Tensor Tensor::reshaped(std::initializer_list<int64_t> dims) const {
  Tensor t = *this;
  set_shape(t, dims);
  if (t.numel() != numel())
    throw std::invalid_argument("reshape " + shape_str() + " -> " + t.shape_str());
  return t;
}

std::string Tensor::shape_str() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[size_t(i)]);
  return s + "]";
}

Tensor make_tensor_view(void* data, DType dtype, std::initializer_list<int64_t> dims,
                        std::shared_ptr<void> storage, Device dev) {
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.device = dev;
  set_shape(t, dims);
  t.storage = std::move(storage);
  return t;
}

Tensor host_tensor(DType dtype, std::initializer_list<int64_t> dims) {
  Tensor t;
  t.dtype = dtype;
  set_shape(t, dims);
  size_t bytes = (t.nbytes() + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes ? bytes : 64);
  if (!p) throw std::bad_alloc();
  t.data = p;
  t.storage = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  return t;
}

}  // namespace tessera
