#include "tests/cuda_test_util.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "kernels/embedding.h"

#ifdef TESSERA_HAVE_CUDA
#include "runtime/backend_cuda.h"
#include "runtime/cuda_probe.h"
#endif

namespace tessera::test {

std::string cuda_unavailable_reason() {
#ifdef TESSERA_HAVE_CUDA
  static const std::string why = [] {
    const CudaInfo info = probe_cuda();
    if (info.device_count > 0) return std::string();
    return "no GPU visible (" + (info.error.empty() ? std::string("no device") : info.error) + ")";
  }();
  return why;
#else
  return "built without CUDA (TESSERA_CUDA=OFF)";
#endif
}

std::vector<float> random_values(size_t n, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<float> round_to(std::vector<float> v, DType dt) {
  for (float& x : v) {
    if (dt == DType::F16) x = f16_to_f32(f32_to_f16(x));
    if (dt == DType::BF16) x = bf16_to_f32(f32_to_bf16(x));
  }
  return v;
}

double rel_error(const std::vector<float>& gpu, const std::vector<float>& cpu) {
  if (gpu.size() != cpu.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double d = double(gpu[i]) - double(cpu[i]);
    num += d * d;
    den += double(cpu[i]) * double(cpu[i]);
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

Tensor host_from(const std::vector<float>& v, DType dt, std::initializer_list<int64_t> dims) {
  Tensor t = host_tensor(dt, dims);
  for (size_t i = 0; i < v.size() && int64_t(i) < t.numel(); ++i) {
    switch (dt) {
      case DType::F32: t.ptr<float>()[i] = v[i]; break;
      case DType::F16: t.ptr<uint16_t>()[i] = f32_to_f16(v[i]); break;
      case DType::BF16: t.ptr<uint16_t>()[i] = f32_to_bf16(v[i]); break;
      case DType::I32: t.ptr<int32_t>()[i] = int32_t(v[i]); break;
      default: throw std::invalid_argument("host_from: dtype");
    }
  }
  return t;
}

Tensor host_i32(const std::vector<int32_t>& v) {
  Tensor t = host_tensor(DType::I32, {int64_t(v.size())});
  if (!v.empty()) std::memcpy(t.data, v.data(), v.size() * 4);
  return t;
}

std::vector<float> values_of(Backend& b, const Tensor& t) {
  std::vector<char> raw(t.nbytes());
  b.download(t, raw.data());
  std::vector<float> out(size_t(t.numel()));
  if (t.dtype == DType::I32) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = float(reinterpret_cast<int32_t*>(raw.data())[i]);
  } else {
    convert_to_f32(raw.data(), t.dtype, t.numel(), out.data());
  }
  return out;
}

Backend& cpu_backend() {
  static Backend* b = make_cpu_backend(0).release();  // lives to the end of the process
  return *b;
}

#ifdef TESSERA_HAVE_CUDA
Backend& gpu_backend(DType dt) {
  static Backend* b[3] = {nullptr, nullptr, nullptr};
  const int i = dt == DType::F16 ? 0 : dt == DType::BF16 ? 1 : 2;
  if (b[i] == nullptr) b[i] = make_cuda_backend(0, dt).release();
  return *b[i];
}

bool gpu_computes_in(DType dt) {
  const DType got = gpu_backend(dt).compute_dtype();
  if (got != dt)
    std::printf("[   NOTE   ] %s pass not run: this GPU computes in %s\n", dtype_name(dt),
                dtype_name(got));
  return got == dt;
}

Tensor gpu_from(const std::vector<float>& v, DType dt, std::initializer_list<int64_t> dims) {
  return cuda_copy_to_device(host_from(v, dt, dims));
}
Tensor gpu_i32(const std::vector<int32_t>& v) { return cuda_copy_to_device(host_i32(v)); }
Tensor gpu_poisoned(Backend& gpu, DType dt, std::initializer_list<int64_t> dims) {
  Tensor t = gpu.alloc(dt, dims);
  cuda_fill_bytes(t, 0xff);  // NaN in F32, F16 and BF16
  return t;
}
#endif

}  // namespace tessera::test
