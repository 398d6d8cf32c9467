#include "tests/test_util.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

namespace fs = std::filesystem;

namespace tessera::test {

std::string testdata_dir() {
  const char* env = std::getenv("TESSERA_TESTDATA");
  if (env && *env) return env;
  return TESSERA_TESTDATA_DEFAULT;
}

bool have_testdata() {
  if (fs::is_directory(fs::path(testdata_dir()) / "models")) return true;
  const char* ci = std::getenv("CI");
  if (ci && std::string(ci) == "true")
    ADD_FAILURE() << "test data missing at " << testdata_dir() << " and CI=true";
  return false;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

namespace {
std::mutex g_mu;
std::vector<fs::path>& temp_dirs() {
  static std::vector<fs::path> dirs;
  static bool registered = false;
  if (!registered) {
    registered = true;
    std::atexit([] {
      std::error_code ec;
      for (auto& d : temp_dirs()) fs::remove_all(d, ec);
    });
  }
  return dirs;
}
}  // namespace

std::string make_temp_dir(const std::string& tag) {
  std::lock_guard<std::mutex> lock(g_mu);
  std::string tmpl = (fs::temp_directory_path() / ("tessera-" + tag + "-XXXXXX")).string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
  temp_dirs().push_back(buf.data());
  return buf.data();
}

}  // namespace tessera::test
