#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include "runtime/cuda_probe.h"

namespace tessera {

CudaInfo probe_cuda() {
  CudaInfo info;
  cudaRuntimeGetVersion(&info.runtime_version);
  ncclGetVersion(&info.nccl_version);
  cudaError_t err = cudaGetDeviceCount(&info.device_count);
  if (err != cudaSuccess) {
    info.device_count = 0;
    info.error = cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error
    return info;
  }
  if (info.device_count > 0) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) info.device_name = prop.name;
    cublasHandle_t h = nullptr;
    if (cublasCreate(&h) == CUBLAS_STATUS_SUCCESS) {
      cublasGetVersion(h, &info.cublas_version);
      cublasDestroy(h);
    }
  }
  return info;
}

}  // namespace tessera
