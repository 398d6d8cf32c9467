// What the CUDA runtime, cuBLAS and NCCL report on this machine. Compiled only when the
// build has CUDA (TESSERA_HAVE_CUDA); it proves the toolchain links, and lets
// `--device auto` decide without crashing when there is no GPU or no driver.
#pragma once
#include <string>

namespace tessera {

struct CudaInfo {
  int device_count = 0;       // 0 when no GPU or no driver
  std::string error;          // why device_count is 0, if the runtime said so
  int runtime_version = 0;    // e.g. 13000
  int driver_version = 0;     // the CUDA version the driver supports, e.g. 12020; 0: none
  int cublas_version = 0;     // e.g. 130100 (major * 10000 + minor * 100 + patch)
  int nccl_version = 0;
  std::string device_name;    // device 0
};

CudaInfo probe_cuda();

}  // namespace tessera
