// The reason given when the CUDA runtime finds no usable GPU (runtime/cuda_driver_message.h):
// each cudaError_t case in words a user can act on; and, in a CUDA build on a machine
// without the NVIDIA driver (CI), the message the CLI really prints.
#include <gtest/gtest.h>

#include <string>

#include "runtime/cuda_driver_message.h"
#include "tests/cli_util.h"
#include "tests/test_util.h"

#ifdef TESSERA_HAVE_CUDA
#include "runtime/cuda_probe.h"
#endif

namespace tessera::test {
namespace {

constexpr int kInsufficientDriver = 35, kNoDevice = 100;
const std::string kInsufficientText = "CUDA driver version is insufficient for CUDA runtime version";

TEST(CudaDriverMessage, NoDriverAtAllIsNotCalledAnOldOne) {
  const std::string m = describe_cuda_unavailable(kInsufficientDriver, kInsufficientText, 0, 13000);
  EXPECT_NE(m.find("no NVIDIA driver is loaded"), std::string::npos) << m;
  EXPECT_EQ(m.find("insufficient"), std::string::npos) << m;
  EXPECT_NE(describe_cuda_unavailable(kNoDevice, "no CUDA-capable device is detected", 0, 13000)
                .find("no NVIDIA driver is loaded"),
            std::string::npos);
}

TEST(CudaDriverMessage, OldDriverNamesBothVersionsAndTheDriverNeeded) {
  const std::string m =
      describe_cuda_unavailable(kInsufficientDriver, kInsufficientText, 12020, 13000);
  for (const char* part : {"supports CUDA 12.2", "built with CUDA 13.0", "release 580",
                           "cuda-compat"})
    EXPECT_NE(m.find(part), std::string::npos) << part << " not in: " << m;
  const std::string m12 =
      describe_cuda_unavailable(kInsufficientDriver, kInsufficientText, 11040, 12080);
  for (const char* part : {"supports CUDA 11.4", "built with CUDA 12.8", "release 525"})
    EXPECT_NE(m12.find(part), std::string::npos) << part << " not in: " << m12;
}

TEST(CudaDriverMessage, OtherCasesSayWhatToCheck) {
  EXPECT_NE(describe_cuda_unavailable(kNoDevice, "no CUDA-capable device is detected", 13000,
                                      13000)
                .find("CUDA_VISIBLE_DEVICES"),
            std::string::npos);
  const std::string mismatch = describe_cuda_unavailable(803, "system has unsupported display "
                                                         "driver / cuda driver combination",
                                                         13000, 13000);
  EXPECT_NE(mismatch.find("kernel module"), std::string::npos) << mismatch;
  EXPECT_NE(mismatch.find("unsupported display driver"), std::string::npos) << mismatch;
  EXPECT_NE(describe_cuda_unavailable(804, "forward compatibility was attempted on non "
                                      "supported HW", 12020, 13000)
                .find("does not support this GPU"),
            std::string::npos);
  EXPECT_EQ(describe_cuda_unavailable(999, "unknown error", 13000, 13000), "unknown error");
}

#ifdef TESSERA_HAVE_CUDA
// This machine's own case, through the probe and the CLI: CI has the CUDA toolkit but no
// driver, where the runtime itself says "driver version is insufficient".
TEST(CudaDriverMessage, CliOnAMachineWithoutTheDriverSaysSo) {
  const CudaInfo info = probe_cuda();
  if (info.device_count > 0 || info.driver_version != 0)
    GTEST_SKIP() << "this machine has an NVIDIA driver";
  EXPECT_NE(info.error.find("no NVIDIA driver is loaded"), std::string::npos) << info.error;
  const std::string model = testdata_dir() + "/models/TinyStories-656K";
  const CliRun cuda = run_tessera({"generate", "--model", model, "--prompt", "Once",
                                   "--max-tokens", "2", "--device", "cuda"});
  EXPECT_EQ(cuda.code, 2) << cuda.err;
  EXPECT_NE(cuda.err.find("no CUDA device: no NVIDIA driver is loaded"), std::string::npos)
      << cuda.err;
  const CliRun automatic = run_tessera({"generate", "--model", model, "--prompt", "Once",
                                        "--max-tokens", "2", "--device", "auto"});
  EXPECT_EQ(automatic.code, 0) << automatic.err;
  EXPECT_NE(automatic.err.find("no NVIDIA driver is loaded"), std::string::npos)
      << automatic.err;
}
#endif

}  // namespace
}  // namespace tessera::test
