#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include "runtime/cuda_driver_message.h"
#include "runtime/cuda_probe.h"

namespace tessera {

CudaInfo probe_cuda() {
  CudaInfo info;
  cudaRuntimeGetVersion(&info.runtime_version);
  cudaDriverGetVersion(&info.driver_version);
  ncclGetVersion(&info.nccl_version);
  cudaError_t err = cudaGetDeviceCount(&info.device_count);
  if (err != cudaSuccess) {
    info.device_count = 0;
    info.error = describe_cuda_unavailable(int(err), cudaGetErrorString(err),
                                           info.driver_version, info.runtime_version);
    cudaGetLastError();  // clear the sticky error
    return info;
  }
  if (info.device_count > 0) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) info.device_name = prop.name;
  }
  // The library's version without a handle: cublasCreate would make a context on device 0
  // that lasts to the process's end (every rank of `mpirun` would hold one on GPU 0, outside
  // the memory plan; `--device cuda:1` too).
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
    info.cublas_version = major * 10000 + minor * 100 + patch;  // cublasGetVersion's encoding
  return info;
}

}  // namespace tessera
