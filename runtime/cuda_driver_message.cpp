#include "runtime/cuda_driver_message.h"

namespace tessera {
namespace {

// cudaError_t values (driver_types.h); stable across CUDA releases.
constexpr int kInsufficientDriver = 35, kNoDevice = 100, kSystemDriverMismatch = 803,
              kCompatNotSupportedOnDevice = 804;

std::string version(int v) {  // 13000 -> "13.0"
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

// The oldest Linux driver branch of each CUDA major version (NVIDIA's CUDA toolkit release
// notes, "minor version compatibility"): 12.x needs r525, 13.x needs r580.
std::string driver_needed(int runtime_version) {
  const int major = runtime_version / 1000;
  if (major == 12) return " (a Linux driver of release 525 or later)";
  if (major == 13) return " (a Linux driver of release 580 or later)";
  return "";
}

}  // namespace

std::string describe_cuda_unavailable(int error_code, const std::string& error_text,
                                      int driver_version, int runtime_version) {
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
