// runtime/safetensors_writer.h: what it writes reads back through tessera's validating reader
// with the same names, dtypes, shapes, bytes and metadata, data aligned to 8 bytes; bad calls
// are errors that leave no file behind.
#include <gtest/gtest.h>

#include <filesystem>

#include "runtime/error.h"
#include "runtime/safetensors.h"
#include "runtime/safetensors_writer.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

TEST(SafetensorsWriter, ReadsBackThroughTheReader) {
  const std::string path = make_temp_dir("st-writer") + "/m.safetensors";
  Tensor a = host_tensor(DType::F16, {2, 3});
  for (int i = 0; i < 6; ++i) a.ptr<uint16_t>()[i] = f32_to_f16(float(i) - 2.5f);
  Tensor b = host_tensor(DType::I32, {5});
  for (int i = 0; i < 5; ++i) b.ptr<int32_t>()[i] = 1000 * i - 7;
  write_safetensors(path, {{"x.scales", a}, {"x.g_idx", b}}, {{"format", "pt"}});
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
  const auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  ASSERT_EQ(f->tensors().size(), 2u);
  const TensorInfo& ia = f->info("x.scales");
  EXPECT_EQ(ia.dtype, DType::F16);
  EXPECT_EQ(ia.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f->info("x.g_idx").shape, (std::vector<int64_t>{5}));
  const Tensor ra = f->view("x.scales"), rb = f->view("x.g_idx");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ra.data) % 8, 0u);  // header padded to 8 bytes
  for (int i = 0; i < 6; ++i) EXPECT_EQ(ra.ptr<uint16_t>()[i], a.ptr<uint16_t>()[i]);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(rb.ptr<int32_t>()[i], 1000 * i - 7);
}

TEST(SafetensorsWriter, DuplicateNamesAndUnwritablePathsAreErrors) {
  const std::string dir = make_temp_dir("st-writer-bad");
  Tensor t = host_tensor(DType::F32, {1});
  t.ptr<float>()[0] = 1.0f;
  EXPECT_THROW(write_safetensors(dir + "/d.safetensors", {{"a", t}, {"a", t}}), UserError);
  EXPECT_FALSE(std::filesystem::exists(dir + "/d.safetensors"));
  EXPECT_THROW(write_safetensors(dir + "/no/such/dir/x.safetensors", {{"a", t}}), UserError);
}

}  // namespace
}  // namespace tessera::test
