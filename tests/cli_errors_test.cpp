// A user's bad input through the real binary: exit code 2 and one line on stderr that names
// the file (and tensor), never a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "tests/cli_util.h"
#include "tests/safetensors_writer.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace tessera::test {
namespace {

using json = nlohmann::json;

// A copy of TinyStories-656K (config + weights) to break.
std::string copy_model() {
  const std::string dir = make_temp_dir("badmodel");
  const std::string src = testdata_dir() + "/models/TinyStories-656K";
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(src + "/" + f, dir + "/" + f, fs::copy_options::overwrite_existing);
  return dir;
}

// Parses DIR/model.safetensors, lets `edit` change its header and data, writes it back.
void edit_checkpoint(const std::string& dir,
                     const std::function<void(json&, std::string&)>& edit) {
  const std::string path = dir + "/model.safetensors";
  const std::string bytes = read_file(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
  json header = json::parse(bytes.substr(8, n));
  std::string data = bytes.substr(8 + n);
  edit(header, data);
  write_raw_safetensors(path, header.dump(), data);
}

void edit_config(const std::string& dir, const std::function<void(json&)>& edit) {
  json c = json::parse(read_file(dir + "/config.json"));
  edit(c);
  std::ofstream(dir + "/config.json") << c.dump();
}

CliRun generate(const std::string& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"generate", "--model", dir, "--prompt-ids", "1,2,3",
                                   "--max-tokens", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_tessera(args);
}

void expect_user_error(const CliRun& r, const std::vector<std::string>& mentions) {
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  for (const auto& m : mentions) EXPECT_NE(r.err.find(m), std::string::npos) << r.err;
}

const char* kTensor = "model.layers.0.self_attn.q_proj.weight";

}  // namespace

TEST(CliErrors, MissingDirectoryAndConfig) {
  TESSERA_REQUIRE_TESTDATA();
  expect_user_error(generate("/nonexistent/model"), {"/nonexistent/model"});
  const std::string dir = copy_model();
  fs::remove(dir + "/config.json");
  expect_user_error(generate(dir), {"config.json"});
}

TEST(CliErrors, UnknownModelType) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string dir = copy_model();
  edit_config(dir, [](json& c) { c["model_type"] = "gpt_neox"; });
  expect_user_error(generate(dir), {"config.json", "gpt_neox"});
}

TEST(CliErrors, MissingTensor) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string dir = copy_model();
  edit_checkpoint(dir, [](json& h, std::string&) { h.erase(kTensor); });
  expect_user_error(generate(dir), {kTensor, dir});
}

TEST(CliErrors, TruncatedFileAndHeaderBeyondFile) {
  TESSERA_REQUIRE_TESTDATA();
  std::string dir = copy_model();
  {
    std::string bytes = read_file(dir + "/model.safetensors");
    std::ofstream(dir + "/model.safetensors", std::ios::binary | std::ios::trunc)
        << bytes.substr(0, bytes.size() / 2);
  }
  expect_user_error(generate(dir), {"model.safetensors"});
  dir = copy_model();
  {
    const std::string bytes = read_file(dir + "/model.safetensors");
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
    write_raw_safetensors(dir + "/model.safetensors", bytes.substr(8, n), bytes.substr(8 + n),
                          uint64_t(bytes.size()) * 2);
  }
  expect_user_error(generate(dir), {"model.safetensors"});
}

TEST(CliErrors, OffsetsOutOfBoundsAndOverlapping) {
  TESSERA_REQUIRE_TESTDATA();
  std::string dir = copy_model();
  edit_checkpoint(dir, [](json& h, std::string& data) {
    auto& off = h[kTensor]["data_offsets"];
    const uint64_t len = off[1].get<uint64_t>() - off[0].get<uint64_t>();
    off = {data.size(), data.size() + len};
  });
  expect_user_error(generate(dir), {"model.safetensors", kTensor});
  dir = copy_model();
  edit_checkpoint(dir, [](json& h, std::string&) {
    h[kTensor]["data_offsets"] = h["model.layers.0.self_attn.k_proj.weight"]["data_offsets"];
    h[kTensor]["shape"] = h["model.layers.0.self_attn.k_proj.weight"]["shape"];
  });
  expect_user_error(generate(dir), {"model.safetensors", "overlap"});
}

TEST(CliErrors, ShapeByteLengthMismatchAndUnknownDtype) {
  TESSERA_REQUIRE_TESTDATA();
  std::string dir = copy_model();
  edit_checkpoint(dir, [](json& h, std::string&) { h[kTensor]["shape"] = {128, 129}; });
  expect_user_error(generate(dir), {"model.safetensors", kTensor});
  dir = copy_model();
  edit_checkpoint(dir, [](json& h, std::string&) { h[kTensor]["dtype"] = "F7"; });
  expect_user_error(generate(dir), {"model.safetensors", kTensor, "F7"});
}

TEST(CliErrors, TensorShapeDisagreesWithConfig) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string dir = copy_model();
  edit_config(dir, [](json& c) { c["intermediate_size"] = 256; });
  expect_user_error(generate(dir), {"mlp", "shape", "expected"});
}

TEST(CliErrors, BadPrompts) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string model = testdata_dir() + "/models/TinyStories-656K";
  expect_user_error(run_tessera({"generate", "--model", model, "--prompt-ids", "1,5000"}),
                    {"5000", "vocabulary"});
  expect_user_error(run_tessera({"generate", "--model", model, "--prompt-ids", "1,x"}), {"x"});
  expect_user_error(run_tessera({"generate", "--model", model, "--prompt-ids", "-3"}), {"-3"});
  std::string long_prompt = "1";
  for (int i = 0; i < 600; ++i) long_prompt += ",5";  // max_position_embeddings is 512
  expect_user_error(run_tessera({"generate", "--model", model, "--prompt-ids", long_prompt}),
                    {"max_position_embeddings"});
}

TEST(CliErrors, BadFlags) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string model = testdata_dir() + "/models/TinyStories-656K";
  expect_user_error(run_tessera({"generate", "--model", model, "--prompt-ids", "1", "--bogus"}),
                    {"--bogus"});
  expect_user_error(
      run_tessera({"generate", "--model", model, "--prompt-ids", "1", "--max-tokens", "-1"}),
      {"max-tokens"});
  expect_user_error(
      run_tessera({"generate", "--model", model, "--prompt-ids", "1", "--top-p", "1.5"}),
      {"top-p"});
  expect_user_error(run_tessera({"generate", "--load-format", "dummy", "--prompt-ids", "1"}),
                    {"--model-config"});
}

TEST(CliErrors, DummyWeightsRunAndEosStops) {
  TESSERA_REQUIRE_TESTDATA();
  CliRun r = run_tessera({"generate", "--load-format", "dummy", "--model-config",
                          testdata_dir() + "/configs/stories110m-shape.json", "--prompt-ids",
                          "1,2,3", "--max-tokens", "3", "--temperature", "0", "--ignore-eos",
                          "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(last_line(r.out))["ids"].size(), 3u);
  // TinyStories ends its story with eos (2) well within 400 tokens; generation stops there.
  r = run_tessera({"generate", "--model", testdata_dir() + "/models/TinyStories-656K",
                   "--prompt-ids", "1", "--max-tokens", "400", "--temperature", "0", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto ids = json::parse(last_line(r.out))["ids"].get<std::vector<int>>();
  ASSERT_FALSE(ids.empty());
  EXPECT_TRUE(ids.back() == 2 || ids.size() == 400u);
  for (size_t i = 0; i + 1 < ids.size(); ++i) EXPECT_NE(ids[i], 2) << "generated past eos";
}

}  // namespace tessera::test
