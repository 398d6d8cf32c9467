// Device selection, device/pinned memory with clear out-of-memory errors, and small device
// utilities for the CUDA backend and its tests.
#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "kernels/cuda_util.cuh"
#include "kernels/embedding.h"
#include "kernels/sampling_cuda.h"
#include "runtime/backend_cuda.h"
#include "runtime/cuda_driver_message.h"
#include "runtime/error.h"

namespace tessera {
namespace {

std::string mib(size_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / (1024.0 * 1024.0));
  return buf;
}

}  // namespace

CudaDeviceInfo cuda_select_device(int device) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    throw UserError("no CUDA device: " +
                    describe_cuda_unavailable(int(e), cudaGetErrorString(e), driver, runtime));
  }
  if (count == 0) throw UserError("no CUDA device: the driver reports no GPU");
  if (device < 0 || device >= count)
    throw UserError("no CUDA device: cuda:" + std::to_string(device) + " requested but " +
                    std::to_string(count) + " GPU(s) are visible");
  cuda::check(cudaSetDevice(device), "cudaSetDevice");
  cudaDeviceProp prop{};
  cuda::check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  CudaDeviceInfo info;
  info.device = device;
  info.name = prop.name;
  info.major = prop.major;
  info.minor = prop.minor;
  info.sm_count = prop.multiProcessorCount;
  cuda::check(cudaMemGetInfo(&info.free_bytes, &info.total_bytes), "cudaMemGetInfo");
  cudaDriverGetVersion(&info.driver_version);
  return info;
}

std::shared_ptr<void> cuda_device_alloc(size_t bytes, const std::string& what) {
  void* p = nullptr;
  if (bytes == 0) bytes = 16;  // a valid, distinct pointer for empty tensors
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw UserError("CUDA out of memory: " + what + " needs " + mib(bytes) + " (" +
                    std::to_string(bytes) + " bytes) but only " + mib(free_b) + " of " +
                    mib(total_b) + " are free on the GPU");
  }
  cuda::check(e, "cudaMalloc");
  return std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
}

std::shared_ptr<void> cuda_pinned_alloc(size_t bytes) {
  void* p = nullptr;
  cuda::check(cudaMallocHost(&p, bytes == 0 ? 16 : bytes), "cudaMallocHost");
  return std::shared_ptr<void>(p, [](void* q) { cudaFreeHost(q); });
}

Tensor cuda_copy_to_device(const Tensor& host) {
  Tensor t = host;
  t.storage = cuda_device_alloc(host.nbytes(), "a " + host.shape_str() + " tensor");
  t.data = t.storage.get();
  t.device = Device::CUDA;
  if (host.nbytes() > 0)
    cuda::check(cudaMemcpy(t.data, host.data, host.nbytes(), cudaMemcpyHostToDevice),
                "cudaMemcpy to device");
  // From pageable memory the DMA may still run after cudaMemcpy returns; other streams
  // (the backend's is non-blocking) must see the data.
  cuda::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  return t;
}

Tensor cuda_host_resident_copy(const Tensor& host, DType dtype, const std::string& what) {
  Tensor t = host;
  t.dtype = dtype;
  void* pinned = nullptr;
  // Portable: every GPU of the process may read it; mapped: kernels address it directly.
  const cudaError_t e =
      cudaHostAlloc(&pinned, t.nbytes() == 0 ? 16 : t.nbytes(),
                    cudaHostAllocPortable | cudaHostAllocMapped);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    throw UserError("cannot pin " + mib(t.nbytes()) + " of host memory for " + what +
                    " (the host's memory or the container's locked-memory limit is too "
                    "small)");
  }
  cuda::check(e, "cudaHostAlloc");
  std::shared_ptr<void> owner(pinned, [](void* q) { cudaFreeHost(q); });
  convert_cpu(host.data, host.dtype, pinned, dtype, host.numel());
  // With unified addressing this is `pinned` itself; asked for all the same, as documented.
  void* device_view = nullptr;
  cuda::check(cudaHostGetDevicePointer(&device_view, pinned, 0), "cudaHostGetDevicePointer");
  t.storage = owner;
  t.data = device_view;
  t.device = Device::CUDA;
  return t;
}

bool cuda_pointer_is_host_memory(const void* p) {
  cudaPointerAttributes a{};
  cuda::check(cudaPointerGetAttributes(&a, p), "cudaPointerGetAttributes");
  return a.type == cudaMemoryTypeHost;
}

void cuda_fill_bytes(const Tensor& t, uint8_t byte) {
  if (t.device != Device::CUDA) throw std::invalid_argument("cuda_fill_bytes: not a CUDA tensor");
  cuda::check(cudaMemset(t.data, byte, t.nbytes()), "cudaMemset");
  cuda::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

int32_t cuda_sample(const Tensor& logits, const SamplingParams& p, double u) {
  if (logits.device != Device::CUDA || logits.dtype != DType::F32 || logits.ndim != 1)
    throw std::invalid_argument("cuda_sample: expected one row of F32 logits on the GPU");
  cuda::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  return sample_cuda(logits.ptr<float>(), logits.numel(), p, u, nullptr);
}

}  // namespace tessera
