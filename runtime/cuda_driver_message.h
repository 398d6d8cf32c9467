// Why the CUDA runtime found no usable GPU, in words a user can act on. Plain C++ (no CUDA
// headers) so that every branch is tested on machines without a GPU.
#pragma once
#include <string>

namespace tessera {

// error_code: cudaGetDeviceCount's cudaError_t as an int; error_text: cudaGetErrorString of
// it; driver_version: cudaDriverGetVersion's (0 when no driver is loaded, e.g. 12020 for
// 12.2); runtime_version: cudaRuntimeGetVersion's (e.g. 13000).
std::string describe_cuda_unavailable(int error_code, const std::string& error_text,
                                      int driver_version, int runtime_version);

}  // namespace tessera
