#include "runtime/safetensors.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <optional>

#include "runtime/error.h"
#include "tests/safetensors_writer.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using test::StTensor;

std::string temp_file(const std::string& name) {
  static const std::string dir = test::make_temp_dir("safetensors");
  return dir + "/" + name;
}

// Runs f, which must throw UserError whose message contains every string in `parts`.
template <class F>
void expect_user_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no UserError thrown; wanted one mentioning " << parts[0];
  } catch (const UserError& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << p << " in: " << msg;
  }
}

std::vector<float> floats(const Tensor& t) {
  std::vector<float> out;
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (t.dtype == DType::F32) out.push_back(t.ptr<float>()[i]);
    if (t.dtype == DType::F16) out.push_back(f16_to_f32(t.ptr<uint16_t>()[i]));
    if (t.dtype == DType::BF16) out.push_back(bf16_to_f32(t.ptr<uint16_t>()[i]));
  }
  return out;
}

TEST(Safetensors, ReadsF32F16BF16AndIntegers) {
  std::string p = temp_file("types.safetensors");
  test::write_safetensors(
      p, {{"f32", "F32", {2, 3}, test::as_bytes(std::vector<float>{1, -2, 3.5f, 4, 5, 6})},
          {"f16", "F16", {4}, test::f16_bytes({1.5f, -2, 0.25f, 65504})},
          {"bf16", "BF16", {2, 2}, test::bf16_bytes({1, -0.5f, 3, 256})},
          {"i32", "I32", {2}, test::as_bytes(std::vector<int32_t>{-7, 1 << 30})},
          {"i8", "I8", {3}, test::as_bytes(std::vector<int8_t>{-128, 0, 127})},
          {"u8", "U8", {1}, test::as_bytes(std::vector<uint8_t>{255})}},
      {{"format", "pt"}});
  auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->path(), p);
  EXPECT_EQ(f->tensors().size(), 6u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  Tensor a = f->view("f32");
  EXPECT_EQ(a.dtype, DType::F32);
  EXPECT_EQ(a.shape_str(), "[2, 3]");
  EXPECT_EQ(floats(a), (std::vector<float>{1, -2, 3.5f, 4, 5, 6}));
  EXPECT_EQ(floats(f->view("f16")), (std::vector<float>{1.5f, -2, 0.25f, 65504}));
  EXPECT_EQ(floats(f->view("bf16")), (std::vector<float>{1, -0.5f, 3, 256}));
  EXPECT_EQ(f->view("i32").ptr<int32_t>()[1], 1 << 30);
  EXPECT_EQ(f->view("i8").ptr<int8_t>()[0], -128);
  EXPECT_EQ(f->view("u8").ptr<uint8_t>()[0], 255);
  const TensorInfo* info = f->find("bf16");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->dtype, DType::BF16);
  EXPECT_EQ(info->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(info->nbytes(), 8u);
  EXPECT_EQ(f->find("nope"), nullptr);
}

TEST(Safetensors, ViewKeepsMappingAlive) {
  std::string p = temp_file("alive.safetensors");
  test::write_safetensors(p, {{"w", "F32", {3}, test::as_bytes(std::vector<float>{7, 8, 9})}});
  Tensor t;
  {
    auto f = SafetensorsFile::open(p);
    t = f->view("w");
  }  // the file object is gone; the view's storage still holds the mapping
  EXPECT_EQ(floats(t), (std::vector<float>{7, 8, 9}));
}

TEST(Safetensors, RowAndColumnSlices) {
  std::string p = temp_file("slices.safetensors");
  std::vector<float> m(4 * 5);
  for (size_t i = 0; i < m.size(); ++i) m[i] = float(i);  // m[r][c] = 5r + c
  test::write_safetensors(p, {{"m", "F32", {4, 5}, test::as_bytes(m)},
                              {"b", "BF16", {4, 5}, test::bf16_bytes(m)}});
  auto f = SafetensorsFile::open(p);
  Tensor v = f->view_rows("m", 1, 3);
  EXPECT_EQ(v.shape_str(), "[2, 5]");
  EXPECT_EQ(floats(v), (std::vector<float>{5, 6, 7, 8, 9, 10, 11, 12, 13, 14}));
  Tensor r = f->read_rows("b", 3, 4);
  EXPECT_EQ(r.shape_str(), "[1, 5]");
  EXPECT_EQ(floats(r), (std::vector<float>{15, 16, 17, 18, 19}));
  Tensor c = f->read_cols("m", 1, 3);
  EXPECT_EQ(c.shape_str(), "[4, 2]");
  EXPECT_EQ(floats(c), (std::vector<float>{1, 2, 6, 7, 11, 12, 16, 17}));
  EXPECT_EQ(floats(f->read_cols("b", 4, 5)), (std::vector<float>{4, 9, 14, 19}));
  EXPECT_EQ(f->read_cols("m", 2, 2).shape_str(), "[4, 0]");
  EXPECT_EQ(f->view_rows("m", 4, 4).shape_str(), "[0, 5]");
  // view_rows 40 + read_rows 10 + read_cols 32 + 8 + 0 + view_rows 0
  EXPECT_EQ(f->bytes_read(), 90u);
}

TEST(Safetensors, SliceErrorsNameTensorAndFile) {
  std::string p = temp_file("slice_err.safetensors");
  test::write_safetensors(p, {{"m", "F32", {4, 5}, std::string(80, '\0')},
                              {"v", "F32", {3}, std::string(12, '\0')},
                              {"r5", "F32", {1, 1, 1, 1, 2}, std::string(8, '\0')}});
  auto f = SafetensorsFile::open(p);
  expect_user_error([&] { f->view("missing.weight"); }, {"missing.weight", p});
  expect_user_error([&] { f->info("missing.weight"); }, {"missing.weight", p});
  expect_user_error([&] { f->view_rows("m", -1, 2); }, {"'m'", p, "out of range"});
  expect_user_error([&] { f->view_rows("m", 3, 2); }, {"'m'", p, "out of range"});
  expect_user_error([&] { f->read_rows("m", 0, 5); }, {"'m'", p, "out of range"});
  expect_user_error([&] { f->read_cols("m", 0, 6); }, {"'m'", p, "out of range"});
  expect_user_error([&] { f->read_cols("m", -1, 1); }, {"'m'", p, "out of range"});
  expect_user_error([&] { f->read_cols("v", 0, 1); }, {"'v'", p, "2-D"});
  expect_user_error([&] { f->view("r5"); }, {"'r5'", p, "rank 5"});
  ASSERT_NE(f->find("r5"), nullptr);  // opening is fine; only viewing a rank-5 tensor fails
}

TEST(Safetensors, ScalarsEmptyTensorsAndUnpaddedHeaders) {
  std::string p = temp_file("odd.safetensors");
  // Unpadded header: the data area starts at an odd offset, so views must be aligned copies.
  std::string header = R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                       R"("e":{"dtype":"BF16","shape":[0,3],"data_offsets":[4,4]},)"
                       R"("x":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  if ((8 + header.size()) % 4 == 0) header += ' ';
  test::write_raw_safetensors(p, header, test::as_bytes(std::vector<float>{42, 1.25f, -3}));
  auto f = SafetensorsFile::open(p);
  Tensor s = f->view("s");
  EXPECT_EQ(s.shape_str(), "[1]");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(s.data) % 4, 0u);
  EXPECT_EQ(floats(s), std::vector<float>{42});
  EXPECT_EQ(floats(f->view("x")), (std::vector<float>{1.25f, -3}));
  EXPECT_EQ(f->view("e").numel(), 0);
  EXPECT_EQ(f->view_rows("e", 0, 0).shape_str(), "[0, 3]");
  expect_user_error([&] { f->view_rows("s", 0, 1); }, {"'s'", p, "scalar"});
}

TEST(Safetensors, FileLevelErrors) {
  std::string missing = temp_file("does-not-exist.safetensors");
  expect_user_error([&] { SafetensorsFile::open(missing); }, {missing});
  std::string dir = temp_file("a-directory");
  std::filesystem::create_directories(dir);
  expect_user_error([&] { SafetensorsFile::open(dir); }, {dir, "not a regular file"});
  std::string fifo = temp_file("fifo.safetensors");
  std::filesystem::remove(fifo);
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  expect_user_error([&] { SafetensorsFile::open(fifo); }, {fifo, "not a regular file"});
  std::string tiny = temp_file("tiny.safetensors");
  test::write_raw_safetensors(tiny, "", "", 0);
  std::filesystem::resize_file(tiny, 5);
  expect_user_error([&] { SafetensorsFile::open(tiny); }, {tiny, "5 bytes", "too short"});
  std::string past = temp_file("past.safetensors");
  test::write_raw_safetensors(past, "{}", "", 1000);
  expect_user_error([&] { SafetensorsFile::open(past); }, {past, "1000", "truncated"});
  std::string absurd = temp_file("absurd.safetensors");
  test::write_raw_safetensors(absurd, "{}", "", uint64_t(1) << 60);
  expect_user_error([&] { SafetensorsFile::open(absurd); }, {absurd, "absurd"});
}

struct HeaderCase {
  const char* label;
  std::string header;
  size_t data_len;
  std::vector<std::string> expect;
};

std::string entry(const std::string& dtype, const std::string& shape, const std::string& offs) {
  return R"({"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offs + "}";
}

TEST(Safetensors, HeaderErrorsNameFileAndTensor) {
  const std::string ok4 = entry("F32", "[1]", "[0,4]");
  const std::vector<HeaderCase> cases = {
      {"not json", "{\"a\": ", 0, {"not valid JSON"}},
      {"not object", "[1, 2]", 0, {"not a JSON object"}},
      {"entry not object", R"({"w.a": 5})", 0, {"'w.a'", "not a JSON object"}},
      {"no dtype", R"({"w.a":{"shape":[1],"data_offsets":[0,4]}})", 4, {"'w.a'", "\"dtype\""}},
      {"no shape", R"({"w.a":{"dtype":"F32","data_offsets":[0,4]}})", 4, {"'w.a'", "\"shape\""}},
      {"no offsets", R"({"w.a":{"dtype":"F32","shape":[1]}})", 4, {"'w.a'", "\"data_offsets\""}},
      {"dtype not string", R"({"w.a":{"dtype":3,"shape":[1],"data_offsets":[0,4]}})", 4,
       {"'w.a'", "dtype"}},
      {"unknown dtype", "{\"w.a\":" + entry("Q7", "[1]", "[0,4]") + "}", 4,
       {"'w.a'", "unsupported dtype Q7"}},
      {"F64", "{\"w.a\":" + entry("F64", "[1]", "[0,8]") + "}", 8, {"'w.a'", "dtype F64"}},
      {"F8", "{\"w.a\":" + entry("F8_E4M3", "[4]", "[0,4]") + "}", 4, {"'w.a'", "F8_E4M3"}},
      {"I64", "{\"w.a\":" + entry("I64", "[1]", "[0,8]") + "}", 8, {"'w.a'", "dtype I64"}},
      {"shape not list", "{\"w.a\":" + entry("F32", "4", "[0,16]") + "}", 16,
       {"'w.a'", "not a list"}},
      {"negative dim", "{\"w.a\":" + entry("F32", "[-1]", "[0,4]") + "}", 4,
       {"'w.a'", "non-negative integers"}},
      {"float dim", "{\"w.a\":" + entry("F32", "[1.0]", "[0,4]") + "}", 4,
       {"'w.a'", "non-negative integers"}},
      {"string dim", "{\"w.a\":" + entry("F32", "[\"1\"]", "[0,4]") + "}", 4,
       {"'w.a'", "non-negative integers"}},
      {"one offset", "{\"w.a\":" + entry("F32", "[1]", "[4]") + "}", 4, {"'w.a'", "[begin, end]"}},
      {"offsets not list", "{\"w.a\":" + entry("F32", "[1]", "4") + "}", 4,
       {"'w.a'", "[begin, end]"}},
      {"negative offset", "{\"w.a\":" + entry("F32", "[1]", "[-4,0]") + "}", 4,
       {"'w.a'", "[begin, end]"}},
      {"begin > end", "{\"w.a\":" + entry("F32", "[0]", "[8,4]") + "}", 8,
       {"'w.a'", "begin > end"}},
      {"past data", "{\"w.a\":" + entry("F32", "[100]", "[0,400]") + "}", 16,
       {"'w.a'", "out of bounds", "16 bytes", "truncated"}},
      {"size mismatch", "{\"w.a\":" + entry("F32", "[2,3]", "[0,16]") + "}", 24,
       {"'w.a'", "shape [2, 3] x F32 needs 24 bytes but data_offsets span 16"}},
      {"size overflow",
       "{\"w.a\":" + entry("F32", "[4294967296,4294967296,4294967296]", "[0,16]") + "}", 16,
       {"'w.a'", "needs more than 2^64 bytes"}},
      {"overlap",
       "{\"w.a\":" + entry("F32", "[4]", "[0,16]") + ",\"w.b\":" + entry("F32", "[4]", "[8,24]") +
           "}",
       24, {"'w.a'", "'w.b'", "overlap"}},
      {"duplicate", "{\"w.a\":" + ok4 + ",\"w.b\":" + ok4 + ",\"w.a\":" + ok4 + "}", 4,
       {"duplicate tensor name 'w.a'"}},
      {"metadata not object", R"({"__metadata__":[1]})", 0, {"__metadata__"}},
      {"metadata value", R"({"__metadata__":{"format":1}})", 0, {"__metadata__", "format"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const HeaderCase& c = cases[i];
    SCOPED_TRACE(c.label);
    std::string p = temp_file("bad" + std::to_string(i) + ".safetensors");
    test::write_raw_safetensors(p, c.header, std::string(c.data_len, '\0'));
    std::vector<std::string> parts = c.expect;
    parts.push_back(p);
    expect_user_error([&] { SafetensorsFile::open(p); }, parts);
  }
}

TEST(Safetensors, OverlapIgnoresEmptyTensorsAndAllowsGaps) {
  std::string p = temp_file("gaps.safetensors");
  test::write_raw_safetensors(p,
                              "{\"a\":" + entry("F32", "[1]", "[0,4]") + ",\"z\":" +
                                  entry("F32", "[0]", "[2,2]") + ",\"b\":" +
                                  entry("F32", "[1]", "[8,12]") + "}",
                              std::string(12, '\0'));
  EXPECT_EQ(SafetensorsFile::open(p)->tensors().size(), 3u);
}

TEST(Safetensors, RealTinyStoriesCheckpoint) {
  TESSERA_REQUIRE_TESTDATA();
  std::string p = test::testdata_dir() + "/models/TinyStories-656K/model.safetensors";
  auto f = SafetensorsFile::open(p);
  const TensorInfo& lm = f->info("lm_head.weight");
  EXPECT_EQ(lm.dtype, DType::F32);
  EXPECT_EQ(lm.shape, (std::vector<int64_t>{2048, 128}));
  EXPECT_EQ(f->metadata().at("model.embed_tokens.weight"), "lm_head.weight");
  EXPECT_EQ(f->find("model.embed_tokens.weight"), nullptr);
  Tensor v = f->view("lm_head.weight");
  Tensor c = f->read_cols("lm_head.weight", 64, 128);
  Tensor r = f->read_rows("lm_head.weight", 2047, 2048);
  EXPECT_EQ(c.ptr<float>()[5 * 64 + 3], v.ptr<float>()[5 * 128 + 67]);
  EXPECT_EQ(r.ptr<float>()[127], v.ptr<float>()[2048 * 128 - 1]);
}

// --- Page-cache tests: a slice read must bring in only the slice's pages. ---

class SafetensorsPages : public ::testing::Test {
 protected:
  static constexpr int64_t kRows = 1024, kCols = 32768;  // BF16: 64 KiB rows, 64 MiB in all
  static void SetUpTestSuite() {
    path_ = temp_file("big.safetensors");
    std::vector<uint16_t> w(size_t(kRows * kCols));
    for (int64_t r = 0; r < kRows; ++r)
      for (int64_t c = 0; c < kCols; ++c) w[size_t(r * kCols + c)] = f32_to_bf16(float((r + c) % 256));
    test::write_safetensors(path_, {{"w", "BF16", {kRows, kCols}, test::as_bytes(w)}});
  }
  // Writes back and drops the file's pages from the page cache, then opens it.
  void SetUp() override {
    int fd = ::open(path_.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
    f_ = SafetensorsFile::open(path_);
    size_t after_open = f_->resident_bytes();
    if (after_open > (256u << 10))
      GTEST_SKIP() << "cannot evict " << path_ << " from the page cache on this filesystem ("
                   << after_open << " bytes resident right after open)";
  }
  // Asserts the resident pages are those overlapping the file byte ranges plus the header's
  // pages (read at open), give or take a little slack, and far fewer than the file's.
  void expect_resident_only(const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
    const uint64_t ps = uint64_t(sysconf(_SC_PAGESIZE));
    std::vector<bool> pages = f_->resident_pages(), want(pages.size());
    for (auto [a, b] : ranges)
      for (uint64_t p = a / ps; p <= (b - 1) / ps; ++p) want[p] = true;
    for (uint64_t p = 0; p * ps < f_->data_start(); ++p) want[p] = true;
    size_t wanted = 0, missing = 0, extra = 0;
    for (size_t i = 0; i < pages.size(); ++i) {
      wanted += want[i];
      missing += want[i] && !pages[i];
      extra += pages[i] && !want[i];
    }
    EXPECT_EQ(missing, 0u) << "slice pages not resident";
    // Exact on Linux 6.x ext4; a little slack for kernels that cache in larger folios.
    EXPECT_LE(extra, 16 + wanted / 8) << "pages outside the slice were read (" << wanted
                                      << " wanted)";
    EXPECT_LT(f_->resident_bytes(), f_->file_size() / 8);
  }
  static inline std::string path_;
  std::shared_ptr<SafetensorsFile> f_;
};

TEST_F(SafetensorsPages, ReadColsReadsOnlyItsColumns) {
  const int64_t c0 = 1000, c1 = 1064;
  Tensor t = f_->read_cols("w", c0, c1);
  EXPECT_EQ(f_->bytes_read(), uint64_t(kRows * (c1 - c0) * 2));
  for (int64_t r : {0l, 517l, kRows - 1})
    for (int64_t c = c0; c < c1; c += 21)
      ASSERT_EQ(bf16_to_f32(t.ptr<uint16_t>()[r * (c1 - c0) + c - c0]), float((r + c) % 256));
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (int64_t r = 0; r < kRows; ++r) {
    uint64_t a = f_->data_start() + uint64_t(r * kCols + c0) * 2;
    ranges.emplace_back(a, a + uint64_t(c1 - c0) * 2);
  }
  expect_resident_only(ranges);
}

TEST_F(SafetensorsPages, ViewRowsTouchesOnlyItsRows) {
  const int64_t r0 = 300, r1 = 304;
  Tensor v = f_->view_rows("w", r0, r1);
  EXPECT_EQ(f_->bytes_read(), uint64_t((r1 - r0) * kCols * 2));
  uint64_t sum = 0;
  for (int64_t i = 0; i < v.numel(); ++i) sum += v.ptr<uint16_t>()[i];  // touch every page
  EXPECT_GT(sum, 0u);
  EXPECT_EQ(bf16_to_f32(v.ptr<uint16_t>()[kCols + 7]), float((r0 + 1 + 7) % 256));
  uint64_t a = f_->data_start() + uint64_t(r0 * kCols) * 2;
  expect_resident_only({{a, a + uint64_t((r1 - r0) * kCols) * 2}});
}

}  // namespace
}  // namespace tessera
