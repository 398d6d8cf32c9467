// host_alloc / host_tensor: small buffers 64-byte aligned, large ones (weights, KV cache) on
// a 2 MiB boundary and marked for transparent huge pages (VmFlags "hg" in /proc/self/smaps),
// where the kernel has THP at all.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "runtime/tensor.h"

namespace tessera::test {
namespace {

// The VmFlags line of the mapping that holds `p`, or "" if none does.
std::string vm_flags_of(const void* p) {
  std::ifstream f("/proc/self/smaps");
  std::string line;
  bool inside = false;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  while (std::getline(f, line)) {
    unsigned long lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
      inside = a >= lo && a < hi;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}

TEST(HostAlloc, SmallBuffersAre64ByteAligned) {
  for (size_t bytes : {size_t(0), size_t(1), size_t(100), size_t(1) << 20}) {
    std::shared_ptr<void> p = host_alloc(bytes);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p.get()) % 64, 0u) << bytes;
    std::memset(p.get(), 1, bytes);  // usable (ASan checks the size)
  }
}

TEST(HostAlloc, LargeBuffersAskForHugePages) {
  const size_t bytes = 3 * kHugePageBytes + 12345;  // not a multiple of 2 MiB
  std::shared_ptr<void> p = host_alloc(bytes);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p.get()) % kHugePageBytes, 0u);
  std::memset(p.get(), 1, bytes);
  if (!std::filesystem::exists("/sys/kernel/mm/transparent_hugepage/enabled"))
    GTEST_SKIP() << "this kernel has no transparent huge pages";
  const std::string flags = vm_flags_of(p.get());
  EXPECT_NE(flags.find(" hg"), std::string::npos) << flags;
  // A host tensor of that size is the same kind of memory.
  Tensor t = host_tensor(DType::F32, {int64_t(bytes / 4)});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % kHugePageBytes, 0u);
  EXPECT_NE(vm_flags_of(t.data).find(" hg"), std::string::npos);
}

}  // namespace
}  // namespace tessera::test
