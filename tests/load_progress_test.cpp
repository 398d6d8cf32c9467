// Weight-loading progress on stderr: without a terminal (as here) a log line at each quarter,
// none on ranks other than 0 and none for a load quicker than the quiet period.
#include <gtest/gtest.h>

#include <string>

#include "runtime/load_progress.h"

namespace tessera::test {
namespace {

std::string run_steps(int64_t steps, bool enabled, double quiet_seconds) {
  ::testing::internal::CaptureStderr();
  LoadProgress p(steps, enabled, quiet_seconds);
  for (int64_t i = 1; i <= steps; ++i) p.step(uint64_t(i) << 28);  // 0.25 GiB per step
  return ::testing::internal::GetCapturedStderr();
}

TEST(LoadProgress, LogLinesAtEachQuarterWithoutATerminal) {
  const std::string out = run_steps(30, true, 0.0);
  EXPECT_NE(out.find("loading weights: 25% (2.00 GiB"), std::string::npos) << out;  // step 8 of 30
  EXPECT_NE(out.find("loading weights: 100% (7.50 GiB"), std::string::npos) << out;
  int lines = 0;
  for (char c : out) lines += c == '\n';
  EXPECT_EQ(lines, 4) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << "a bar was drawn without a terminal";
}

TEST(LoadProgress, SilentOnOtherRanksAndForQuickLoads) {
  EXPECT_EQ(run_steps(30, false, 0.0), "");
  EXPECT_EQ(run_steps(30, true, 3600.0), "");
}

}  // namespace
}  // namespace tessera::test
