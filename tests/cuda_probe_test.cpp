// The CUDA toolchain: the library links cudart, cuBLAS and NCCL, and probing a machine
// without a GPU reports that instead of crashing.
#include <gtest/gtest.h>

#ifdef TESSERA_HAVE_CUDA
#include "runtime/cuda_probe.h"

TEST(CudaProbe, ReportsVersionsAndDevicesWithoutCrashing) {
  tessera::CudaInfo info = tessera::probe_cuda();
  EXPECT_GE(info.runtime_version, 12000);
  EXPECT_GT(info.nccl_version, 0);
  if (info.device_count == 0) {
    EXPECT_FALSE(info.error.empty()) << "no device and no reason";
    GTEST_SKIP() << "no GPU visible: " << info.error;
  }
  EXPECT_FALSE(info.device_name.empty());
  EXPECT_GT(info.cublas_version, 0);
}
#else
TEST(CudaProbe, ReportsVersionsAndDevicesWithoutCrashing) {
  GTEST_SKIP() << "built without CUDA (TESSERA_CUDA=OFF)";
}
#endif
