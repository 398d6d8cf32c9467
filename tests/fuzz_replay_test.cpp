// Every saved fuzz input, tests/fuzz/corpus/<target>/* (seeds, and inputs that once broke a
// target, kept as regressions), through its target (tests/fuzz/fuzz_targets.h): each must
// end in the documented rejection or pass the target's checks; another exception fails the
// test, a crash or sanitizer report ends its process. scripts/fuzz searches for new ones.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "tests/fuzz/fuzz_targets.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

namespace fs = std::filesystem;

fs::path corpus_dir(const std::string& target) {
  return fs::path(TESSERA_SOURCE_DIR) / "tests" / "fuzz" / "corpus" / target;
}

std::vector<fs::path> inputs_of(const std::string& target) {
  std::vector<fs::path> files;
  if (fs::is_directory(corpus_dir(target)))
    for (const auto& e : fs::directory_iterator(corpus_dir(target)))
      if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> target_names() {
  std::vector<std::string> names;
  for (const auto& t : fuzz::targets()) names.push_back(t.name);
  return names;
}

class FuzzReplay : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzReplay, SavedInputsEndInTheDocumentedRejectionOrPassTheChecks) {
  TESSERA_REQUIRE_TESTDATA();  // the targets read Qwen2.5's tokenizer and template
  const fuzz::Target* t = fuzz::find_target(GetParam());
  ASSERT_NE(t, nullptr);
  const std::vector<fs::path> files = inputs_of(t->name);
  ASSERT_GE(files.size(), 3u) << "too few saved inputs for " << t->name << " (" << t->what
                              << ") in " << corpus_dir(t->name);
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NO_THROW(t->run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()))
        << f.filename();
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplay, ::testing::ValuesIn(target_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tessera::test
