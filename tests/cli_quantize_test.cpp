// `tessera quantize` through the real binary: an AWQ run whose output `tessera perplexity`
// loads, the --json report, and every bad input as exit 2 with one line, nothing overwritten
// and nothing half-written left behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/cli_util.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace tessera::test {
namespace {

std::string model() { return testdata_dir() + "/models/TinyStories-656K"; }
std::string calib() {
  return std::string(TESSERA_SOURCE_DIR) + "/tests/fixtures/calibration-stories.txt";
}

void expect_user_error(const CliRun& r, const std::string& mention) {
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
  EXPECT_NE(r.err.find(mention), std::string::npos) << r.err;
}

TEST(CliQuantize, AwqCheckpointLoadsAndReportsItsChoices) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string out = make_temp_dir("cli-awq") + "/out";  // created by quantize
  const CliRun q = run_tessera({"quantize", "--model", model(), "--out", out, "--calib-file",
                                calib(), "--json"});
  ASSERT_EQ(q.code, 0) << q.err;
  const nlohmann::json j = nlohmann::json::parse(last_line(q.out));
  EXPECT_EQ(j["method"], "awq");
  EXPECT_GT(j["calibration_tokens"].get<int>(), 1000);
  ASSERT_EQ(j["layers"].size(), 2u);
  for (const auto& layer : j["layers"])
    for (const char* site : {"qkv", "o", "gate_up", "down"}) {
      const double a = layer[site]["alpha"].get<double>();
      EXPECT_GE(a, 0.0);
      EXPECT_LE(a, 1.0);
      EXPECT_LE(layer[site]["error_vs_rtn"].get<double>(), 1.0);
    }
  const CliRun p = run_tessera({"perplexity", "--model", out, "--ids-json",
                                testdata_dir() + "/perplexity/TinyStories-656K.ppl.json",
                                "--json"});
  ASSERT_EQ(p.code, 0) << p.err;
  const double ppl = nlohmann::json::parse(last_line(p.out))["perplexity"].get<double>();
  EXPECT_GT(ppl, 25.5);  // fp32: 25.52
  EXPECT_LT(ppl, 29.0);  // int4 RTN: 29.13
}

TEST(CliQuantize, BadInputsAreOneLineErrors) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string tmp = make_temp_dir("cli-quant-bad");
  const std::string out = tmp + "/out";
  expect_user_error(run_tessera({"quantize", "--model", model(), "--out", out}),
                    "--calib-file");
  EXPECT_FALSE(fs::exists(out));
  expect_user_error(run_tessera({"quantize", "--model", model(), "--out", out, "--calib-file",
                                 tmp + "/missing.txt"}),
                    "missing.txt");
  expect_user_error(run_tessera({"quantize", "--model", model(), "--out", out, "--method",
                                 "rtn", "--group-size", "96"}),
                    "group size 96");
  EXPECT_FALSE(fs::exists(out));
  expect_user_error(run_tessera({"quantize", "--model", model(), "--out", out, "--calib-file",
                                 calib(), "--calib-window", "1"}),
                    "--calib-window");
  expect_user_error(run_tessera({"quantize", "--out", out, "--method", "rtn"}), "--model");
  expect_user_error(run_tessera({"quantize", "--model", model(), "--method", "rtn"}), "--out");
  expect_user_error(run_tessera({"quantize", "--model", model(), "--out", model(), "--method",
                                 "rtn"}),
                    "model directory");
  // An existing directory with something in it is never written to.
  fs::create_directories(out);
  std::ofstream(out + "/keep.txt") << "mine";
  expect_user_error(run_tessera({"quantize", "--model", model(), "--out", out, "--method",
                                 "rtn"}),
                    "not an empty directory");
  EXPECT_EQ(read_file(out + "/keep.txt"), "mine");
  EXPECT_EQ(std::distance(fs::directory_iterator(out), fs::directory_iterator{}), 1);
  // A quantized checkpoint cannot be quantized again.
  const std::string once = tmp + "/once";
  ASSERT_EQ(run_tessera({"quantize", "--model", model(), "--out", once, "--method", "rtn"}).code,
            0);
  expect_user_error(run_tessera({"quantize", "--model", once, "--out", tmp + "/twice",
                                 "--method", "rtn"}),
                    "already quantized");
  EXPECT_FALSE(fs::exists(tmp + "/twice"));
}

}  // namespace
}  // namespace tessera::test
