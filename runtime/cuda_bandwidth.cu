// Device memory read bandwidth, measured with one streaming-read kernel: the numerator of
// the decode roofline on a GPU (tessera bench), like launcher/bandwidth.cpp on the host.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda_util.cuh"
#include "runtime/backend_cuda.h"

namespace tessera {
namespace {

// Reads n 16-byte words; the xor keeps the loads alive, the store practically never happens.
__global__ void read_kernel(const uint4* __restrict__ p, size_t n, unsigned* __restrict__ out) {
  unsigned acc = 0;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    const uint4 v = p[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) *out = acc;
}

}  // namespace

double cuda_measure_read_bandwidth() {
  int dev = 0;
  cuda::check(cudaGetDevice(&dev), "cudaGetDevice");
  int sms = 0;
  cuda::check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev),
              "cudaDeviceGetAttribute");
  size_t free_b = 0, total_b = 0;
  cuda::check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
  const size_t bytes = std::min(size_t(1) << 30, free_b / 4) & ~size_t(15);
  if (bytes < (size_t(1) << 20)) return 0;  // no room to measure
  std::shared_ptr<void> buf = cuda_device_alloc(bytes + 16, "the bandwidth probe");
  unsigned* out = reinterpret_cast<unsigned*>(static_cast<char*>(buf.get()) + bytes);
  cuda::check(cudaMemset(buf.get(), 1, bytes + 16), "cudaMemset");
  cudaEvent_t t0 = nullptr, t1 = nullptr;
  cuda::check(cudaEventCreate(&t0), "cudaEventCreate");
  cuda::check(cudaEventCreate(&t1), "cudaEventCreate");
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    cudaEventRecord(t0, nullptr);
    read_kernel<<<unsigned(sms * 8), 512, 0, nullptr>>>(static_cast<const uint4*>(buf.get()),
                                                         bytes / 16, out);
    cudaEventRecord(t1, nullptr);
    const cudaError_t e = cudaEventSynchronize(t1);
    if (e != cudaSuccess) {
      cudaEventDestroy(t0);
      cudaEventDestroy(t1);
      cuda::check(e, "the bandwidth probe");
    }
    float ms = 0;
    cudaEventElapsedTime(&ms, t0, t1);
    if (pass > 0 && ms > 0) best = std::max(best, double(bytes) / (double(ms) * 1e-3));
  }
  cudaEventDestroy(t0);
  cudaEventDestroy(t1);
  cuda::check(cudaGetLastError(), "read_kernel");
  return best;
}

}  // namespace tessera
