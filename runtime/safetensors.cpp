#include "runtime/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "runtime/error.h"

namespace tessera {

using json = nlohmann::json;

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;     // real headers are kilobytes
constexpr uint64_t kPrefetchChunk = 128ull << 10;  // the smallest per-call WILLNEED cap

uint64_t page_size() {
  static const uint64_t ps = uint64_t(sysconf(_SC_PAGESIZE));
  return ps;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A host tensor of any rank up to 4 (host_tensor takes a fixed initializer list).
Tensor host_tensor_shaped(DType dtype, const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  Tensor t = host_tensor(dtype, {n});
  t.ndim = int(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) t.shape[i] = shape[i];
  return t;
}

}  // namespace

std::string TensorInfo::shape_str() const { return shape_string(shape); }

void SafetensorsFile::fail(const std::string& what) const { throw UserError(path_ + ": " + what); }

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->map_file();
  f->parse_header();
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (base_) munmap(const_cast<char*>(base_), size_);
}

void SafetensorsFile::map_file() {
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // a FIFO must not block
  if (fd < 0)
    throw UserError("cannot open safetensors file " + path_ + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw UserError("cannot open safetensors file " + path_ + ": not a regular file");
  }
  size_ = uint64_t(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    fail("file is " + std::to_string(size_) +
         " bytes, too short for the 8-byte header length (truncated or not safetensors)");
  }
  void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);  // the mapping keeps the file open
  if (p == MAP_FAILED) fail(std::string("mmap failed: ") + std::strerror(err));
  base_ = static_cast<const char*>(p);
  // No read-around on faults: prefetch() asks for exactly the pages each read needs.
  madvise(p, size_, MADV_RANDOM);
}

void SafetensorsFile::parse_header() {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | uint8_t(base_[i]);
  if (n > kMaxHeader)
    fail("header length " + std::to_string(n) + " is absurd (limit " +
         std::to_string(kMaxHeader) + " bytes): not a safetensors file?");
  if (n > size_ - 8)
    fail("header length " + std::to_string(n) + " runs past the end of the " +
         std::to_string(size_) + "-byte file (truncated?)");
  data_start_ = 8 + n;

  // nlohmann keeps the last of duplicate keys; catch duplicate tensor names while parsing.
  std::set<std::string> seen;
  std::string dup;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& v) {
    if (ev == json::parse_event_t::key && depth == 1 && v.is_string()) {
      const auto& k = v.get_ref<const std::string&>();
      if (!seen.insert(k).second && dup.empty()) dup = k;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(base_ + 8, base_ + 8 + n, cb);
  } catch (const json::exception& e) {
    fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail("header is not a JSON object");
  if (!dup.empty()) fail("duplicate tensor name '" + dup + "' in header");

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail("__metadata__ is not a JSON object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) fail("__metadata__ value for '" + k + "' is not a string");
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    check_entry(name, entry);
  }

  // Overlap: sorted by begin, each non-empty tensor must start at or after every earlier end.
  std::vector<std::tuple<uint64_t, uint64_t, const std::string*>> spans;
  for (const auto& [name, t] : tensors_)
    if (t.end > t.begin) spans.emplace_back(t.begin, t.end, &name);
  std::sort(spans.begin(), spans.end());
  const std::string* reach_name = nullptr;
  uint64_t reach = 0;
  for (const auto& [b, e, name] : spans) {
    if (reach_name && b < reach)
      fail("tensors '" + *reach_name + "' and '" + *name + "' overlap in the data area");
    if (e > reach) reach = e, reach_name = name;
  }
}

void SafetensorsFile::check_entry(const std::string& name, const json& entry) {
  const std::string what = "tensor '" + name + "': ";
  if (!entry.is_object()) fail(what + "entry is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(key)) fail(what + "missing \"" + key + "\"");
  TensorInfo t;
  t.name = name;

  const json& dt = entry["dtype"];
  if (!dt.is_string()) fail(what + "dtype is not a string");
  if (!dtype_from_name(dt.get<std::string>(), &t.dtype))
    fail(what + "unsupported dtype " + dt.get<std::string>() +
         " (supported: F32, F16, BF16, I32, I8, U8)");

  const json& shape = entry["shape"];
  if (!shape.is_array()) fail(what + "shape is not a list");
  uint64_t bytes = dtype_size(t.dtype);
  bool overflow = false;
  for (const json& d : shape) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t(INT64_MAX))
      fail(what + "shape " + shape.dump() + " is not a list of non-negative integers");
    overflow |= __builtin_mul_overflow(bytes, d.get<uint64_t>(), &bytes);
    t.shape.push_back(d.get<int64_t>());
  }

  const json& offs = entry["data_offsets"];
  if (!offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() ||
      !offs[1].is_number_unsigned())
    fail(what + "data_offsets " + offs.dump() + " is not [begin, end] of non-negative integers");
  t.begin = offs[0].get<uint64_t>();
  t.end = offs[1].get<uint64_t>();
  if (t.begin > t.end)
    fail(what + "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
         "] has begin > end");
  uint64_t data_size = size_ - data_start_;
  if (t.end > data_size)
    fail(what + "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
         "] out of bounds: the data area has " + std::to_string(data_size) +
         " bytes (file truncated?)");
  if (overflow || bytes != t.nbytes())
    fail(what + "shape " + t.shape_str() + " x " + dtype_name(t.dtype) + " needs " +
         (overflow ? std::string("more than 2^64") : std::to_string(bytes)) +
         " bytes but data_offsets span " + std::to_string(t.nbytes()));
  tensors_.emplace(name, std::move(t));
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) fail("no tensor '" + name + "'");
  return *t;
}

void SafetensorsFile::prefetch(uint64_t off, uint64_t len) const {
  if (len) prefetch_file(data_start_ + off, data_start_ + off + len);
}

void SafetensorsFile::prefetch_file(uint64_t a, uint64_t b) const {
  const uint64_t ps = page_size();
  a = a / ps * ps;
  b = std::min(b, size_);
  // The kernel caps one WILLNEED at its readahead size, so ask in chunks no larger than that.
  for (uint64_t p = a; p < b; p += kPrefetchChunk)
    madvise(const_cast<char*>(base_) + p, std::min(kPrefetchChunk, b - p), MADV_WILLNEED);
}

void SafetensorsFile::release_file(uint64_t a, uint64_t b) const {
  const uint64_t ps = page_size();
  a = a / ps * ps;
  b = std::min(b, size_);
  if (a < b) madvise(const_cast<char*>(base_) + a, b - a, MADV_DONTNEED);
}

uint64_t SafetensorsFile::row_bytes(const TensorInfo& t) const {
  uint64_t n = dtype_size(t.dtype);
  for (size_t i = 1; i < t.shape.size(); ++i) n *= uint64_t(t.shape[i]);
  return n;
}

void SafetensorsFile::check_rows(const TensorInfo& t, int64_t r0, int64_t r1) const {
  if (t.shape.empty()) fail("tensor '" + t.name + "' is a scalar and has no rows");
  if (r0 < 0 || r0 > r1 || r1 > t.shape[0])
    fail("tensor '" + t.name + "' " + t.shape_str() + ": rows [" + std::to_string(r0) + ", " +
         std::to_string(r1) + ") out of range");
}

// A Tensor over data-area bytes [off, off + len): `t` with dim 0 set to `rows` (-1: as is).
Tensor SafetensorsFile::slice_view(const TensorInfo& t, uint64_t off, uint64_t len,
                                   int64_t rows) const {
  if (t.shape.size() > 4)
    fail("tensor '" + t.name + "' has rank " + std::to_string(t.shape.size()) +
         " (shape " + t.shape_str() + "); at most 4 is supported");
  std::vector<int64_t> shape = t.shape.empty() ? std::vector<int64_t>{1} : t.shape;
  if (rows >= 0) shape[0] = rows;
  prefetch(off, len);
  bytes_read_.fetch_add(len, std::memory_order_relaxed);
  const char* src = data_at(off);
  if (reinterpret_cast<uintptr_t>(src) % dtype_size(t.dtype) != 0) {
    Tensor c = host_tensor_shaped(t.dtype, shape);
    std::memcpy(c.data, src, len);
    return c;
  }
  Tensor v;
  v.data = const_cast<char*>(src);  // read-only: the mapping is PROT_READ
  v.dtype = t.dtype;
  v.ndim = int(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) v.shape[i] = shape[i];
  v.storage = std::shared_ptr<void>(shared_from_this(), v.data);  // keeps the mapping alive
  return v;
}

Tensor SafetensorsFile::view(const std::string& name) const {
  const TensorInfo& t = info(name);
  return slice_view(t, t.begin, t.nbytes(), -1);
}

Tensor SafetensorsFile::view_rows(const std::string& name, int64_t r0, int64_t r1) const {
  const TensorInfo& t = info(name);
  check_rows(t, r0, r1);
  uint64_t rb = row_bytes(t);
  return slice_view(t, t.begin + uint64_t(r0) * rb, uint64_t(r1 - r0) * rb, r1 - r0);
}

Tensor SafetensorsFile::read_rows(const std::string& name, int64_t r0, int64_t r1) const {
  const TensorInfo& t = info(name);
  check_rows(t, r0, r1);
  if (t.shape.size() > 4) fail("tensor '" + name + "' has rank above 4");
  uint64_t rb = row_bytes(t), off = t.begin + uint64_t(r0) * rb, len = uint64_t(r1 - r0) * rb;
  std::vector<int64_t> shape = t.shape;
  shape[0] = r1 - r0;
  Tensor out = host_tensor_shaped(t.dtype, shape);
  prefetch(off, len);
  std::memcpy(out.data, data_at(off), len);
  bytes_read_.fetch_add(len, std::memory_order_relaxed);
  return out;
}

Tensor SafetensorsFile::read_cols(const std::string& name, int64_t c0, int64_t c1) const {
  const TensorInfo& t = info(name);
  if (t.shape.size() != 2)
    fail("tensor '" + name + "' " + t.shape_str() + ": read_cols needs a 2-D tensor");
  const int64_t rows = t.shape[0], cols = t.shape[1];
  if (c0 < 0 || c0 > c1 || c1 > cols)
    fail("tensor '" + name + "' " + t.shape_str() + ": columns [" + std::to_string(c0) + ", " +
         std::to_string(c1) + ") out of range");
  const uint64_t es = dtype_size(t.dtype), rb = uint64_t(cols) * es;
  const uint64_t skip = uint64_t(c0) * es, len = uint64_t(c1 - c0) * es;
  Tensor out = host_tensor_shaped(t.dtype, {rows, c1 - c0});
  if (len == 0 || rows == 0) return out;
  // Prefetch each row's pages, merging runs of rows whose pages touch into one request.
  const uint64_t ps = page_size();
  uint64_t run_a = 0, run_b = 0;
  for (int64_t r = 0; r < rows; ++r) {
    uint64_t a = t.begin + uint64_t(r) * rb + skip, b = a + len;
    uint64_t pa = (data_start_ + a) / ps, pb = (data_start_ + b + ps - 1) / ps;
    if (r > 0 && pa <= run_b) {
      run_b = std::max(run_b, pb);
      continue;
    }
    if (r > 0) prefetch_file(run_a * ps, run_b * ps);
    run_a = pa, run_b = pb;
  }
  prefetch_file(run_a * ps, run_b * ps);
  char* dst = static_cast<char*>(out.data);
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + uint64_t(r) * len, data_at(t.begin + uint64_t(r) * rb + skip), len);
  bytes_read_.fetch_add(uint64_t(rows) * len, std::memory_order_relaxed);
  // The copy is all this rank keeps. Rows shorter than a page fault in every page of the
  // tensor (the other ranks' columns too), so drop them from this mapping: resident memory
  // stays this rank's slice. A later read of a neighbouring tensor's shared page just faults
  // it back in from the page cache.
  release_file(data_start_ + t.begin, data_start_ + t.begin + uint64_t(rows) * rb);
  return out;
}

std::vector<bool> SafetensorsFile::resident_pages() const {
  const uint64_t ps = page_size();
  std::vector<unsigned char> vec((size_ + ps - 1) / ps);
  if (mincore(const_cast<char*>(base_), size_, vec.data()) != 0)
    throw std::runtime_error(path_ + ": mincore failed: " + std::strerror(errno));
  std::vector<bool> out(vec.size());
  for (size_t i = 0; i < vec.size(); ++i) out[i] = vec[i] & 1;
  return out;
}

size_t SafetensorsFile::resident_bytes() const {
  std::vector<bool> pages = resident_pages();
  return size_t(std::count(pages.begin(), pages.end(), true)) * page_size();
}

}  // namespace tessera
