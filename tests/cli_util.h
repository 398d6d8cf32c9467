// Running the real `tessera` binary from tests.
#pragma once
#include <string>
#include <vector>

namespace tessera::test {

struct CliRun {
  int code = -1;     // exit code (-1: killed by a signal)
  std::string out;   // stdout
  std::string err;   // stderr
};

CliRun run_tessera(const std::vector<std::string>& args);
std::string last_line(const std::string& s);

}  // namespace tessera::test
