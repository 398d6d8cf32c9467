#include "runtime/checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "runtime/error.h"
#include "tests/safetensors_writer.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using test::StTensor;

template <class F>
void expect_user_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no UserError thrown; wanted one mentioning " << parts[0];
  } catch (const UserError& e) {
    std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << p << " in: " << msg;
  }
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

StTensor f32(const std::string& name, std::vector<int64_t> shape, std::vector<float> v) {
  return {name, "F32", std::move(shape), test::as_bytes(v)};
}

// Two shards and an index: a.* in shard 1, b.* in shard 2.
std::string make_sharded(const std::string& tag) {
  std::string dir = test::make_temp_dir(tag);
  test::write_safetensors(dir + "/model-00001-of-00002.safetensors",
                          {f32("a.w", {2, 3}, {0, 1, 2, 3, 4, 5}), f32("a.n", {2}, {9, 8})},
                          {{"format", "pt"}, {"shard", "1"}});
  test::write_safetensors(dir + "/model-00002-of-00002.safetensors",
                          {f32("b.w", {3, 2}, {10, 11, 12, 13, 14, 15})},
                          {{"shard", "2"}, {"tie", "b.w"}});
  write_text(dir + "/model.safetensors.index.json",
             R"({"metadata": {"total_size": 56}, "weight_map": {
                 "a.w": "model-00001-of-00002.safetensors",
                 "a.n": "model-00001-of-00002.safetensors",
                 "b.w": "model-00002-of-00002.safetensors"}})");
  return dir;
}

TEST(Checkpoint, SingleFile) {
  std::string dir = test::make_temp_dir("ckpt-single");
  test::write_safetensors(dir + "/model.safetensors", {f32("w", {2, 2}, {1, 2, 3, 4})},
                          {{"format", "pt"}});
  Checkpoint ck = Checkpoint::open(dir);
  EXPECT_EQ(ck.dir(), dir);
  EXPECT_EQ(ck.names(), std::vector<std::string>{"w"});
  EXPECT_TRUE(ck.has("w"));
  EXPECT_FALSE(ck.has("v"));
  EXPECT_EQ(ck.info("w").shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(ck.view("w").ptr<float>()[3], 4.0f);
  EXPECT_EQ(ck.metadata().at("format"), "pt");
  EXPECT_EQ(ck.files().size(), 1u);
  EXPECT_EQ(ck.bytes_read(), 16u);
}

TEST(Checkpoint, ShardedForwardsToTheRightFile) {
  std::string dir = make_sharded("ckpt-sharded");
  Checkpoint ck = Checkpoint::open(dir);
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a.n", "a.w", "b.w"}));
  EXPECT_EQ(ck.files().size(), 2u);
  EXPECT_EQ(ck.file_of("b.w").path(), dir + "/model-00002-of-00002.safetensors");
  EXPECT_EQ(ck.view("a.n").ptr<float>()[1], 8.0f);
  Tensor rows = ck.view_rows("b.w", 1, 3);
  EXPECT_EQ(rows.shape_str(), "[2, 2]");
  EXPECT_EQ(rows.ptr<float>()[0], 12.0f);
  Tensor rr = ck.read_rows("a.w", 1, 2);
  EXPECT_EQ(rr.ptr<float>()[2], 5.0f);
  Tensor cols = ck.read_cols("a.w", 2, 3);
  EXPECT_EQ(cols.shape_str(), "[2, 1]");
  EXPECT_EQ(cols.ptr<float>()[0], 2.0f);
  EXPECT_EQ(cols.ptr<float>()[1], 5.0f);
  EXPECT_EQ(ck.bytes_read(), 8u + 16u + 12u + 8u);
  // The union of both shards' __metadata__; "format" only in shard 1, "tie" only in shard 2.
  EXPECT_EQ(ck.metadata().at("format"), "pt");
  EXPECT_EQ(ck.metadata().at("tie"), "b.w");
  EXPECT_EQ(ck.metadata().at("shard"), "1");  // on a conflict the first shard wins
}

TEST(Checkpoint, SingleFileWinsOverIndex) {
  std::string dir = make_sharded("ckpt-both");
  test::write_safetensors(dir + "/model.safetensors", {f32("only", {1}, {3})});
  EXPECT_EQ(Checkpoint::open(dir).names(), std::vector<std::string>{"only"});
}

TEST(Checkpoint, MissingTensorNamesDir) {
  std::string dir = make_sharded("ckpt-missing-tensor");
  Checkpoint ck = Checkpoint::open(dir);
  expect_user_error([&] { ck.info("nope.weight"); }, {"tensor nope.weight not found in " + dir});
  expect_user_error([&] { ck.view("nope.weight"); }, {"nope.weight", dir});
  expect_user_error([&] { ck.read_cols("a.w", 0, 9); }, {"a.w", "out of range"});
}

TEST(Checkpoint, DirectoryErrors) {
  std::string dir = test::make_temp_dir("ckpt-empty");
  expect_user_error([&] { Checkpoint::open(dir); },
                    {dir, "model.safetensors", "model.safetensors.index.json"});
  expect_user_error([&] { Checkpoint::open(dir + "/nowhere"); }, {dir + "/nowhere"});
}

TEST(Checkpoint, IndexErrors) {
  std::string dir = make_sharded("ckpt-bad-index");
  std::string index = dir + "/model.safetensors.index.json";
  write_text(index, "{\"weight_map\": ");
  expect_user_error([&] { Checkpoint::open(dir); }, {index, "not valid JSON"});
  write_text(index, R"({"metadata": {}})");
  expect_user_error([&] { Checkpoint::open(dir); }, {index, "weight_map"});
  write_text(index, R"({"weight_map": {"a.w": 7}})");
  expect_user_error([&] { Checkpoint::open(dir); }, {index, "'a.w'"});
  write_text(index, R"({"weight_map": {"a.w": "../elsewhere.safetensors"}})");
  expect_user_error([&] { Checkpoint::open(dir); }, {index, "../elsewhere.safetensors"});
}

TEST(Checkpoint, IndexNamesMissingShard) {
  std::string dir = make_sharded("ckpt-missing-shard");
  fs::remove(dir + "/model-00002-of-00002.safetensors");
  expect_user_error([&] { Checkpoint::open(dir); },
                    {"model-00002-of-00002.safetensors", "'b.w'", "does not exist"});
}

TEST(Checkpoint, InvalidShardIsNamed) {
  std::string dir = make_sharded("ckpt-bad-shard");
  std::string shard = dir + "/model-00002-of-00002.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 4);  // cut the data short
  expect_user_error([&] { Checkpoint::open(dir); }, {shard, "'b.w'", "out of bounds"});
}

TEST(Checkpoint, IndexTensorMissingFromItsShard) {
  std::string dir = make_sharded("ckpt-not-in-shard");
  write_text(dir + "/model.safetensors.index.json",
             R"({"weight_map": {"a.w": "model-00001-of-00002.safetensors",
                                "b.w": "model-00001-of-00002.safetensors"}})");
  expect_user_error([&] { Checkpoint::open(dir); },
                    {"'b.w'", dir + "/model-00001-of-00002.safetensors", "no such tensor"});
}

TEST(Checkpoint, TensorInTwoShardsNamesBoth) {
  std::string dir = make_sharded("ckpt-dup");
  test::write_safetensors(dir + "/model-00002-of-00002.safetensors",
                          {f32("b.w", {3, 2}, {10, 11, 12, 13, 14, 15}), f32("a.n", {2}, {0, 0})});
  expect_user_error([&] { Checkpoint::open(dir); },
                    {"'a.n'", dir + "/model-00001-of-00002.safetensors",
                     dir + "/model-00002-of-00002.safetensors"});
}

TEST(Checkpoint, RealTinyStories) {
  TESSERA_REQUIRE_TESTDATA();
  std::string dir = test::testdata_dir() + "/models/TinyStories-656K";
  Checkpoint ck = Checkpoint::open(dir);
  EXPECT_EQ(ck.names().size(), 20u);  // lm_head, 2 layers x 9, final norm
  const TensorInfo& lm = ck.info("lm_head.weight");
  EXPECT_EQ(lm.dtype, DType::F32);
  EXPECT_EQ(lm.shape, (std::vector<int64_t>{2048, 128}));
  EXPECT_FALSE(ck.has("model.embed_tokens.weight"));  // tied: stored once, as lm_head
  EXPECT_EQ(ck.metadata().at("model.embed_tokens.weight"), "lm_head.weight");
  EXPECT_EQ(ck.info("model.layers.1.mlp.down_proj.weight").shape,
            (std::vector<int64_t>{128, 384}));
  Tensor norm = ck.view("model.norm.weight");
  EXPECT_EQ(norm.shape_str(), "[128]");
  EXPECT_EQ(ck.bytes_read(), 512u);
}

}  // namespace
}  // namespace tessera
