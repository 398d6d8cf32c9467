#include "tests/cli_util.h"

#include <sys/wait.h>

#include <cstdlib>

#include "tests/test_util.h"

namespace tessera::test {

static std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

CliRun run_tessera(const std::vector<std::string>& args) {
  const std::string dir = make_temp_dir("cli");
  std::string cmd = quote(TESSERA_BINARY);
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " </dev/null >" + dir + "/out 2>" + dir + "/err";
  CliRun r;
  const int status = std::system(cmd.c_str());
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(dir + "/out");
  r.err = read_file(dir + "/err");
  return r;
}

std::string last_line(const std::string& s) {
  const size_t end = s.find_last_not_of('\n');
  if (end == std::string::npos) return "";
  const size_t nl = s.rfind('\n', end);
  const size_t start = nl == std::string::npos ? 0 : nl + 1;
  return s.substr(start, end + 1 - start);
}

}  // namespace tessera::test
