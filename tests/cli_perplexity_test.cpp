// `tessera perplexity` through the real binary: the golden's ids (--ids-json, its window by
// default) and the golden's text (--file, tokenized by tessera) give the golden perplexity
// and scored-token count; int4 weights through --weights; bad input exits 2 with one line.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/cli_util.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

using json = nlohmann::json;

std::string model_dir() { return testdata_dir() + "/models/TinyStories-656K"; }
std::string golden_path() { return testdata_dir() + "/perplexity/TinyStories-656K.ppl.json"; }

json run_json(std::vector<std::string> args) {
  args.insert(args.begin(), {"perplexity", "--model", model_dir(), "--json"});
  const CliRun r = run_tessera(args);
  EXPECT_EQ(r.code, 0) << r.err;
  return r.code == 0 ? json::parse(last_line(r.out)) : json::object();
}

TEST(CliPerplexity, GoldenIdsAndGoldenTextGiveTheGoldenPerplexity) {
  TESSERA_REQUIRE_TESTDATA();
  const json g = json::parse(read_file(golden_path()));
  const double fp32 = g["fp32"]["perplexity"].get<double>();
  const json ids = run_json({"--ids-json", golden_path(), "--threads", "1"});
  ASSERT_TRUE(ids.contains("perplexity"));
  EXPECT_NEAR(ids["perplexity"].get<double>(), fp32, 0.005 * fp32);
  EXPECT_EQ(ids["scored_tokens"], g["fp32"]["scored_tokens"]);
  EXPECT_EQ(ids["window"], 256);  // taken from the file
  EXPECT_EQ(ids["weights"], "stored");
  const json text = run_json({"--file", testdata_dir() + "/perplexity/tinystories-text.txt",
                              "--window", "256", "--threads", "1"});
  EXPECT_EQ(text["tokens"], g["n_ids"]);
  EXPECT_EQ(text["perplexity"], ids["perplexity"]);
  const double int4 = g["int4_g128"]["perplexity"].get<double>();
  const json q4 = run_json({"--ids-json", golden_path(), "--weights", "int4", "--threads", "1"});
  EXPECT_NEAR(q4["perplexity"].get<double>(), int4, 0.005 * int4);
  EXPECT_EQ(q4["weights"], "int4");
}

TEST(CliPerplexity, TextOutputNamesPerplexityAndScoredTokens) {
  TESSERA_REQUIRE_TESTDATA();
  const CliRun r = run_tessera({"perplexity", "--model", model_dir(), "--ids-json",
                                golden_path(), "--window", "128", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  // 623 ids in windows of 128: 4 x 127 + 110 scored.
  EXPECT_NE(r.out.find("over 618 scored tokens"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.rfind("perplexity ", 0), 0u) << r.out;
}

void expect_exit_2(const std::vector<std::string>& extra, const std::string& mention) {
  std::vector<std::string> args = {"perplexity", "--model", model_dir()};
  args.insert(args.end(), extra.begin(), extra.end());
  const CliRun r = run_tessera(args);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
  EXPECT_NE(r.err.find(mention), std::string::npos) << r.err;
}

TEST(CliPerplexity, BadInputExitsTwo) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string dir = make_temp_dir("ppl");
  std::ofstream(dir + "/empty.json") << R"({"ids": []})";
  std::ofstream(dir + "/one.json") << R"({"ids": [1]})";
  std::ofstream(dir + "/bad.json") << R"({"ids": [1, "x"]})";
  std::ofstream(dir + "/big.json") << R"([1, 2, 99999])";
  expect_exit_2({"--file", dir + "/missing.txt"}, "missing.txt");
  expect_exit_2({"--ids-json", dir + "/missing.json"}, "missing.json");
  expect_exit_2({"--ids-json", dir + "/empty.json"}, "empty");
  expect_exit_2({"--ids-json", dir + "/one.json"}, "at least 2 tokens");
  expect_exit_2({"--ids-json", dir + "/bad.json"}, "\"x\"");
  expect_exit_2({"--ids-json", dir + "/big.json"}, "outside the vocabulary");
  expect_exit_2({"--ids-json", golden_path(), "--window", "1"}, "--window");
  expect_exit_2({"--ids-json", golden_path(), "--window", "0"}, "--window");
  expect_exit_2({}, "exactly one of --file or --ids-json");
  expect_exit_2({"--ids-json", golden_path(), "--weights", "int3"}, "--weights");
}

}  // namespace
}  // namespace tessera::test
