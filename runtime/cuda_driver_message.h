// Why the CUDA runtime found no usable GPU, in words a user can act on. Plain C++ (no CUDA
// headers) so that every branch is tested on machines without a GPU; inline because the CUDA
// library (runtime/cuda_probe.cu, cuda_memory.cu) is linked after the core one.
#pragma once
#include <string>

namespace tessera {
namespace cuda_driver_detail {

// cudaError_t values (driver_types.h); stable across CUDA releases.
constexpr int kInsufficientDriver = 35, kNoDevice = 100, kSystemDriverMismatch = 803,
              kCompatNotSupportedOnDevice = 804;

inline std::string version(int v) {  // 13000 -> "13.0"
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

// The oldest Linux driver branch of each CUDA major version (NVIDIA's CUDA toolkit release
// notes, "minor version compatibility"): 12.x needs r525, 13.x needs r580.
inline std::string driver_needed(int runtime_version) {
  const int major = runtime_version / 1000;
  if (major == 12) return " (a Linux driver of release 525 or later)";
  if (major == 13) return " (a Linux driver of release 580 or later)";
  return "";
}

}  // namespace cuda_driver_detail

// error_code: cudaGetDeviceCount's cudaError_t as an int; error_text: cudaGetErrorString of
// it; driver_version: cudaDriverGetVersion's (0 when no driver is loaded, e.g. 12020 for
// 12.2); runtime_version: cudaRuntimeGetVersion's (e.g. 13000).
inline std::string describe_cuda_unavailable(int error_code, const std::string& error_text,
                                             int driver_version, int runtime_version) {
  using namespace cuda_driver_detail;
  // Without libcuda the runtime says "driver version is insufficient", which sends people
  // to update a driver that is not there.
  if (driver_version == 0 && (error_code == kInsufficientDriver || error_code == kNoDevice))
    return "no NVIDIA driver is loaded (libcuda.so.1 not found): install the NVIDIA driver, or "
           "in a container run it with the GPU passed through (e.g. docker --gpus all)";
  if (error_code == kInsufficientDriver)
    return "the NVIDIA driver supports CUDA " + version(driver_version) +
           " but this tessera was built with CUDA " + version(runtime_version) +
           ": update the driver" + driver_needed(runtime_version) +
           ", install CUDA's forward-compatibility package (cuda-compat; data-center GPUs "
           "such as the T4, A100, H100), or build tessera with an older CUDA toolkit";
  if (error_code == kNoDevice)
    return "the NVIDIA driver reports no GPU (is CUDA_VISIBLE_DEVICES empty or wrong?)";
  if (error_code == kSystemDriverMismatch)
    return "the NVIDIA kernel module and its user-space library differ in version (" +
           error_text + "): reboot, or reinstall the driver";
  if (error_code == kCompatNotSupportedOnDevice)
    return "CUDA's forward-compatibility package does not support this GPU (" + error_text +
           "): update the driver instead";
  return error_text;
}

}  // namespace tessera
