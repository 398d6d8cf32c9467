// Shared helpers for tests: where the test data lives, and reading golden files.
#pragma once
#include <string>

namespace tessera::test {

// The test data directory: $TESSERA_TESTDATA, else the CMake default (../shared/testdata).
std::string testdata_dir();

// True when the test data is present. When it is missing, fails the test under CI=true and
// returns false otherwise, so the caller can GTEST_SKIP with a message.
bool have_testdata();

std::string read_file(const std::string& path);

// A fresh empty directory under the system temp dir, removed at process exit.
std::string make_temp_dir(const std::string& tag);

}  // namespace tessera::test

// Use at the start of a test that needs ../shared/testdata.
#define TESSERA_REQUIRE_TESTDATA()                                                   \
  do {                                                                               \
    if (!::tessera::test::have_testdata())                                           \
      GTEST_SKIP() << "test data not found at " << ::tessera::test::testdata_dir()   \
                   << " (set TESSERA_TESTDATA)";                                     \
  } while (0)
